import Foundation
import Testing
import WhiskDocker
import WhiskInvoker
import WhiskKafka
import WhiskMessages

/// The controller, two invokers, the real broker, Docker and Python containers, end to end.
@Suite("Platform end to end", .serialized)
struct PlatformIntegrationTests {
    static let greet = """
    def main(args):
        print("greeting", args.get("name"))
        return {"greeting": "Hello " + args.get("name", "stranger")}
    """

    /// Returns the container (its hostname) that ran it, to see where an activation ran.
    static let whereAmI = """
    import socket
    def main(args):
        return {"host": socket.gethostname(), "echo": args}
    """

    func invokerOf(host: String) async throws -> String? {
        var configuration = DockerClient.Configuration()
        configuration.socketPath = TestEnvironment.dockerSocket
        let docker = DockerClient(configuration: configuration, logger: TestEnvironment.logger)
        let labels = try? await docker.inspectContainer(host).labels
        await docker.shutdown()
        return labels?["org.whiskmesh.invoker"]
    }

    @Test func actionLifecycleThroughTheRESTAPI() async throws {
        try await withPlatform { platform in
            try await platform.createAction("greet", code: Self.greet)

            // Blocking invoke, result only.
            let result = try await platform.invoke("greet", ["name": "Jane"], result: true)
            #expect(result.status == 200)
            #expect(result.json == ["greeting": "Hello Jane"])

            // Blocking invoke: the record, with logs; the second run is warm (no initTime).
            let first = try await platform.invoke("greet", ["name": "Ann"])
            #expect(first.status == 200)
            #expect(first.json["response"]?["status"] == "success")
            let logs = first.json["logs"]?.arrayValue?.compactMap(\.stringValue) ?? []
            #expect(logs.contains { $0.hasSuffix("stdout: greeting Ann") }, "logs: \(logs)")
            let warm = try await platform.invoke("greet", ["name": "Bob"])
            let annotationKeys = warm.json["annotations"]?.arrayValue?.compactMap { $0["key"]?.stringValue } ?? []
            #expect(annotationKeys.contains("waitTime"))
            #expect(!annotationKeys.contains("initTime"), "a warm container needs no /init")

            // Non-blocking invoke, then the activation, its result and logs.
            let accepted = try await platform.invoke("greet", ["name": "Zoe"], blocking: false)
            #expect(accepted.status == 202)
            let id = try #require(accepted.json["activationId"]?.stringValue)
            var record = Platform.Reply(status: 0, json: .null)
            try await waitUntil("the activation is stored") {
                record = try await platform.request("GET", "/api/v1/namespaces/_/activations/\(id)")
                return record.status == 200
            }
            #expect(record.json["response"]?["result"] == ["greeting": "Hello Zoe"])
            #expect(try await platform.request("GET", "/api/v1/namespaces/guest/activations/\(id)/result").json["result"] == ["greeting": "Hello Zoe"])
            let stored = try await platform.request("GET", "/api/v1/namespaces/_/activations/\(id)/logs")
            #expect(stored.json["logs"]?.arrayValue?.count == 1)
            let listed = try await platform.request("GET", "/api/v1/namespaces/_/activations?name=greet&limit=10")
            #expect((listed.json.arrayValue?.count ?? 0) == 4)

            // An action that raises: application error, 502.
            try await platform.createAction("boom", code: "def main(args):\n    raise RuntimeError('kaboom')\n")
            let failed = try await platform.invoke("boom")
            #expect(failed.status == 502)
            #expect(failed.json["response"]?["status"] == "application error")
            #expect(failed.json["response"]?["result"]?["error"]?.stringValue?.contains("kaboom") == true)

            // A sequence of two actions composes their results.
            try await platform.createAction("double", code: "def main(args):\n    return {'name': args.get('greeting', '') + '!'}\n")
            let sequence = try await platform.request("PUT", "/api/v1/namespaces/_/actions/pipeline",
                                                      json: ["exec": ["kind": "sequence", "components": ["/_/double", "/guest/greet"]]])
            #expect(sequence.status == 200)
            let composed = try await platform.invoke("pipeline", ["greeting": "Hi"], result: true)
            #expect(composed.json == ["greeting": "Hello Hi!"])

            // Errors with OpenWhisk's shape and codes.
            let badAuth = try await platform.invoke("greet", auth: "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:wrong")
            #expect(badAuth.status == 401)
            #expect(badAuth.json["error"] != nil && badAuth.json["code"] != nil)
            let noAuth = try await platform.request("GET", "/api/v1/namespaces/_/actions", auth: nil)
            #expect(noAuth.status == 401)
            let missing = try await platform.invoke("no-such-action")
            #expect(missing.status == 404)
            let exists = try await platform.request("PUT", "/api/v1/namespaces/_/actions/greet", json: ["exec": ["kind": "python:3", "code": "x"]])
            #expect(exists.status == 409)
            let big = Data(("{\"pad\":\"" + String(repeating: "x", count: 1_100_000) + "\"}").utf8)
            let tooLarge = try await platform.request("POST", "/api/v1/namespaces/_/actions/greet?blocking=true", body: big)
            #expect(tooLarge.status == 413)
            let malformed = try await platform.request("POST", "/api/v1/namespaces/_/actions/greet", body: Data("[1,2".utf8))
            #expect(malformed.status == 400)
            let otherNamespace = try await platform.request("GET", "/api/v1/namespaces/someone-else/actions")
            #expect(otherNamespace.status == 403)
        }
    }

    /// The invoker follows each container's log on one stream and cuts it at the sentinels: every
    /// warm activation gets exactly its own lines, from both streams, including a last line
    /// without a newline, and none of the activation before or after it.
    @Test func eachWarmActivationGetsExactlyItsOwnLogLines() async throws {
        try await withPlatform(invokers: 1) { platform in
            try await platform.createAction("chatty", code: """
            import sys
            def main(args):
                n = args["n"]
                for i in range(3):
                    print("out %d.%d" % (n, i))
                    print("err %d.%d" % (n, i), file=sys.stderr)
                sys.stdout.write("tail %d" % n)
                return {"n": n}
            """)
            for n in 1...6 {
                let reply = try await platform.invoke("chatty", ["n": .int(Int64(n))])
                #expect(reply.status == 200)
                let logs = reply.json["logs"]?.arrayValue?.compactMap(\.stringValue) ?? []
                let stdout = logs.filter { $0.contains(" stdout: ") }.map { String($0.split(separator: " ", maxSplits: 2)[2]) }
                let stderr = logs.filter { $0.contains(" stderr: ") }.map { String($0.split(separator: " ", maxSplits: 2)[2]) }
                #expect(stdout == ["out \(n).0", "out \(n).1", "out \(n).2", "tail \(n)"], "activation \(n): \(logs)")
                #expect(stderr == ["err \(n).0", "err \(n).1", "err \(n).2"], "activation \(n): \(logs)")
                #expect(logs.count == 7, "activation \(n): \(logs)")
                let timestamps = logs.map { String($0.prefix { $0 != " " }) }
                #expect(timestamps == timestamps.sorted(), "in time order: \(logs)")
            }
        }
    }

    @Test func actionsSpreadOverInvokersAndAKilledInvokerGoesOffline() async throws {
        try await withPlatform { platform in
            // Home invokers come from a stable hash of namespace and action name.
            var served: [String: String] = [:]
            for name in ["alpha", "beta", "gamma", "delta"] {
                try await platform.createAction(name, code: Self.whereAmI)
                let reply = try await platform.invoke(name, result: true)
                let host = try #require(reply.json["host"]?.stringValue, "\(reply.json)")
                served[name] = try await invokerOf(host: host)
            }
            #expect(Set(served.values).count == 2, "both invokers took work: \(served)")

            // SIGKILL the invoker that serves "alpha": it goes offline, and alpha runs on the other.
            let victim = try #require(served["alpha"].flatMap { Int($0) })
            await platform.kill(invoker: victim)
            try await waitUntil("invoker\(victim) is marked down", timeout: .seconds(30)) {
                (try? await platform.invokerStates())?["invoker\(victim)/\(victim)"] == "down"
            }
            let reply = try await platform.invoke("alpha", ["after": "kill"], result: true)
            #expect(reply.json["echo"] == ["after": "kill"])
            let host = try #require(reply.json["host"]?.stringValue)
            #expect(try await invokerOf(host: host) == String(1 - victim))
        }
    }

    @Test func invokerRestartedRightAfterStartingKeepsItsTopicAndLosesNothing() async throws {
        try await withPlatform(invokers: 1) { platform in
            try await platform.createAction("greet", code: Self.greet)
            // Stopped within a second of starting (with a consumer group this was in the middle
            // of the join, and the topic then stalled for minutes on Tansu).
            await platform.terminate(invoker: 0)
            let queued = try await platform.invoke("greet", ["name": "queued"], blocking: false)
            #expect(queued.status == 202)
            let activationId = try #require(queued.json["activationId"]?.stringValue)
            try platform.startInvoker(0)
            try await waitUntil("the activation sent while the invoker was down ran", timeout: .seconds(60)) {
                (try? await platform.request("GET", "/api/v1/namespaces/_/activations/\(activationId)"))?.status == 200
            }
            let record = try await platform.request("GET", "/api/v1/namespaces/_/activations/\(activationId)")
            #expect(record.json["response"]?["result"] == ["greeting": "Hello queued"])
            let reply = try await platform.invoke("greet", ["name": "after restart"], result: true)
            #expect(reply.json == ["greeting": "Hello after restart"])
        }
    }

    /// Issue 10's scenario, scaled down: 100 non-blocking activations of a 200 ms action at
    /// 10/s; the home invoker is SIGKILLed after 30 and started again after 60. Every accepted
    /// activation ends with a record of its own run (the invoker commits only what finished, so
    /// the restarted one re-reads what the dead one had taken up).
    @Test func acceptedActivationsSurviveTheirInvokersCrash() async throws {
        try await withPlatform { platform in
            try await platform.createAction("steady", code: """
            import socket, time
            def main(args):
                time.sleep(0.2)
                return {"n": args["n"], "host": socket.gethostname()}
            """)
            let first = try await platform.invoke("steady", ["n": 0], result: true)
            let host = try #require(first.json["host"]?.stringValue, "\(first.json)")
            let victim = try #require(try await invokerOf(host: host).flatMap { Int($0) })
            var accepted: [Int: String] = [:]
            var refused = 0
            for n in 1...100 {
                if n == 31 { await platform.kill(invoker: victim) }
                if n == 61 { try platform.startInvoker(victim) }
                let reply = try await platform.invoke("steady", ["n": .int(Int64(n))], blocking: false)
                if reply.status == 202, let id = reply.json["activationId"]?.stringValue { accepted[n] = id } else { refused += 1 }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(accepted.count >= 90, "accepted \(accepted.count), refused \(refused)")
            var missing = accepted
            try await waitUntil("every accepted activation has its record", timeout: .seconds(120)) {
                for (n, id) in missing where (try? await platform.request("GET", "/api/v1/namespaces/_/activations/\(id)"))?.status == 200 {
                    missing[n] = nil
                }
                return missing.isEmpty
            }
            for (n, id) in accepted {
                let record = try await platform.request("GET", "/api/v1/namespaces/_/activations/\(id)")
                #expect(record.json["response"]?["result"]?["n"] == .int(Int64(n)), "activation \(n): \(record.json["response"] ?? .null)")
            }
        }
    }

    /// SIGTERM drains for the grace period (2 s here), then ends what still runs with a record
    /// that says so, acknowledges it, removes every container and exits.
    @Test func aShutdownEndsWhatOutlivesTheGracePeriodWithARecordAndLeavesNoContainer() async throws {
        try await withPlatform(invokers: 1) { platform in
            try await platform.createAction("long", code: "import time\ndef main(args):\n    time.sleep(120)\n    return {}\n", timeout: 300_000)
            await platform.terminate(invoker: 0)
            try platform.startInvoker(0, extra: ["--shutdown-grace", "2"])
            try await waitUntil("invoker0 is up", timeout: .seconds(60)) { (try? await platform.invokerStates())?["invoker0/0"] == "up" }
            let reply = try await platform.invoke("long", ["instanceID": "long-runner"], blocking: false)
            let id = try #require(reply.json["activationId"]?.stringValue, "\(reply.json)")
            try await waitUntil("the activation runs", timeout: .seconds(60)) { platform.mapFile(invoker: 0)?.instances.contains { $0.id == "long-runner" } == true }
            let started = ContinuousClock.now
            await platform.terminate(invoker: 0)
            #expect(ContinuousClock.now - started < .seconds(30), "the invoker exits after its grace period, not after the action")
            try await waitUntil("the cut-off activation's record", timeout: .seconds(30)) {
                (try? await platform.request("GET", "/api/v1/namespaces/_/activations/\(id)"))?.status == 200
            }
            let record = try await platform.request("GET", "/api/v1/namespaces/_/activations/\(id)")
            #expect(record.json["response"]?["status"] == "whisk internal error", "\(record.json["response"] ?? .null)")
            #expect(record.json["response"]?["result"]?["error"]?.stringValue?.contains("shut down") == true)
            var configuration = DockerClient.Configuration()
            configuration.socketPath = TestEnvironment.dockerSocket
            let docker = DockerClient(configuration: configuration, logger: TestEnvironment.logger)
            let left = try await docker.listContainers(labels: ["org.whiskmesh.test=\(platform.runLabel)", "org.whiskmesh.invoker=0"])
            await docker.shutdown()
            #expect(left.isEmpty, "containers left: \(left.map(\.id))")
        }
    }

    /// A container name the invoker's counter comes to may be taken on the engine (another
    /// process with the same instance id, as when tests run several platforms on one Docker): it
    /// takes the next number instead of failing the activation.
    @Test func aTakenContainerNameIsSkipped() async throws {
        try await withPlatform(invokers: 1) { platform in
            var configuration = DockerClient.Configuration()
            configuration.socketPath = TestEnvironment.dockerSocket
            let docker = DockerClient(configuration: configuration, logger: TestEnvironment.logger)
            defer { Task { await docker.shutdown() } }
            var spec = ContainerSpec(image: TestEnvironment.testImage, name: "wsk0_1_guest_greet")
            spec.command = ["sleep", "60"]
            spec.labels = ["org.whiskmesh.test": platform.runLabel]
            let squatter = try await docker.createContainer(spec)
            defer { Task { try? await docker.removeContainer(squatter) } }
            #expect(try await docker.inspectContainer(squatter).name == "/wsk0_1_guest_greet", "positive control: the name is taken")
            try await platform.createAction("greet", code: Self.greet)
            let reply = try await platform.invoke("greet", ["name": "squatted"], result: true)
            #expect(reply.status == 200 && reply.json == ["greeting": "Hello squatted"], "\(reply.json)")
        }
    }

    /// The runtime manifest decides the kinds: an unknown one is a 400 naming the valid ones, a
    /// family name is its default kind, and a blackbox action runs its own local image.
    @Test func kindsComeFromTheRuntimeManifestAndBlackboxesRunTheirImage() async throws {
        try await withPlatform(invokers: 1) { platform in
            let unknown = try await platform.request("PUT", "/api/v1/namespaces/_/actions/cobol", json: ["exec": ["kind": "cobol:85", "code": "x"]])
            #expect(unknown.status == 400)
            #expect(unknown.json["error"]?.stringValue?.hasPrefix("The specified runtime 'cobol:85' is not supported by this platform. Valid values are: ") == true,
                    "\(unknown.json)")
            let family = try await platform.request("PUT", "/api/v1/namespaces/_/actions/fam", json: ["exec": ["kind": "python", "code": "def main(a):\n    return {}\n"]])
            #expect(family.json["exec"]?["kind"] == "python:3", "\(family.json)")
            let noImage = try await platform.request("PUT", "/api/v1/namespaces/_/actions/box", json: ["exec": ["kind": "blackbox"]])
            #expect(noImage.status == 400)
            let box = try await platform.request("PUT", "/api/v1/namespaces/_/actions/box", json: ["exec": ["kind": "blackbox", "image": "whiskmesh/blackbox-example:latest"]])
            #expect(box.status == 200, "\(box.json)")
            let reply = try await platform.invoke("box", ["name": "box"])
            #expect(reply.json["response"]?["result"]?["greeting"] == "Hello box from a blackbox", "\(reply.json)")
            #expect(reply.json["response"]?["result"]?["activationId"] == reply.json["activationId"])
            #expect(reply.json["logs"]?.arrayValue?.first?.stringValue?.contains("blackbox run for") == true, "its log lines are collected: \(reply.json)")
            // An image that does not exist here: a clear failure, not a hang.
            #expect(try await platform.request("PUT", "/api/v1/namespaces/_/actions/ghost", json: ["exec": ["kind": "blackbox", "image": "whiskmesh/no-such-image:1"]]).status == 200)
            let ghost = try await platform.invoke("ghost")
            #expect(ghost.json["response"]?["success"] == false && ghost.json["response"]?["result"]?["error"]?.stringValue?.contains("no-such-image") == true, "\(ghost.json)")
            // An image whose container exits at once (busybox's shell, no proxy): a prompt failure
            // saying so (from the start or from `/init`, whichever sees the exit first), not `/init`
            // retried against its freed address until the time limit.
            #expect(try await platform.request("PUT", "/api/v1/namespaces/_/actions/quitter",
                                               json: ["exec": ["kind": "blackbox", "image": .string(TestEnvironment.testImage)], "limits": ["timeout": 20000]]).status == 200)
            let quitter = try await platform.invoke("quitter")
            #expect(quitter.json["response"]?["result"]?["error"]?.stringValue?.contains("stopped before its proxy answered") == true, "\(quitter.json)")
        }
    }

    /// The nodejs:20 runtime: `function main` or `exports.main`, a value or a promise; a thrown
    /// error is an application error, a scalar the developer's; logs and init parameters as Python's.
    @Test func nodejsActionsFollowTheRuntimeProtocol() async throws {
        try await withPlatform(invokers: 1) { platform in
            func create(_ name: String, _ code: String, parameters: JSONValue = []) async throws {
                let reply = try await platform.request("PUT", "/api/v1/namespaces/_/actions/\(name)",
                                                       json: ["exec": ["kind": "nodejs", "code": .string(code)], "parameters": parameters])
                #expect(reply.status == 200 && reply.json["exec"]?["kind"] == "nodejs:20", "\(reply.json)")
            }
            try await create("hello", """
            function main(params) {
              console.log('hello from node');
              return { greeting: 'Hello ' + (params.name || 'stranger'), secret: process.env.SECRET, id: process.env.__OW_ACTIVATION_ID };
            }
            """, parameters: [["key": "SECRET", "value": "s", "init": true]])
            let hello = try await platform.invoke("hello", ["name": "node"])
            #expect(hello.json["response"]?["result"]?["greeting"] == "Hello node" && hello.json["response"]?["result"]?["secret"] == "s", "\(hello.json)")
            #expect(hello.json["response"]?["result"]?["id"] == hello.json["activationId"])
            #expect(hello.json["logs"]?.arrayValue?.first?.stringValue?.hasSuffix("stdout: hello from node") == true, "\(hello.json["logs"] ?? .null)")
            try await create("later", "exports.main = async (p) => new Promise((ok) => setTimeout(() => ok([p.n, p.n * 2]), 50));")
            #expect(try await platform.invoke("later", ["n": 21], result: true).json == [21, 42])
            try await create("throws", "function main() { throw new Error('nope'); }")
            let thrown = try await platform.invoke("throws")
            #expect(thrown.status == 502 && thrown.json["response"]?["status"] == "application error", "\(thrown.json)")
            #expect(thrown.json["response"]?["result"]?["error"]?.stringValue?.contains("nope") == true)
            try await create("scalar", "function main() { return 7; }")
            #expect(try await platform.invoke("scalar").json["response"]?["status"] == "action developer error")
            try await create("broken", "function main( {")
            let broken = try await platform.invoke("broken")
            #expect(broken.json["response"]?["status"] == "action developer error", "\(broken.json)")
            #expect(broken.json["response"]?["result"]?["error"]?.stringValue?.contains("Initialization has failed") == true || broken.json["response"]?["result"]?["error"]?.stringValue?.contains("initialize") == true,
                    "\(broken.json)")
        }
    }

    /// Numbers reach the action as the caller wrote them, as upstream passes them: 1.0 is a float,
    /// a 20-digit integer keeps its digits (Foundation's coders made them 1 and 1.2345678901234567e19).
    @Test func parametersReachTheActionWithTheirNumbersAsWritten() async throws {
        try await withPlatform(invokers: 1) { platform in
            try await platform.createAction("numbers", code: """
            def main(args):
                return {k: type(v).__name__ + ":" + repr(v) for k, v in args.items()}
            """)
            let body = Data(#"{"a": 1.0, "b": 12345678901234567890, "c": 1e2, "d": 7, "e": 0.5}"#.utf8)
            let reply = try await platform.request("POST", "/api/v1/namespaces/_/actions/numbers?blocking=true&result=true", body: body)
            #expect(reply.status == 200)
            #expect(reply.json == ["a": "float:1.0", "b": "int:12345678901234567890", "c": "float:100.0", "d": "int:7", "e": "float:0.5"], "\(reply.json)")
        }
    }

    /// Upstream's Kafka setup: the topics that carry activations and acks take 1 MB payloads, and
    /// every topic has upstream's segments and retention (two days for `invokerN`, an hour for
    /// the rest), so that a long-running platform's topics stay bounded.
    @Test func topicsAreCreatedWithUpstreamsMessageSizeAndRetention() async throws {
        try await withPlatform(invokers: 1) { platform in
            let admin = try KafkaAdmin(configuration: try TestEnvironment.requireBrokers(), logger: TestEnvironment.logger)
            let invoker = try await admin.topicConfigs(platform.prefix + "invoker0")
            let completed = try await admin.topicConfigs(platform.prefix + "completed0")
            let health = try await admin.topicConfigs(platform.prefix + "health")
            let addressMap = try await admin.topicConfigs(platform.prefix + "addressmap")
            await admin.close()
            #expect(invoker["max.message.bytes"] == "1054644", "\(invoker)")
            #expect(completed["max.message.bytes"] == "1054644", "\(completed)")
            #expect(health["max.message.bytes"] != "1054644", "positive control: health is created without it")
            #expect(invoker["retention.ms"] == "172800000", "\(invoker)")
            for configs in [completed, health, addressMap] {
                #expect(configs["retention.ms"] == "3600000", "\(configs)")
            }
            for configs in [invoker, completed, health, addressMap] {
                #expect(configs["retention.bytes"] == "1073741824" && configs["segment.bytes"] == "536870912", "\(configs)")
            }
        }
    }

    /// List entries are the contract's ActivationBrief (upstream's summary); list windows and
    /// epochs that are not integers or out of range are a 400 with upstream's message; the
    /// namespace's limits are what the platform enforces.
    @Test func listsAndLimitsFollowTheContract() async throws {
        try await withPlatform(invokers: 1) { platform in
            try await platform.createAction("greet", code: Self.greet)
            let reply = try await platform.invoke("greet", ["name": "brief"])
            let id = try #require(reply.json["activationId"]?.stringValue, "\(reply.json)")
            let list = try await platform.request("GET", "/api/v1/namespaces/_/activations?limit=0")
            #expect(list.status == 200)
            let entry = try #require(list.json.arrayValue?.first { $0["activationId"]?.stringValue == id }, "\(list.json)")
            #expect(Set(entry.objectValue?.keys.map { $0 } ?? []) == ["namespace", "name", "version", "publish", "annotations", "activationId",
                                                                    "start", "end", "duration", "statusCode"])
            #expect(entry["publish"] == false && entry["statusCode"] == 0 && entry["name"] == "greet")

            for (path, message) in [
                ("/activations?skip=abc", "The value 'abc' is not an integer for activations."),
                ("/activations?skip=-1", "The value '-1' is not greater than or equal to 0 for activations."),
                ("/activations?limit=201", "The value '201' is not in the range of 0 to 200 for activations."),
                ("/activations?limit=1.5", "The value '1.5' is not an integer for activations."),
                ("/activations?since=yesterday", "Parameter is not a valid value for epoch seconds: yesterday"),
                ("/actions?skip=x", "The value 'x' is not an integer for actions."),
            ] {
                let refused = try await platform.request("GET", "/api/v1/namespaces/_\(path)")
                #expect(refused.status == 400, "\(path): \(refused.status)")
                #expect(refused.json["error"]?.stringValue == message, "\(path): \(refused.json)")
            }
            let one = try await platform.request("GET", "/api/v1/namespaces/_/activations?limit=1&skip=0")
            #expect(one.status == 200 && one.json.arrayValue?.count == 1, "positive control: valid values are accepted")

            let limits = try await platform.request("GET", "/api/v1/namespaces/_/limits")
            #expect(limits.status == 200)
            #expect(limits.json["minActionMemory"] == 128 && limits.json["maxActionMemory"] == 2048)
            #expect(limits.json["minActionTimeout"] == 100 && limits.json["maxActionTimeout"] == 300_000)
            #expect(limits.json["maxActionLogs"] == 10 && limits.json["maxActionConcurrency"] == 1)
            #expect(limits.json["maxParameterSize"] == "1048576 B")
            #expect(limits.json["allowedKinds"]?.arrayValue?.contains("python:3") == true)
            let other = try await platform.request("GET", "/api/v1/namespaces/someoneelse/limits")
            #expect(other.status == 403)
        }
    }

    /// Upstream's `provide-api-key`: a new action gets the annotation false and no API key; one
    /// that asks for it gets `__OW_API_KEY`; every action carries its kind as `exec`.
    @Test func theAPIKeyGoesOnlyToActionsThatAskForIt() async throws {
        try await withPlatform(invokers: 1) { platform in
            let code = "import os\ndef main(args):\n    return {'key': os.environ.get('__OW_API_KEY')}\n"
            try await platform.createAction("keyless", code: code)
            let keyless = try await platform.request("GET", "/api/v1/namespaces/_/actions/keyless")
            let annotations = keyless.json["annotations"]?.arrayValue ?? []
            #expect(annotations.contains(["key": "provide-api-key", "value": false]), "\(annotations)")
            #expect(annotations.contains(["key": "exec", "value": "python:3"]), "\(annotations)")
            #expect(try await platform.invoke("keyless", result: true).json == ["key": nil])

            let body: JSONValue = ["exec": ["kind": "python:3", "code": .string(code)], "annotations": [["key": "provide-api-key", "value": true]]]
            #expect(try await platform.request("PUT", "/api/v1/namespaces/_/actions/keyed", json: body).status == 200)
            let keyed = try await platform.invoke("keyed", result: true)
            #expect(keyed.json["key"]?.stringValue == Platform.guestAuth, "positive control: the key reaches an action that asks: \(keyed.json)")
        }
    }

    /// Upstream accepts a JSON array as an action's result; a scalar is the developer's error.
    @Test func anArrayResultIsAResult() async throws {
        try await withPlatform(invokers: 1) { platform in
            try await platform.createAction("listy", code: "def main(args):\n    return [args.get('n', 0), 'two', {'x': None}]\n")
            let reply = try await platform.invoke("listy", ["n": 1], result: true)
            #expect(reply.status == 200)
            #expect(reply.json == [1, "two", ["x": nil]], "\(reply.json)")
            try await platform.createAction("scalar", code: "def main(args):\n    return 42\n")
            let scalar = try await platform.invoke("scalar", result: true)
            #expect(scalar.status == 502, "positive control: a scalar is refused")
            #expect(scalar.json["error"]?.stringValue?.contains("did not return a dictionary or an array") == true, "\(scalar.json)")
        }
    }

    /// A parameter marked `init` goes to `/init`'s environment and not to `/run`'s value, as
    /// upstream's ContainerProxy partitions them; the others stay parameters.
    @Test func initParametersReachTheEnvironmentAndNotTheArguments() async throws {
        try await withPlatform(invokers: 1) { platform in
            let code = """
            import os
            def main(args):
                return {"args": sorted(args.keys()), "env": os.environ.get("SECRET")}
            """
            let body: JSONValue = [
                "exec": ["kind": "python:3", "code": .string(code)],
                "parameters": [["key": "SECRET", "value": "s3cr3t", "init": true], ["key": "plain", "value": 1]],
            ]
            let created = try await platform.request("PUT", "/api/v1/namespaces/_/actions/envy", json: body)
            #expect(created.status == 200, "\(created.json)")
            let reply = try await platform.invoke("envy", ["extra": true], result: true)
            #expect(reply.json == ["args": ["extra", "plain"], "env": "s3cr3t"], "\(reply.json)")
        }
    }

    /// A SIGTERM that arrives while the pool is making stem cells (Docker calls in flight) leaves
    /// no container behind. CI once saw one outlive its invoker: the shutdown cancelled the pool's
    /// maintenance in the middle of a create, Docker made the container, the pool never learned its id.
    /// The stop lands every 50 ms of the first second of the stem-cell burst (without the fix,
    /// one run of these 20 stops left a `created` stem cell at 400 ms; each stop costs ~6 s).
    @Test func aShutdownDuringStemCellCreationLeavesNoContainer() async throws {
        try await withPlatform(invokers: 1) { platform in
            try await platform.createAction("greet", code: Self.greet)
            var configuration = DockerClient.Configuration()
            configuration.socketPath = TestEnvironment.dockerSocket
            let docker = DockerClient(configuration: configuration, logger: TestEnvironment.logger)
            defer { Task { await docker.shutdown() } }
            let labels = ["org.whiskmesh.test=\(platform.runLabel)", "org.whiskmesh.invoker=0"]
            await platform.terminate(invoker: 0)
            for delay in stride(from: 0, to: 1000, by: 50) {
                try platform.startInvoker(0, prewarm: 4)
                try await waitUntil("invoker0 is up", timeout: .seconds(60)) { (try? await platform.invokerStates())?["invoker0/0"] == "up" }
                // An activation makes the namespace recent: the pool's next pass makes its stem cells.
                _ = try await platform.invoke("greet", ["name": .string("stem \(delay)")], result: true)
                try await waitUntil("the first stem cell exists", timeout: .seconds(30)) {
                    ((try? await docker.listContainers(labels: labels)) ?? []).contains { $0.names.contains { $0.hasSuffix("_prewarm") } }
                }
                try await Task.sleep(for: .milliseconds(delay))
                await platform.terminate(invoker: 0)
                let left = try await docker.listContainers(labels: labels)
                #expect(left.isEmpty, "stopped \(delay) ms into the stem cells: containers left: \(left.map(\.names))")
                for container in left { try? await docker.removeContainer(container.id) }
            }
            try platform.startInvoker(0)
            try await waitUntil("invoker0 is up", timeout: .seconds(60)) { (try? await platform.invokerStates())?["invoker0/0"] == "up" }
        }
    }

    /// The hosts (container ids) that `count` concurrent invokes of a ``whereAmI`` action ran on;
    /// with `instances`, each invoke has an instance ID of its own.
    func burst(_ platform: Platform, _ action: String, count: Int, instances: Bool) async throws -> [String] {
        try await withThrowingTaskGroup(of: String?.self) { group in
            for n in 0..<count {
                let parameters: JSONValue = instances ? ["instanceID": .string("\(action)-\(n)")] : [:]
                group.addTask { try await platform.invoke(action, parameters, result: true).json["host"]?.stringValue }
            }
            var hosts: [String] = []
            for try await host in group { if let host { hosts.append(host) } }
            return hosts
        }
    }

    /// A burst of short activations on an empty pool waits for the action's first containers
    /// instead of a cold start each (16 cold starts at once took 3-4 s each on two cores); the
    /// same burst with instance IDs (a group whose members may wait for each other) gets one
    /// container per activation, since those must never queue behind each other.
    @Test func aBurstSharesTheActionsFirstContainersButInstancesGetOneEach() async throws {
        try await withPlatform(invokers: 1) { platform in
            try await platform.createAction("where", code: Self.whereAmI)
            try await platform.createAction("where-i", code: Self.whereAmI)
            let plain = try await burst(platform, "where", count: 8, instances: false)
            #expect(plain.count == 8, "every activation answered: \(plain)")
            #expect(Set(plain).count < 8, "eight cold starts for eight 1 ms runs: \(plain)")
            let grouped = try await burst(platform, "where-i", count: 8, instances: true)
            #expect(grouped.count == 8 && Set(grouped).count == 8, "instances each in a container of their own: \(grouped)")
        }
    }

    /// Five instances of a 128 MB action `first` at once (five cold starts), `ready` awaited, then
    /// five of `second`: the names of the containers those ran in.
    func containersOfASecondBurst(_ platform: Platform, ready: (DockerClient) async throws -> Void) async throws -> [String] {
        for name in ["first", "second"] {
            let reply = try await platform.request("PUT", "/api/v1/namespaces/_/actions/\(name)",
                                                   json: ["exec": ["kind": "python:3", "code": .string(Self.whereAmI)], "limits": ["memory": 128]])
            #expect(reply.status == 200, "\(reply.json)")
        }
        var configuration = DockerClient.Configuration()
        configuration.socketPath = TestEnvironment.dockerSocket
        let docker = DockerClient(configuration: configuration, logger: TestEnvironment.logger)
        defer { Task { await docker.shutdown() } }
        #expect(try await burst(platform, "first", count: 5, instances: true).count == 5)
        try await ready(docker)
        let hosts = try await burst(platform, "second", count: 5, instances: true)
        #expect(hosts.count == 5)
        var names: [String] = []
        for host in hosts { names.append(try await docker.inspectContainer(host).name) }
        return names
    }

    /// After a burst of cold starts in a namespace, the invoker keeps that many stem cells for it
    /// (attached to its overlay, its map mounted), so the next burst — a new action, or a new
    /// revision of the job — starts in them instead of paying the overlay attach each.
    @Test func aNamespacesStemCellsFollowItsLastBurst() async throws {
        try await withPlatform(invokers: 1, prewarm: 1) { platform in
            let names = try await containersOfASecondBurst(platform) { docker in
                // Ready stem cells: named for "prewarm" and on the namespace's overlay besides the action network.
                try await waitUntil("five attached stem cells", timeout: .seconds(90)) {
                    let cells = ((try? await docker.listContainers(labels: ["org.whiskmesh.test=\(platform.runLabel)"])) ?? []).filter { $0.names.contains { $0.hasSuffix("_prewarm") } }
                    var attached = 0
                    for cell in cells where ((try? await docker.inspectContainer(cell.id).networks.count) ?? 0) >= 2 { attached += 1 }
                    return attached >= 5
                }
                try await Task.sleep(for: .seconds(1))  // the pool marks a cell ready just after Docker attached it
            }
            for name in names {
                #expect(name.hasSuffix("_prewarm"), "\(name) was made for the burst instead of taken from the stem cells")
            }
        }
    }

    /// Without the overlay, a kind's stem cells follow its last burst of cold starts the same way
    /// (upstream's reactive stem cells): after five cold starts at once, the next five of another
    /// action start in stem cells, not in containers made for them.
    @Test func aKindsStemCellsFollowItsLastBurstWithoutTheOverlay() async throws {
        try await withPlatform(invokers: 1, prewarm: 1, invokerFlags: ["--no-overlay"]) { platform in
            let names = try await containersOfASecondBurst(platform) { _ in
                try await waitUntil("five ready stem cells, the burst's size", timeout: .seconds(60)) {
                    (platform.poolSnapshot(invoker: 0)?.stemCells.count ?? 0) >= 5
                }
            }
            for name in names {
                #expect(name.contains("_prewarm_"), "\(name) was made for the burst instead of taken from the stem cells")
            }
        }
    }

    /// The stem cells sized to a burst are made once the invoker has been quiet (no activation
    /// waiting for a container or starting cold) for `--prewarm-burst-quiet`, not while the
    /// burst's load still runs, where they took its CPU; and they are made then, without a
    /// maintenance pass (set to ten minutes here). Checked: with `--prewarm-burst-quiet 0` the
    /// first expectation fails (the extra ones are being made at once), and without the deferred
    /// top-up the wait for five times out.
    @Test func aBurstsStemCellsWaitUntilTheInvokerIsQuiet() async throws {
        let quiet = 4.0
        try await withPlatform(invokers: 1, prewarm: 1, invokerFlags: ["--maintenance-interval", "600", "--prewarm-burst-quiet", "\(quiet)"]) { platform in
            // 128 MB, so that the burst's five containers and five stem cells fit the pool's 2 GB.
            let reply = try await platform.request("PUT", "/api/v1/namespaces/_/actions/first",
                                                   json: ["exec": ["kind": "python:3", "code": .string(Self.whereAmI)], "limits": ["memory": 128]])
            #expect(reply.status == 200, "\(reply.json)")
            #expect(try await burst(platform, "first", count: 5, instances: true).count == 5)
            let burstEnded = ContinuousClock.now
            // Stem cells ready or being made (nothing else is made after the burst).
            let stemCells = { () -> Int in platform.poolSnapshot(invoker: 0).map { $0.stemCells.count + $0.creating } ?? 0 }
            var most = 0
            while ContinuousClock.now < burstEnded + .seconds(quiet / 2) {
                most = max(most, stemCells())
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(most <= 1, "\(most) stem cells within \(quiet / 2) s of the burst: only the namespace's own one may be made so soon")
            try await waitUntil("five stem cells, the burst's size", timeout: .seconds(60)) {
                (platform.poolSnapshot(invoker: 0)?.stemCells.count ?? 0) >= 5
            }
        }
    }

    /// A namespace's first activation makes it recent on every invoker, not only on the one it
    /// reached: the controller announces it (`namespaceActive` on `addressmap`), and the other
    /// invoker makes a stem cell on the namespace's overlay too, so the namespace's first cold
    /// start there finds one. Maintenance at 600 s: only the announcement can make it.
    @Test func aNamespaceInvokedOnOneInvokerGetsStemCellsOnEvery() async throws {
        try await withPlatform(invokers: 2, prewarm: 1, invokerFlags: ["--maintenance-interval", "600"]) { platform in
            try await platform.createAction("first", code: Self.whereAmI)
            let stemCells = { (invoker: Int) in platform.poolSnapshot(invoker: invoker)?.stemCells ?? [] }
            #expect(stemCells(0).isEmpty && stemCells(1).isEmpty, "no namespace is recent before its first activation")
            let hosts = try await burst(platform, "first", count: 1, instances: false)
            let host = try #require(hosts.first)
            let ran = try #require(try await invokerOf(host: host).flatMap { Int($0) })
            let other = 1 - ran
            try await waitUntil("a stem cell for the namespace on invoker\(other), which ran nothing", timeout: .seconds(60)) { !stemCells(other).isEmpty }
            try await waitUntil("and on invoker\(ran), which ran it", timeout: .seconds(60)) { !stemCells(ran).isEmpty }
        }
    }

    /// A namespace's first activation gets it its first stem cell, and a stem cell an activation
    /// takes is replaced, both at once: not at the pool's next maintenance pass (set to ten
    /// minutes here, so only the immediate replacement can make them). Upstream's pool replaces a
    /// prewarmed container as it takes it; left to a 5 s pass, one fresh action in ten of a
    /// namespace invoked every few seconds found no stem cell and paid the overlay attach.
    @Test func aTakenStemCellIsReplacedAtOnce() async throws {
        try await withPlatform(invokers: 1, prewarm: 1, invokerFlags: ["--maintenance-interval", "600"]) { platform in
            for name in ["first", "second", "third"] { try await platform.createAction(name, code: Self.whereAmI) }
            var configuration = DockerClient.Configuration()
            configuration.socketPath = TestEnvironment.dockerSocket
            let docker = DockerClient(configuration: configuration, logger: TestEnvironment.logger)
            defer { Task { await docker.shutdown() } }
            // Stem cells the pool has finished making (attached to the overlay, map mounted).
            let readyStemCells = { Set(platform.poolSnapshot(invoker: 0)?.stemCells ?? []) }
            #expect(readyStemCells().isEmpty, "no namespace is recent before its first activation")
            let first = try await burst(platform, "first", count: 1, instances: false)
            #expect(first.count == 1)
            try await waitUntil("the namespace's first stem cell", timeout: .seconds(60)) { !readyStemCells().isEmpty }
            var taken: Set<String> = []
            for name in ["second", "third"] {
                let cells = readyStemCells()
                let hosts = try await burst(platform, name, count: 1, instances: false)
                #expect(hosts.count == 1)
                for host in hosts {
                    let full = try await docker.inspectContainer(host)
                    #expect(cells.contains(full.id), "\(name) ran in \(full.name), not in the stem cell \(cells)")
                    taken.insert(full.id)
                }
                try await waitUntil("a stem cell in place of the one \(name) took", timeout: .seconds(60)) {
                    let now = readyStemCells()
                    return !now.isEmpty && now.isDisjoint(with: taken)
                }
            }
        }
    }

    /// A Docker client and a name of its own for an action network; every network of that name
    /// is removed after `body`, whatever happens.
    func withActionNetworkName(_ body: (DockerClient, String) async throws -> Void) async throws {
        let name = TestEnvironment.uniqueName("wmactions")
        var configuration = DockerClient.Configuration()
        configuration.socketPath = TestEnvironment.dockerSocket
        let docker = DockerClient(configuration: configuration, logger: TestEnvironment.logger)
        func cleanUp() async {
            for left in (try? await Self.networks(named: name, docker)) ?? [] { try? await docker.removeNetwork(left.id) }
            await docker.shutdown()
        }
        do {
            try await body(docker, name)
        } catch {
            await cleanUp()
            throw error
        }
        await cleanUp()
    }

    static func networks(named name: String, _ docker: DockerClient) async throws -> [NetworkInspect] {
        try await docker.listNetworks(name: name).filter { $0.name == name }
    }

    /// The action network removed under a running invoker (by an operator or `scripts/stop` while
    /// the invoker had no container, or as the duplicate that another invoker starting at the
    /// same moment made and then removed): the invoker makes it again and the activation runs.
    /// Its container's start used to fail, and the activation with it (a 500).
    @Test func anActionNetworkRemovedUnderTheInvokerIsMadeAgain() async throws {
        try await withActionNetworkName { docker, network in
            try await withPlatform(invokers: 1, invokerFlags: ["--action-network", network]) { platform in
                try await platform.createAction("where", code: Self.whereAmI)
                let made = try await Self.networks(named: network, docker)
                #expect(made.count == 1, "the invoker made its action network at start")
                for gone in made { try await docker.removeNetwork(gone.id) }
                #expect(try await Self.networks(named: network, docker).isEmpty, "positive control: the network is gone before the invoke")
                let reply = try await platform.invoke("where", result: true)
                #expect(reply.status == 200, "\(reply.json)")
                #expect(reply.json["host"]?.stringValue != nil)
                #expect(try await Self.networks(named: network, docker).count == 1)
            }
        }
    }

    /// Containers made at once on an action network that then went all fail to start, naming
    /// the id they were made on, and all ask for the network again: they share one pass (side by
    /// side, each could make a network), and every id the network had counts as its own (the
    /// full test run once failed an activation so: it was checked against the new id only).
    @Test func containersThatFailTogetherOnAGoneActionNetworkShareOnePassAndAllCount() async throws {
        try await withActionNetworkName { docker, name in
            let network = ActionNetwork(docker: docker, name: name, logger: TestEnvironment.logger)
            let first = try await network.id()
            #expect(await network.passes == 1)
            try await docker.removeNetwork(first)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 { group.addTask { try await network.ensure() } }
                try await group.waitForAll()
            }
            #expect(await network.passes == 2, "eight at once made one pass")
            try await network.ensure()
            #expect(await network.passes == 3, "positive control: one after the other, a pass each")
            #expect(try await Self.networks(named: name, docker).count == 1)
            let second = try await network.id()
            #expect(first != second, "made anew")
            func refused(_ id: String) -> DockerError {
                DockerError(.engine, status: 500, "Could not attach to network \(id): rpc error: code = NotFound desc = network \(id) not found")
            }
            #expect(await network.isMissing(refused(second)), "positive control: the current id")
            #expect(await network.isMissing(refused(first)), "an earlier id")
            #expect(await !network.isMissing(refused("0123456789abcdef")), "another network's")
        }
    }

    /// A second action network of the same name (two invokers on one host made one each at the
    /// same moment) while a container runs on the first: no container can start while the name
    /// is ambiguous, so the invoker removes the one without containers, whichever id sorts first,
    /// and the next activation runs. The duplicate is made with an id below the first's: keeping
    /// the smallest id (the earlier rule) left both, and every start failed.
    @Test func aDuplicateActionNetworkIsRemovedAndTheOneInUseKept() async throws {
        try await withActionNetworkName { docker, network in
            try await withPlatform(invokers: 1, invokerFlags: ["--action-network", network]) { platform in
                try await platform.createAction("first", code: Self.whereAmI)
                try await platform.createAction("second", code: Self.whereAmI)
                _ = try await platform.invoke("first", result: true)  // its container stays, warm, on the network
                let original = try #require(try await Self.networks(named: network, docker).first)
                #expect(try await docker.inspectNetwork(original.id).containerCount == 1)
                var spec = NetworkSpec(name: network, driver: "bridge")
                spec.internal = true
                spec.options = ["com.docker.network.bridge.enable_icc": "false"]
                spec.checkDuplicate = false
                var duplicate = try await docker.createNetwork(spec)
                // Ids are random: one in 1 / (the original's place in the id space) sorts first,
                // so an original whose id starts with 07 takes ~36 tries (30 left it to chance).
                let deadline = ContinuousClock.now + .seconds(90)
                while duplicate > original.id, ContinuousClock.now < deadline {
                    try await docker.removeNetwork(duplicate)
                    duplicate = try await docker.createNetwork(spec)
                }
                try #require(duplicate < original.id, "a duplicate whose id sorts first")
                #expect(try await Self.networks(named: network, docker).count == 2, "positive control: two networks share the name")
                let reply = try await platform.invoke("second", result: true)
                #expect(reply.status == 200, "\(reply.json)")
                #expect(try await Self.networks(named: network, docker).map(\.id) == [original.id], "the duplicate went, the network in use stayed")
                #expect(try await platform.invoke("first", result: true).status == 200, "the warm container still answers")
            }
        }
    }

    @Test func actionExceedingItsTimeoutFailsAndItsContainerIsRemoved() async throws {
        try await withPlatform(invokers: 1) { platform in
            try await platform.createAction("sleepy", code: "import time\ndef main(args):\n    time.sleep(30)\n    return {}\n", timeout: 1000)
            let reply = try await platform.invoke("sleepy")
            #expect(reply.status == 502)
            #expect(reply.json["response"]?["status"] == "action developer error")
            #expect(reply.json["response"]?["result"]?["error"]?.stringValue?.contains("exceeded its time limits of 1000 milliseconds") == true)
            let annotations = reply.json["annotations"]?.arrayValue ?? []
            #expect(annotations.contains { $0["key"] == "timeout" && $0["value"] == true })
            var configuration = DockerClient.Configuration()
            configuration.socketPath = TestEnvironment.dockerSocket
            let docker = DockerClient(configuration: configuration, logger: TestEnvironment.logger)
            try await waitUntil("the timed-out container is gone") {
                let containers = try await docker.listContainers(labels: ["org.whiskmesh.test=\(platform.runLabel)"])
                return !containers.contains { $0.names.contains { $0.hasSuffix("_sleepy") } }
            }
            await docker.shutdown()
        }
    }

    /// Garbage, truncated JSON, wrong types and 1 MiB of junk on every topic the platform
    /// consumes besides `invokerN`: the consumers keep consuming, activations still run and the
    /// address map still converges.
    @Test func junkOnTheCompletionHealthAndAddressMapTopicsStopsNoConsumer() async throws {
        try await withPlatform { platform in
            try await platform.createAction("greet", code: Self.greet)
            _ = try await platform.invoke("greet", ["name": "before"], result: true)
            let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(client: try TestEnvironment.requireBrokers()), logger: TestEnvironment.logger)
            let junk = String(repeating: "\u{1}junk", count: 200_000)  // 1 MB of it
            let bad = ["", "not json", "{\"truncated\": ", "[1, 2, 3]", "{\"name\": 42, \"isEnabled\": \"yes\"}",
                       "{\"type\": \"delta\", \"namespace\": 7}", "{\"response\": {\"activationId\": null}}", junk]
            for topic in ["completed0", "health", "addressmap"] {
                for text in bad { try await producer.send(topic: platform.prefix + topic, string: text) }
            }
            await producer.close()
            // Every consumer is still at work: invokers stay up (health), results come back
            // (completed0), and an instance appears in and leaves both invokers' map files (addressmap).
            try await waitUntil("both invokers are up", timeout: .seconds(30)) {
                let states = try? await platform.invokerStates()
                return states?["invoker0/0"] == "up" && states?["invoker1/1"] == "up"
            }
            let reply = try await platform.invoke("greet", ["name": "after junk"], result: true)
            #expect(reply.json == ["greeting": "Hello after junk"])
            try await platform.createAction("nap", code: "import time\ndef main(args):\n    time.sleep(3)\n    return {}\n")
            let nap = try await platform.invoke("nap", ["instanceID": "after-junk"], blocking: false)
            #expect(nap.status == 202)
            try await platform.waitForInstanceToComeAndGo("after-junk")
        }
    }

    @Test func noHealthyInvokerIs503AndABlockingWaitThatRunsOutIs202() async throws {
        try await withPlatform(invokers: 1) { platform in
            // Blocking, but longer than the controller waits (scripts start it with 60 s; this
            // platform's controller is restarted with 2 s): the answer is 202 and the id.
            try await platform.restartController(blockingTimeout: 2)
            try await waitUntil("invoker0 is up for the new controller", timeout: .seconds(30)) {
                (try? await platform.invokerStates())?["invoker0/0"] == "up"
            }
            try await platform.createAction("nap", code: "import time\ndef main(args):\n    time.sleep(float(args.get('s', 0)))\n    return {'slept': args.get('s', 0)}\n")
            let slow = try await platform.invoke("nap", ["s": 6])
            #expect(slow.status == 202, "\(slow.json)")
            let id = try #require(slow.json["activationId"]?.stringValue)
            try await waitUntil("the slow activation's record", timeout: .seconds(60)) {
                (try? await platform.request("GET", "/api/v1/namespaces/_/activations/\(id)"))?.status == 200
            }
            // No invoker at all: 503 with OpenWhisk's error body, never a hang.
            await platform.kill(invoker: 0)
            try await waitUntil("invoker0 is down", timeout: .seconds(30)) {
                (try? await platform.invokerStates())?["invoker0/0"] != "up"
            }
            let refused = try await platform.invoke("nap", ["s": 0])
            #expect(refused.status == 503, "\(refused.json)")
            #expect(refused.json["error"]?.stringValue?.isEmpty == false)
        }
    }

    @Test func malformedActivationMessageIsSkippedAndTheInvokerKeepsServing() async throws {
        try await withPlatform(invokers: 1) { platform in
            let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(client: try TestEnvironment.requireBrokers()), logger: TestEnvironment.logger)
            try await producer.send(topic: platform.prefix + "invoker0", string: "{\"this is\": \"not an activation\"")
            try await producer.send(topic: platform.prefix + "invoker0", string: "{\"transid\": [\"x\", 1]}")
            await producer.close()
            try await platform.createAction("greet", code: Self.greet)
            let reply = try await platform.invoke("greet", ["name": "after garbage"], result: true)
            #expect(reply.json == ["greeting": "Hello after garbage"])
            let log = (try? String(contentsOfFile: "\(platform.logDirectory)/invoker0.log", encoding: .utf8)) ?? ""
            #expect(log.contains("malformed activation message skipped"))
        }
    }
}

extension Platform {
    func invoke(_ name: String, auth: String) async throws -> Reply {
        try await request("POST", "/api/v1/namespaces/_/actions/\(name)?blocking=true", json: [:], auth: auth)
    }
}
