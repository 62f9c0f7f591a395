import Foundation
import Testing
import WhiskDocker
import WhiskMessages

/// What happens to accepted activations when an invoker never comes back, when the controller
/// is SIGKILLed, and when a sequence's component fails or is gone.
extension PlatformIntegrationTests {
    func record(_ platform: Platform, _ id: String) async throws -> JSONValue? {
        let reply = try await platform.request("GET", "/api/v1/namespaces/_/activations/\(id)")
        guard reply.status == 200 else { return nil }  // (a ternary would make nil JSON's null)
        return reply.json
    }

    func waitForRecords(_ platform: Platform, _ ids: [String], timeout: Duration = .seconds(120)) async throws -> [String: JSONValue] {
        var records: [String: JSONValue] = [:]
        try await waitUntil("\(ids.count) activations have their records", timeout: timeout) {
            for id in ids where records[id] == nil {
                records[id] = try? await record(platform, id)
            }
            return records.count == ids.count
        }
        return records
    }

    /// Creates `mark` (1 s timeout), runs it once, SIGKILLs invoker0 and invokes `mark` with
    /// n = 1...count, non-blocking: the controller counts the invoker as up for 3 s more, so these
    /// are accepted onto its topic. Returns their activation ids.
    func acceptedByADeadInvoker(_ platform: Platform, count: Int) async throws -> [String] {
        try await platform.createAction("mark", code: "def main(args):\n    return {'ran': args['n']}\n", timeout: 1000)
        // A warm container first. A cold start on a loaded machine can overrun the 1 s limit (the
        // container is then removed), so up to three tries; the test is about what follows.
        var warm = try await platform.invoke("mark", ["n": 0], result: true)
        for _ in 0..<2 where warm.json != ["ran": 0] {
            warm = try await platform.invoke("mark", ["n": 0], result: true)
        }
        #expect(warm.json == ["ran": 0], "\(warm.json)")
        await platform.kill(invoker: 0)
        var ids: [String] = []
        for n in 1...count {
            let reply = try await platform.invoke("mark", ["n": .int(Int64(n))], blocking: false)
            #expect(reply.status == 202, "\(reply.json)")
            if let id = reply.json["activationId"]?.stringValue { ids.append(id) }
        }
        return ids
    }

    /// Activations published to an invoker that dies and stays dead get a whisk-error record
    /// once their deadline passed and the invoker is offline (a blocking caller gets it too);
    /// when that invoker does come back later, it does not run them after all.
    @Test func activationsOfAnInvokerThatNeverReturnsEndWithARecordSayingWhyAndDoNotRunLater() async throws {
        try await withPlatform(invokers: 1, controllerFlags: ["--slot-grace", "1"]) { platform in
            var ids = try await acceptedByADeadInvoker(platform, count: 5)
            let blocking = try await platform.invoke("mark", ["n": 6])
            #expect(blocking.status == 500, "the blocking caller gets the record that says why: \(blocking.json)")
            if let id = blocking.json["activationId"]?.stringValue { ids.append(id) }
            #expect(ids.count == 6)
            let records = try await waitForRecords(platform, ids, timeout: .seconds(60))
            for (id, record) in records {
                #expect(record["response"]?["status"] == "whisk internal error", "\(id): \(record["response"] ?? .null)")
                #expect(record["response"]?["result"]?["error"]?.stringValue?.contains("invoker0 went offline") == true, "\(id): \(record)")
            }
            // The invoker returns: its topic still holds the six; it checks them and runs none.
            try platform.startInvoker(0)
            // (It may skip the warm-up too: the controller answers a blocking caller on the ack,
            // and a kill right after the answer can beat the invoker's commit of that offset.)
            try await waitUntil("the restarted invoker skipped all six", timeout: .seconds(60)) {
                let skipped = platform.log("invoker0.log").split(separator: "\n").filter { $0.contains("activation already has its record: not run") }
                return ids.allSatisfy { id in skipped.contains { $0.contains("activationId=\(id)") } }
            }
            for id in ids {
                let after = try await record(platform, id)
                #expect(after?["response"]?["status"] == "whisk internal error", "\(id) was not run after all: \(after ?? .null)")
            }
            // Positive control: the restarted invoker does run new work.
            try await waitUntil("invoker0 is up again", timeout: .seconds(30)) { (try? await platform.invokerStates())?["invoker0/0"] == "up" }
            #expect(try await platform.invoke("mark", ["n": 7], result: true).json == ["ran": 7])
        }
    }

    /// The controller remembers accepted activations in its store: SIGKILLed and restarted
    /// while its only invoker is dead, it still gives each of them a record that says why (an
    /// in-memory memory of them would leave them without one).
    @Test func pendingActivationsSurviveAControllerRestartAndEndWithARecord() async throws {
        try await withPlatform(invokers: 1, controllerFlags: ["--slot-grace", "1"]) { platform in
            let ids = try await acceptedByADeadInvoker(platform, count: 3)
            #expect(ids.count == 3)
            try await platform.restartController(kill: true)
            let records = try await waitForRecords(platform, ids, timeout: .seconds(60))
            for (id, record) in records {
                #expect(record["response"]?["result"]?["error"]?.stringValue?.contains("invoker0 went offline") == true, "\(id): \(record)")
            }
        }
    }

    /// A controller SIGKILLed while activations run and a sequence waits on its component: after
    /// the restart every accepted activation has its record (acks are read from the committed
    /// offset), the cut-short sequence has one that says so, invokers are up again, and the
    /// address map converges for a new instance.
    @Test func aControllerKilledWithSigkillLosesNoRecordAndConverges() async throws {
        try await withPlatform(invokers: 2) { platform in
            try await platform.createAction("nap", code: "import time\ndef main(args):\n    time.sleep(3)\n    return {'n': args.get('n')}\n")
            let pipeline = try await platform.request("PUT", "/api/v1/namespaces/_/actions/slowpipe",
                                                      json: ["exec": ["kind": "sequence", "components": ["/_/nap", "/_/nap"]]])
            #expect(pipeline.status == 200, "\(pipeline.json)")
            var ids: [Int: String] = [:]
            for n in 1...10 {
                let reply = try await platform.invoke("nap", ["n": .int(Int64(n))], blocking: false)
                ids[n] = reply.json["activationId"]?.stringValue
            }
            let sequence = try await platform.invoke("slowpipe", ["n": 0], blocking: false)
            let sequenceId = try #require(sequence.json["activationId"]?.stringValue, "\(sequence.json)")
            #expect(ids.count == 10)
            try await Task.sleep(for: .milliseconds(500))
            try await platform.restartController(kill: true)
            let records = try await waitForRecords(platform, Array(ids.values), timeout: .seconds(90))
            for (n, id) in ids {
                #expect(records[id]?["response"]?["result"]?["n"] == .int(Int64(n)), "activation \(n): \(records[id] ?? .null)")
            }
            let cut = try await waitForRecords(platform, [sequenceId], timeout: .seconds(60))[sequenceId]
            #expect(cut?["response"]?["status"] == "whisk internal error", "\(cut ?? .null)")
            #expect(cut?["response"]?["result"]?["error"]?.stringValue?.contains("controller restarted") == true, "\(cut ?? .null)")
            try await waitUntil("both invokers are up for the new controller", timeout: .seconds(30)) {
                let states = try? await platform.invokerStates()
                return states?["invoker0/0"] == "up" && states?["invoker1/1"] == "up"
            }
            let fresh = try await platform.invoke("nap", ["instanceID": "after-kill"], blocking: false)
            #expect(fresh.status == 202, "\(fresh.json)")
            try await platform.waitForInstanceToComeAndGo("after-kill")
        }
    }

    /// A sequence stops at its first failing component, whose error is the sequence's result;
    /// a component deleted after the sequence was created fails it with OpenWhisk's message.
    @Test func sequencesWhoseComponentFailsOrIsMissing() async throws {
        try await withPlatform(invokers: 1) { platform in
            try await platform.createAction("double", code: "def main(args):\n    return {'n': args['n'] * 2}\n")
            try await platform.createAction("refuse", code: "def main(args):\n    return {'error': 'refused at ' + str(args['n'])}\n")
            try await platform.createAction("crash", code: "def main(args):\n    raise ValueError('boom')\n")
            try await platform.createAction("gone", code: "def main(args):\n    return args\n")
            for (name, components) in [("failing", ["double", "refuse", "double"]), ("crashing", ["double", "crash"]),
                                       ("missing", ["double", "gone"])] {
                let reply = try await platform.request("PUT", "/api/v1/namespaces/_/actions/\(name)",
                                                       json: ["exec": ["kind": "sequence", "components": .array(components.map { .string("/_/\($0)") })]])
                #expect(reply.status == 200, "\(reply.json)")
            }
            #expect(try await platform.request("DELETE", "/api/v1/namespaces/_/actions/gone").status == 200)

            let failing = try await platform.invoke("failing", ["n": 1])
            #expect(failing.status == 502, "\(failing.json)")
            #expect(failing.json["response"]?["status"] == "application error")
            #expect(failing.json["response"]?["result"] == ["error": "refused at 2"], "the third component did not run: \(failing.json)")
            #expect(failing.json["logs"]?.arrayValue?.count == 2, "two component activations: \(failing.json["logs"] ?? .null)")

            let crashing = try await platform.invoke("crashing", ["n": 1])
            #expect(crashing.status == 502, "\(crashing.json)")
            #expect(crashing.json["response"]?["status"] != "success", "\(crashing.json)")
            #expect(crashing.json["logs"]?.arrayValue?.count == 2, "\(crashing.json)")

            let missing = try await platform.invoke("missing", ["n": 1])
            #expect(missing.status == 502, "\(missing.json)")
            #expect(missing.json["response"]?["result"] == ["error": "Sequence component does not exist."], "\(missing.json)")

            // Non-blocking, the same failure ends in a record too.
            let accepted = try await platform.invoke("failing", ["n": 5], blocking: false)
            let id = try #require(accepted.json["activationId"]?.stringValue, "\(accepted.json)")
            let record = try await waitForRecords(platform, [id], timeout: .seconds(60))[id]
            #expect(record?["response"]?["result"] == ["error": "refused at 10"], "\(record ?? .null)")
        }
    }

    /// The invariant every platform test ends with, shown to catch what it is for: a container
    /// with an invoker's labels that its pool does not know (a leak) is reported; once removed, not.
    @Test func thePoolInvariantCatchesALeakedContainer() async throws {
        try await withPlatform(invokers: 1) { platform in
            try await platform.createAction("greet", code: Self.greet)
            _ = try await platform.invoke("greet", ["name": "pool"], result: true)
            #expect(await platform.poolDiscrepancy(invoker: 0) == nil, "a warm container, known to the pool")
            var configuration = DockerClient.Configuration()
            configuration.socketPath = TestEnvironment.dockerSocket
            let docker = DockerClient(configuration: configuration, logger: TestEnvironment.logger)
            var spec = ContainerSpec(image: TestEnvironment.testImage, name: "wsk0_stray_\(platform.runLabel)")
            spec.labels = ["org.whiskmesh.test": platform.runLabel, "org.whiskmesh.invoker": "0"]
            spec.command = ["sleep", "60"]
            let stray = try await docker.createContainer(spec)
            let found = await platform.poolDiscrepancy(invoker: 0, patience: .seconds(2))
            #expect(found?.contains(stray) == true, "\(found ?? "no discrepancy found")")
            try await docker.removeContainer(stray)
            await docker.shutdown()
            #expect(await platform.poolDiscrepancy(invoker: 0) == nil)
        }
    }
}
