import Foundation
import Testing
import WhiskMessages

/// Sequences with annotation p2p: intermediate results go from one component's instance to the
/// next over the namespace's overlay, never through Kafka or the controller.
@Suite("Peer-to-peer sequences", .serialized)
struct PeerToPeerSequenceTests {
    static let make = "def main(a):\n    return {'data': 'x' * int(a['size']), 'size': int(a['size'])}\n"
    static let pass = "def main(a):\n    return {'data': a['data'], 'seen': len(a['data']), 'size': a['size']}\n"
    static let summarize = """
        def main(a):
            return {'len': len(a['data']), 'seen': a['seen'], 'size': a['size'], 'head': a['data'][:3], 'greeting': a.get('greeting')}
        """

    func createPipeline(_ platform: Platform, name: String, components: [String], timeout: Int? = nil, p2p: Bool = true) async throws {
        var body: [String: JSONValue] = ["exec": ["kind": "sequence", "components": .array(components.map { .string("/_/\($0)") })]]
        if p2p { body["annotations"] = [["key": "p2p", "value": true]] }
        if let timeout { body["limits"] = ["timeout": .int(Int64(timeout))] }
        let reply = try await platform.request("PUT", "/api/v1/namespaces/_/actions/\(name)", json: .object(body))
        #expect(reply.status == 200, "\(reply.json)")
    }

    func createAction(_ platform: Platform, _ name: String, code: String, memory: Int = 256, parameters: JSONValue? = nil) async throws {
        var body: [String: JSONValue] = ["exec": ["kind": "python:3", "code": .string(code)], "limits": ["memory": .int(Int64(memory)), "timeout": 120_000]]
        if let parameters { body["parameters"] = parameters }
        let reply = try await platform.request("PUT", "/api/v1/namespaces/_/actions/\(name)", json: .object(body))
        #expect(reply.status == 200, "create \(name): \(reply.json)")
    }

    func record(_ platform: Platform, _ id: String) async throws -> JSONValue {
        var found: JSONValue = .null
        try await waitUntil("record \(id)", timeout: .seconds(60)) {
            let reply = try await platform.request("GET", "/api/v1/namespaces/_/activations/\(id)")
            found = reply.json
            return reply.status == 200
        }
        return found
    }

    /// The invokers the controller's map shows for the instances whose IDs start with `prefix`,
    /// once `count` of them are live at once.
    func invokersOfLiveInstances(_ platform: Platform, prefix: String, count: Int) async throws -> [String: Int] {
        var seen: [String: Int] = [:]
        try await waitUntil("\(count) instances \(prefix)* live", timeout: .seconds(60)) {
            let map = try await platform.request("GET", "/api/v1/namespaces/_/addressmap")
            for instance in map.json["instances"]?.arrayValue ?? [] {
                if let id = instance["id"]?.stringValue, id.hasPrefix(prefix), let invoker = instance["invoker"]?.int64Value {
                    seen[id] = Int(invoker)
                }
            }
            return seen.count >= count
        }
        return seen
    }

    /// The stages of one pipeline run on one invoker while it has room, though each component
    /// action has a home invoker of its own: each finds the previous stage in its invoker's own
    /// map, and the data stays on the host.
    @Test func aPipelinesStagesRunOnOneInvoker() async throws {
        try await withPlatform { platform in
            let stage = "import time\ndef main(a):\n    time.sleep(float(a.get('sleep', 0)))\n    return {'n': a.get('n', 0) + 1}\n"
            let names = ["stage-a", "stage-b", "stage-c", "stage-d"]
            for name in names { try await createAction(platform, name, code: stage) }
            // Positive control: invoked alone, the four actions are spread over both invokers.
            var alone: [Task<Platform.Reply, any Error>] = []
            for name in names {
                alone.append(Task { try await platform.invoke(name, ["sleep": 3, "instanceID": .string("alone-\(name)")]) })
            }
            let homes = try await invokersOfLiveInstances(platform, prefix: "alone-", count: names.count)
            #expect(Set(homes.values).count == 2, "the actions' homes: \(homes)")
            for task in alone { #expect(try await task.value.status == 200) }

            try await createPipeline(platform, name: "pipeline", components: names)
            let run = Task { try await platform.invoke("pipeline", ["sleep": 3], result: true) }
            let stages = try await invokersOfLiveInstances(platform, prefix: "p2p-", count: names.count)
            #expect(Set(stages.values).count == 1, "the stages' invokers: \(stages)")
            let result = try await run.value
            #expect(result.status == 200 && result.json["n"] == .int(4), "\(result.json)")
        }
    }

    /// A three-stage pipeline: the result is the classic sequence's, the action's default
    /// parameters still apply, and the intermediate data went stage to stage (each intermediate
    /// record holds only where its result went); no instance stays in the map.
    @Test func aPipelinePassesResultsOverTheOverlay() async throws {
        try await withPlatform { platform in
            try await createAction(platform, "make", code: Self.make)
            try await createAction(platform, "pass", code: Self.pass)
            try await createAction(platform, "summarize", code: Self.summarize, parameters: [["key": "greeting", "value": "hi"]])
            try await createPipeline(platform, name: "p2p", components: ["make", "pass", "summarize"])
            try await createPipeline(platform, name: "classic", components: ["make", "pass", "summarize"], p2p: false)

            let expected: JSONValue = ["len": 1000, "seen": 1000, "size": 1000, "head": "xxx", "greeting": "hi"]
            let classic = try await platform.invoke("classic", ["size": 1000], result: true)
            #expect(classic.status == 200 && classic.json == expected, "\(classic.json)")
            let p2p = try await platform.invoke("p2p", ["size": 1000])
            #expect(p2p.status == 200, "\(p2p.json)")
            #expect(p2p.json["response"]?["result"] == expected, "\(p2p.json)")
            let logs = p2p.json["logs"]?.arrayValue?.compactMap(\.stringValue) ?? []
            #expect(logs.count == 3, "\(p2p.json)")
            for (index, id) in logs.enumerated() {
                let stage = try await record(platform, id)
                let result = stage["response"]?["result"] ?? .null
                #expect(stage["cause"]?.stringValue == p2p.json["activationId"]?.stringValue, "stage \(index) names its sequence")
                if index < 2 {
                    #expect(result["p2p"]?["bytes"]?.int64Value ?? 0 > 1000, "stage \(index) forwarded its result: \(result)")
                    #expect(result["data"] == nil, "no data through Kafka: \(result)")
                }
            }
            // Again, warm: the same containers serve a second run.
            let again = try await platform.invoke("p2p", ["size": 10], result: true)
            #expect(again.json["len"] == 10, "\(again.json)")
            try await waitUntil("p2p instances left the map", timeout: .seconds(30)) {
                let map = try await platform.addressMap()
                return !map.instances.contains { $0.id.hasPrefix("p2p-") }
            }
        }
    }

    /// 256 MiB between stages: far over Kafka's 1 MiB message limit, where the classic sequence fails.
    @Test func intermediateResultsAreNotBoundedByKafka() async throws {
        try await withPlatform { platform in
            try await createAction(platform, "make", code: Self.make, memory: 1024)
            try await createAction(platform, "pass", code: Self.pass, memory: 1024)
            try await createAction(platform, "summarize", code: Self.summarize, memory: 1024)
            try await createPipeline(platform, name: "big", components: ["make", "pass", "summarize"], timeout: 120_000)
            let size = 256 << 20
            let reply = try await platform.invoke("big", ["size": .int(Int64(size))])
            let result = reply.status == 202 ? try await record(platform, reply.json["activationId"]?.stringValue ?? "")["response"]?["result"]
                                             : reply.json["response"]?["result"]
            #expect(result?["len"]?.int64Value == Int64(size), "\(result ?? .null)")
            #expect(result?["seen"]?.int64Value == Int64(size))
        }
    }

    /// A failing component ends the pipeline with an error naming it, at once (its error travels
    /// down to the later stages); a stage that runs past the sequence's time limit fails it then.
    @Test func failuresNameTheComponentAndNothingWaitsPastTheTimeLimit() async throws {
        try await withPlatform { platform in
            try await createAction(platform, "make", code: Self.make)
            try await createAction(platform, "crash", code: "def main(a):\n    raise ValueError('boom')\n")
            try await createAction(platform, "refuse", code: "def main(a):\n    return {'error': 'refused'}\n")
            try await createAction(platform, "slow", code: "import time\ndef main(a):\n    time.sleep(30)\n    return a\n")
            try await createAction(platform, "pass", code: Self.pass)
            try await createPipeline(platform, name: "crashing", components: ["make", "crash", "pass"])
            try await createPipeline(platform, name: "refusing", components: ["make", "refuse", "pass"])
            try await createPipeline(platform, name: "slowpipe", components: ["make", "slow", "pass"], timeout: 5_000)

            let crashing = try await platform.invoke("crashing", ["size": 10])
            #expect(crashing.status == 502, "\(crashing.json)")
            let crashError = crashing.json["response"]?["result"]?["error"]?.stringValue ?? ""
            #expect(crashError.contains("component /guest/crash failed") && crashError.contains("boom"), "\(crashing.json)")
            #expect(crashing.json["response"]?["result"]?["component"] == "/guest/crash")

            let refusing = try await platform.invoke("refusing", ["size": 10])
            #expect(refusing.json["response"]?["status"] == "application error", "\(refusing.json)")
            #expect(refusing.json["response"]?["result"]?["error"] == "component /guest/refuse failed: refused", "\(refusing.json)")

            let started = ContinuousClock.now
            let slow = try await platform.invoke("slowpipe", ["size": 10])
            let elapsed = ContinuousClock.now - started
            let slowError = slow.json["response"]?["result"]?["error"]?.stringValue ?? ""
            #expect(slowError.contains("/guest/slow") && slowError.contains("time limit"), "\(slow.json)")
            #expect(elapsed < .seconds(20), "the sequence ended at its 5 s limit (+ grace), not after the 30 s sleep: \(elapsed)")
        }
    }
}
