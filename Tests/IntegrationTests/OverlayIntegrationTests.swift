import Foundation
import Synchronization
import Testing
import WhiskDocker
import WhiskInvoker
import WhiskKafka
import WhiskMessages

/// Function instances find and message each other over their namespace's overlay.
@Suite("Overlay networks and address maps end to end", .serialized)
struct OverlayIntegrationTests {
    static func source(_ path: String) throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    /// Home invokers come from a stable hash: "left" lands on invoker0, "right" on invoker1.
    func createPingPong(_ platform: Platform) async throws {
        try await platform.createAction("left", code: try Self.source("examples/pingpong/ping.py"), timeout: 120_000)
        try await platform.createAction("right", code: try Self.source("examples/pingpong/pong.py"), timeout: 120_000)
    }

    static let probe = """
    import json, socket
    import whiskmesh
    def main(args):
        seen = whiskmesh.read_map()
        reached = False
        try:
            socket.create_connection((args["ip"], int(args.get("port", 7070))), timeout=2).close()
            reached = True
        except OSError as error:
            failure = str(error)
        with open("/var/run/whisk/addressmap/map.json") as f:
            raw = f.read()
        return {"namespace": seen["namespace"], "ids": [i["id"] for i in seen["instances"]], "reached": reached, "raw": raw}
    """

    func docker() -> DockerClient {
        var configuration = DockerClient.Configuration()
        configuration.socketPath = TestEnvironment.dockerSocket
        return DockerClient(configuration: configuration, logger: TestEnvironment.logger)
    }

    /// The JavaScript SDK speaks the Python SDK's frames and handshake: a Python ping and a
    /// JavaScript pong talk, and the other way round.
    @Test func pythonAndJavaScriptInstancesTalkToEachOther() async throws {
        try await withPlatform { platform in
            func create(_ name: String, kind: String, file: String) async throws {
                let body: JSONValue = ["exec": ["kind": .string(kind), "code": .string(try Self.source(file))], "limits": ["timeout": 120_000]]
                let reply = try await platform.request("PUT", "/api/v1/namespaces/_/actions/\(name)", json: body)
                #expect(reply.status == 200, "\(name): \(reply.json)")
            }
            try await create("pyping", kind: "python:3", file: "examples/pingpong/ping.py")
            try await create("pypong", kind: "python:3", file: "examples/pingpong/pong.py")
            try await create("jsping", kind: "nodejs:20", file: "examples/pingpong/ping.js")
            try await create("jspong", kind: "nodejs:20", file: "examples/pingpong/pong.js")
            for (ping, pong) in [("pyping", "jspong"), ("jsping", "pypong")] {
                let pongReply = try await platform.invoke(pong, ["instanceID": .string("\(pong)-1"), "timeout": 60], blocking: false)
                let pongId = try #require(pongReply.json["activationId"]?.stringValue, "\(pongReply.json)")
                let size = 8 * 1024 * 1024
                let reply = try await platform.invoke(ping, ["instanceID": .string("\(ping)-1"), "peer": .string("\(pong)-1"), "count": 200,
                                                             "size": .int(Int64(size)), "timeout": 60])
                let result = reply.json["response"]?["result"] ?? .null
                #expect(reply.status == 200 && result["roundTrips"] == 200 && result["largeBytes"] == .int(Int64(size)), "\(ping) → \(pong): \(reply.json)")
                try await waitUntil("\(pong)'s record", timeout: .seconds(60)) {
                    (try? await platform.request("GET", "/api/v1/namespaces/_/activations/\(pongId)"))?.status == 200
                }
                let echoed = try await platform.request("GET", "/api/v1/namespaces/_/activations/\(pongId)")
                #expect(echoed.json["response"]?["result"]?["echoed"] == 201, "\(pong): \(echoed.json)")
                #expect(echoed.json["response"]?["result"]?["bytes"] == .int(Int64(200 * 64 + size)))
            }
            let js = try await platform.request("GET", "/api/v1/namespaces/_/actions/jspong")
            #expect(js.json["exec"]?["kind"] == "nodejs:20")
        }
    }

    @Test func instancesOnTwoInvokersExchangeMessagesOverTheOverlay() async throws {
        try await withPlatform { platform in
            try await createPingPong(platform)
            let pong = try await platform.invoke("right", ["instanceID": "b", "timeout": 60], blocking: false)
            #expect(pong.status == 202)
            let reply = try await platform.invoke("left", ["instanceID": "a", "peer": "b", "count": 1000, "size": .int(64 * 1024 * 1024), "timeout": 60])
            #expect(reply.status == 200, "\(reply.json)")
            let result = reply.json["response"]?["result"] ?? .null
            #expect(result["roundTrips"] == 1000)
            #expect(result["largeBytes"] == .int(64 * 1024 * 1024))
            #expect(result["sha256"]?.stringValue?.count == 64)
            let peers = result["peers"]?.objectValue ?? [:]
            #expect(Set(peers.keys) == ["a", "b"])
            #expect(peers["a"] != peers["b"])
            #expect(result["invokers"] == ["a": 0, "b": 1], "a ran on invoker0 and b on invoker1")
            // Both are gone once their activations ended, from the API and from both invokers' files.
            try await waitUntil("the map is empty again") {
                let map = try await platform.addressMap()
                return map.instances.isEmpty && platform.mapFile(invoker: 0)?.instances.isEmpty == true && platform.mapFile(invoker: 1)?.instances.isEmpty == true
            }
            let map = try await platform.addressMap()
            #expect(map.version >= 4, "two adds and two removes")
        }
    }

    @Test func anotherNamespaceSeesNoneOfItAndCannotConnect() async throws {
        try await withPlatform { platform in
            try await createPingPong(platform)
            _ = try await platform.invoke("right", ["instanceID": "secret", "timeout": 30], blocking: false)
            var target = ""
            try await waitUntil("guest's instance is in the map") {
                target = try await platform.addressMap().instances.first { $0.id == "secret" }?.ip ?? ""
                return !target.isEmpty
            }
            let tenant = try await platform.createNamespace("tenant-b")
            try await platform.createAction("probe", code: Self.probe, auth: tenant)
            let reply = try await platform.invoke("probe", ["ip": .string(target), "instanceID": "spy"], as: tenant)
            #expect(reply.status == 200, "\(reply.json)")
            let result = reply.json["response"]?["result"] ?? .null
            #expect(result["namespace"] == "tenant-b")
            #expect(result["ids"]?.arrayValue?.contains("secret") == false)
            #expect(result["raw"]?.stringValue?.contains(target) == false, "guest's address is nowhere in tenant-b's file")
            #expect(result["reached"] == false, "tenant-b reached guest's instance at \(target)")
            #expect(try await platform.addressMap(auth: tenant).instances.allSatisfy { $0.id != "secret" })
            // End the pong: connect as a guest peer and stop it.
            _ = try await platform.invoke("left", ["peer": "secret", "count": 1])
        }
    }

    @Test func instanceIDRules() async throws {
        try await withPlatform(invokers: 1) { platform in
            try await createPingPong(platform)
            let first = try await platform.invoke("right", ["instanceID": "dup", "timeout": 30], blocking: false)
            #expect(first.status == 202)
            let second = try await platform.invoke("right", ["instanceID": "dup", "timeout": 30], blocking: false)
            #expect(second.status == 409)
            #expect(second.json["error"]?.stringValue?.contains("already live") == true)
            for bad: JSONValue in ["", "has space", .string(String(repeating: "x", count: 129)), 1.5, true, ["a": 1]] {
                let reply = try await platform.invoke("right", ["instanceID": bad], blocking: false)
                #expect(reply.status == 400, "instanceID \(bad)")
            }
            let numeric = try await platform.invoke("right", ["instanceID": 42, "timeout": 30], blocking: false)
            #expect(numeric.status == 202)
            try await waitUntil("the numeric ID is in the map as \"42\"") {
                try await platform.addressMap().instances.contains { $0.id == "42" }
            }
            for id in ["dup", "42"] { _ = try await platform.invoke("left", ["peer": .string(id), "count": 1]) }
            // Once its activation ended, the ID can be claimed again.
            try await waitUntil("dup is free again") {
                try await platform.invoke("left", ["instanceID": "dup", "peer": "nobody", "count": 0, "timeout": 0.1]).status != 409
            }
        }
    }

    @Test func killedInvokerAndRestartedControllerConverge() async throws {
        try await withPlatform { platform in
            try await createPingPong(platform)
            _ = try await platform.invoke("left", ["instanceID": "stays", "peer": "nobody", "count": 0, "timeout": 20], blocking: false)
            _ = try await platform.invoke("right", ["instanceID": "doomed", "timeout": 20], blocking: false)
            try await waitUntil("both instances are in invoker0's file", timeout: .seconds(30)) {
                Set(platform.mapFile(invoker: 0)?.instances.map(\.id) ?? []) == ["stays", "doomed"]
            }
            #expect(try await platform.addressMap().instances.first { $0.id == "doomed" }?.invoker == 1)

            // Restart the controller: its map comes back from the invokers' snapshots.
            try await platform.restartController()
            let clock = ContinuousClock()
            let restarted = clock.now
            try await waitUntil("the restarted controller's map is the truth again", timeout: .seconds(5)) {
                Set(try await platform.addressMap().instances.map(\.id)) == ["stays", "doomed"]
            }
            print("address map converged \(clock.now - restarted) after the restarted controller answered")

            // SIGKILL invoker1: its entries leave invoker0's file within 5 s.
            await platform.kill(invoker: 1)
            try await waitUntil("the dead invoker's entry is gone from invoker0's file", timeout: .seconds(5)) {
                platform.mapFile(invoker: 0)?.instances.map(\.id) == ["stays"]
            }
        }
    }

    /// A killed invoker leaves its map files behind. The next run starts without them: a
    /// namespace that nobody writes again (its instances all gone, the controller restarted)
    /// would otherwise show its dead instances to every new container of it.
    @Test func aKilledInvokersMapFilesAreGoneWhenItStartsAgain() async throws {
        try await withPlatform(invokers: 1) { platform in
            try await platform.createAction("reader", code: """
            import whiskmesh
            def main(args):
                seen = whiskmesh.read_map()
                return {"namespace": seen["namespace"], "ids": [i["id"] for i in seen["instances"]]}
            """)
            await platform.kill(invoker: 0)
            // What the killed run leaves: guest's map with an instance that no longer exists
            // (nothing in this platform knows of it, so no delta or snapshot rewrites the file).
            let ghost = AddressEntry(namespace: "guest", instanceID: InstanceID("ghost")!, ip: "10.0.0.9", invoker: 0, activationId: .generate(), since: 1)
            try AddressMapFileWriter(root: platform.mapDirectory(invoker: 0)).write(AddressMapFile(namespace: "guest", version: 7, entries: [ghost]))
            #expect(platform.mapFile(invoker: 0)?.instances.map(\.id) == ["ghost"])
            try platform.startInvoker(0)
            try await waitUntil("invoker0 is up again", timeout: .seconds(60)) {
                (try? await platform.invokerStates())?["invoker0/0"] == "up"
            }
            // No instance ID: the reader adds nothing to the map, so its file is what it was given.
            let reply = try await platform.invoke("reader", result: true)
            #expect(reply.status == 200, "\(reply.json)")
            #expect(reply.json["namespace"]?.stringValue == "guest", "the reader saw a map: \(reply.json)")
            #expect(reply.json["ids"]?.arrayValue?.isEmpty == true, "a map left by the killed run: \(reply.json)")
        }
    }

    @Test func recentlyActiveNamespaceGetsAnAttachedStemCell() async throws {
        try await withPlatform(invokers: 1, prewarm: 1) { platform in
            try await platform.createAction("first", code: PlatformIntegrationTests.whereAmI)
            try await platform.createAction("second", code: PlatformIntegrationTests.whereAmI)
            _ = try await platform.invoke("first", result: true)
            // The namespace was active: the invoker prepares a stem cell for it, map mounted and
            // overlay attached ahead of time.
            let docker = docker()
            var stemCell: String?
            try await waitUntil("a stem cell for guest is ready", timeout: .seconds(30)) {
                let containers = try await docker.listContainers(labels: ["org.whiskmesh.test=\(platform.runLabel)", "org.whiskmesh.namespace=guest"])
                guard let cell = containers.first(where: { $0.names.contains { $0.hasSuffix("_guest_prewarm") } }) else { return false }
                // The pool may replace a stem cell between the listing and this look (seen once
                // as a 404): that is "not ready yet", not a failure.
                guard let inspect = try? await docker.inspectContainer(cell.id) else { return false }
                guard inspect.networks.keys.contains(where: { $0.hasSuffix(OverlayNetworks.networkName(namespace: "guest", prefix: "-")) }) else { return false }
                stemCell = cell.id
                return true
            }
            await docker.shutdown()
            // Another action of the namespace starts in that stem cell.
            let reply = try await platform.invoke("second", ["instanceID": "fast"], result: true)
            let host = try #require(reply.json["host"]?.stringValue)
            #expect(stemCell?.hasPrefix(host) == true, "ran in \(host), stem cell \(stemCell ?? "none")")
        }
    }

    @Test func killedContainerLeavesTheMapAndItsActivationFails() async throws {
        try await withPlatform(invokers: 1) { platform in
            try await createPingPong(platform)
            let accepted = try await platform.invoke("right", ["instanceID": "victim", "timeout": 60], blocking: false)
            let id = try #require(accepted.json["activationId"]?.stringValue)
            try await waitUntil("the victim is in the map") {
                try await platform.addressMap().instances.contains { $0.id == "victim" }
            }
            let docker = docker()
            let containers = try await docker.listContainers(labels: ["org.whiskmesh.test=\(platform.runLabel)"])
            let victim = try #require(containers.first { $0.names.contains { $0.hasSuffix("_right") } })
            try await docker.killContainer(victim.id)
            await docker.shutdown()
            try await waitUntil("the entry is gone", timeout: .seconds(2)) {
                try await platform.addressMap().instances.isEmpty && platform.mapFile(invoker: 0)?.instances.isEmpty == true
            }
            var record = Platform.Reply(status: 0, json: .null)
            try await waitUntil("the activation is recorded") {
                record = try await platform.request("GET", "/api/v1/namespaces/_/activations/\(id)")
                return record.status == 200
            }
            #expect(record.json["response"]?["success"] == false)
            #expect(record.json["response"]?["result"]?["error"]?.stringValue?.contains("container died") == true, "\(record.json)")
        }
    }

    /// The invoker's pings as the `health` topic delivers them: when each arrived, and the
    /// instance IDs its address-map change added and removed (none when it carried no change).
    struct SeenPing: Sendable {
        var arrived: ContinuousClock.Instant
        var added: [String]
        var removed: [String]
        var carriesChanges: Bool { !added.isEmpty || !removed.isEmpty }
    }

    final class PingLog: Sendable {
        private let pings = Mutex<[SeenPing]>([])
        func append(_ ping: SeenPing) { pings.withLock { $0.append(ping) } }
        var all: [SeenPing] { pings.withLock { $0 } }
    }

    /// Runs `body` while reading `health` from its end; the reader is closed before this returns.
    func withPings<T>(_ platform: Platform, _ body: (PingLog) async throws -> T) async throws -> T {
        var configuration = KafkaConsumerConfiguration(client: try TestEnvironment.requireBrokers(), groupID: TestEnvironment.uniqueName("pings"),
                                                       topics: [platform.prefix + "health"])
        configuration.assignment = .init(partitions: [0], start: .end)
        let consumer = try KafkaConsumer(configuration: configuration, logger: TestEnvironment.logger)
        let seen = PingLog()
        let reader = Task {
            while !Task.isCancelled {
                guard let message = try? await consumer.next() else { break }
                let arrived = ContinuousClock.now
                guard let ping = try? WhiskMessageCoding.decode(PingMessage.self, from: message.value) else { continue }
                var added: [String] = [], removed: [String] = []
                if let field = ping.extensions[AddressMapUpdate.pingField], let update = try? JSONValueDecoder().decode(AddressMapUpdate.self, from: field) {
                    added = update.added.map { "\($0.instanceID)" }
                    removed = update.removed.map { "\($0.instanceID)" }
                }
                seen.append(SeenPing(arrived: arrived, added: added, removed: removed))
            }
        }
        func stop() async {
            reader.cancel()
            await reader.value
            await consumer.close()
        }
        do {
            let result = try await body(seen)
            await stop()
            return result
        } catch {
            await stop()
            throw error
        }
    }

    /// An invoker's address-map changes travel in at most one ping per batch window: four warm
    /// instances started 150 ms apart, each for 2 s, reach the controller in pings at least the
    /// window (1 s here) apart, and every add and remove still arrives. Positive control: the same
    /// invoker restarted with a window of 0 sends their changes in pings less than that apart.
    @Test func mapChangesTravelInAtMostOnePingPerBatchWindow() async throws {
        try await withPlatform(invokers: 1, invokerFlags: ["--address-map-batch-window", "1000"]) { platform in
            try await platform.createAction("nap", code: "import time\ndef main(args):\n    time.sleep(float(args.get('nap', 0)))\n    return {}\n")
            /// The pings of one round of four instances (their containers warm), once all four came and went.
            func round(_ tag: String) async throws -> [SeenPing] {
                let ids = (0..<4).map { "\(tag)-\($0)" }
                // Four containers, warm for the round.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for id in ids { group.addTask { _ = try await platform.invoke("nap", ["instanceID": .string(id + "-warm")], result: true) } }
                    try await group.waitForAll()
                }
                try await waitUntil("the warm-up's instances left the map") { try await platform.addressMap().instances.isEmpty }
                return try await withPings(platform) { seen in
                    try await waitUntil("the reader sees pings") { !seen.all.isEmpty }
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for id in ids {
                            group.addTask { _ = try await platform.invoke("nap", ["instanceID": .string(id), "nap": 2], result: true) }
                            try await Task.sleep(for: .milliseconds(150))
                        }
                        try await group.waitForAll()
                    }
                    try await waitUntil("every add and remove of the round reached the controller") {
                        let pings = seen.all
                        return Set(pings.flatMap(\.added)).isSuperset(of: ids) && Set(pings.flatMap(\.removed)).isSuperset(of: ids)
                    }
                    return seen.all
                }
            }
            func gaps(_ pings: [SeenPing]) -> [Duration] {
                let carrying = pings.filter(\.carriesChanges)
                return zip(carrying, carrying.dropFirst()).map { $1.arrived - $0.arrived }
            }

            let batched = try await round("batched")
            #expect(batched.filter(\.carriesChanges).count >= 2, "adds and removes 2 s apart cannot share a ping")
            #expect(gaps(batched).allSatisfy { $0 >= .milliseconds(800) }, "pings with changes closer than the 1 s window: \(gaps(batched))")

            await platform.terminate(invoker: 0)
            try platform.startInvoker(0, extra: ["--address-map-batch-window", "0"])
            try await waitUntil("invoker0 is up again", timeout: .seconds(60)) { try await platform.invokerStates()["invoker0/0"] == "up" }
            let unbatched = try await round("unbatched")
            #expect(gaps(unbatched).contains { $0 < .milliseconds(800) }, "positive control: without a window, changes 150 ms apart go in pings of their own: \(gaps(unbatched))")
        }
    }
}
