import ArgumentParser
import Foundation
import WhiskMessages

struct AddressMapCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "addressmap", abstract: "Show your namespace's address map.", subcommands: [Get.self])

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the map; with --watch, print it again whenever its version changes.")
        @Flag(name: [.customShort("w"), .customLong("watch")]) var watch = false
        @Option(help: "Seconds between polls with --watch.") var interval = 0.2
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await withClient(options) { client in
                var lastVersion: Int64 = -1
                repeat {
                    let map = try await client.expectSuccess("GET", "/api/v1/namespaces/_/addressmap")
                    let version = map["version"]?.int64Value ?? 0
                    if version != lastVersion {
                        lastVersion = version
                        if watch {
                            let instances = map["instances"]?.arrayValue ?? []
                            let line = "version \(version): " + (instances.isEmpty ? "(empty)" : instances.map {
                                "\($0["id"]?.stringValue ?? "")=\($0["ip"]?.stringValue ?? "")@invoker\($0["invoker"]?.int64Value ?? -1)"
                            }.joined(separator: " "))
                            // Unbuffered, so a watch piped into another program shows changes live.
                            FileHandle.standardOutput.write(Data((line + "\n").utf8))
                        } else {
                            print(map)
                        }
                    }
                    if watch { try await Task.sleep(for: .milliseconds(Int(interval * 1000))) }
                } while watch && !Task.isCancelled
            }
        }
    }
}
