import Foundation
import Testing
import WhiskMessages

/// The `wsk` binary as a user runs it against a platform: packages, triggers, rules, namespaces.
@Suite("wsk against a platform", .serialized)
struct WskIntegrationTests {
    /// Runs `wsk` with the platform's API host and the guest key; returns (exit status, stdout + stderr).
    func wsk(_ platform: Platform, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "\(platform.binDirectory)/wsk")
        process.arguments = arguments + ["--apihost", platform.apiHost, "--auth", Platform.guestAuth]
        process.environment = ["WSK_CONFIG_FILE": "/nonexistent-wskprops", "PATH": "/usr/bin:/bin"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func packagesTriggersAndRulesFromTheCommandLine() async throws {
        try await withPlatform(invokers: 1) { platform in
            let file = "\(platform.logDirectory)/hello.py"
            try "def main(args):\n    return {'greeting': args.get('greeting', '?') + ' ' + args.get('name', 'you')}\n".write(toFile: file, atomically: true, encoding: .utf8)
            func ok(_ arguments: String...) throws -> String {
                let run = try wsk(platform, arguments)
                #expect(run.status == 0, "wsk \(arguments.joined(separator: " ")): \(run.output)")
                return run.output
            }
            _ = try ok("package", "create", "demo", "-p", "greeting", "Hello")
            _ = try ok("action", "create", "demo/hello", file)
            #expect(try ok("action", "invoke", "demo/hello", "-p", "name", "pkg", "--result").contains("\"Hello pkg\""))
            #expect(try ok("package", "get", "demo", "--summary").contains("action /guest/demo/hello"))
            #expect(try ok("package", "list").contains("/guest/demo"))
            #expect(try ok("action", "get", "demo/hello", "--url").contains("\(platform.apiHost)/api/v1/namespaces/guest/actions/demo/hello"))
            #expect(try ok("namespace", "list").contains("guest"))
            _ = try ok("action", "update", "demo/hello", "--web", "true")
            let webURL = try ok("action", "get", "demo/hello", "--url")
            #expect(webURL.contains("\(platform.apiHost)/api/v1/web/guest/demo/hello"), "\(webURL)")
            #expect(try wsk(platform, ["action", "update", "demo/hello", "--web", "maybe"]).status != 0)

            _ = try ok("trigger", "create", "tick", "-p", "name", "trigger")
            _ = try ok("rule", "create", "onTick", "tick", "demo/hello")
            #expect(try ok("rule", "status", "onTick").contains("is active"))
            let fired = try ok("trigger", "fire", "tick")
            #expect(fired.contains("ok: triggered /_/tick with id "), "\(fired)")
            _ = try ok("rule", "disable", "onTick")
            #expect(try ok("trigger", "fire", "tick").contains("no active rule"))
            _ = try ok("rule", "delete", "onTick")
            _ = try ok("trigger", "delete", "tick")

            let refused = try wsk(platform, ["package", "delete", "demo"])
            #expect(refused.status != 0 && refused.output.contains("Package not empty"), "positive control: \(refused.output)")
            _ = try ok("package", "delete", "demo", "--force")
            #expect(try wsk(platform, ["action", "get", "demo/hello"]).status != 0)
        }
    }
}
