import WhiskCLI

await WskCommand.runMain()
