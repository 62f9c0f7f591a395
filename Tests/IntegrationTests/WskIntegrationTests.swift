import Foundation
import Testing
import WhiskMessages

/// The `wsk` binary as a user runs it against a platform: packages, triggers, rules, namespaces.
@Suite("wsk against a platform", .serialized)
struct WskIntegrationTests {
    /// Runs `wsk` with the platform's API host and the guest key; returns (exit status, stdout + stderr).
    /// The output goes to a file of the platform's folder and the exit is awaited by polling,
    /// so a `wsk` that hangs fails its test after two minutes instead of holding a thread.
    func wsk(_ platform: Platform, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "\(platform.binDirectory)/wsk")
        process.arguments = arguments + ["--apihost", platform.apiHost, "--auth", Platform.guestAuth]
        process.environment = ["WSK_CONFIG_FILE": "/nonexistent-wskprops", "PATH": "/usr/bin:/bin"]
        let path = "\(platform.logDirectory)/wsk-\(UUID().uuidString).out"
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        await process.exit(within: .seconds(120))
        // Foundation reaps it shortly after it exits; only then is the status known.
        try await waitUntil("wsk \(arguments.joined(separator: " ")) has exited", timeout: .seconds(15)) { !process.isRunning }
        return (process.terminationStatus, (try? String(contentsOfFile: path, encoding: .utf8)) ?? "")
    }

    @Test func packagesTriggersAndRulesFromTheCommandLine() async throws {
        try await withPlatform(invokers: 1) { platform in
            let file = "\(platform.logDirectory)/hello.py"
            try "def main(args):\n    return {'greeting': args.get('greeting', '?') + ' ' + args.get('name', 'you')}\n".write(toFile: file, atomically: true, encoding: .utf8)
            func ok(_ arguments: String...) async throws -> String {
                let run = try await wsk(platform, arguments)
                #expect(run.status == 0, "wsk \(arguments.joined(separator: " ")): \(run.output)")
                return run.output
            }
            _ = try await ok("package", "create", "demo", "-p", "greeting", "Hello")
            _ = try await ok("action", "create", "demo/hello", file)
            #expect(try await ok("action", "invoke", "demo/hello", "-p", "name", "pkg", "--result").contains("\"Hello pkg\""))
            #expect(try await ok("package", "get", "demo", "--summary").contains("action /guest/demo/hello"))
            #expect(try await ok("package", "list").contains("/guest/demo"))
            #expect(try await ok("action", "get", "demo/hello", "--url").contains("\(platform.apiHost)/api/v1/namespaces/guest/actions/demo/hello"))
            #expect(try await ok("namespace", "list").contains("guest"))
            _ = try await ok("action", "update", "demo/hello", "--web", "true")
            let webURL = try await ok("action", "get", "demo/hello", "--url")
            #expect(webURL.contains("\(platform.apiHost)/api/v1/web/guest/demo/hello"), "\(webURL)")
            #expect(try await wsk(platform, ["action", "update", "demo/hello", "--web", "maybe"]).status != 0)

            _ = try await ok("trigger", "create", "tick", "-p", "name", "trigger")
            _ = try await ok("rule", "create", "onTick", "tick", "demo/hello")
            #expect(try await ok("rule", "status", "onTick").contains("is active"))
            let fired = try await ok("trigger", "fire", "tick")
            #expect(fired.contains("ok: triggered /_/tick with id "), "\(fired)")
            _ = try await ok("rule", "disable", "onTick")
            #expect(try await ok("trigger", "fire", "tick").contains("no active rule"))
            _ = try await ok("rule", "delete", "onTick")
            _ = try await ok("trigger", "delete", "tick")

            let refused = try await wsk(platform, ["package", "delete", "demo"])
            #expect(refused.status != 0 && refused.output.contains("Package not empty"), "positive control: \(refused.output)")
            _ = try await ok("package", "delete", "demo", "--force")
            #expect(try await wsk(platform, ["action", "get", "demo/hello"]).status != 0)
        }
    }
}
