import Foundation
import Testing
import WhiskDocker
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
            platform.kill(invoker: victim)
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
            platform.terminate(invoker: 0)
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
