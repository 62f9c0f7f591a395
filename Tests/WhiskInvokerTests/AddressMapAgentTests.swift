import Foundation
import Logging
import Testing
@testable import WhiskInvoker
import WhiskKafka
import WhiskMessages

/// The agent's map files, fed in process: publications as the `addressmap` consumer hands them
/// over, this invoker's own instances as its activations add and remove them.
@Suite("Address map agent's files")
struct AddressMapAgentTests {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("whiskmesh-agent-\(UUID().uuidString)").path

    func agent(instance: Int) -> AddressMapAgent {
        var configuration = InvokerConfiguration(instance: instance, kafka: KafkaClientConfiguration(bootstrapServers: ["127.0.0.1:9"]), internalToken: "test")
        configuration.addressMapDirectory = root
        return AddressMapAgent(configuration: configuration, logger: Logger(label: "test"))
    }

    func entry(_ id: String, invoker: Int, ip: String) -> AddressEntry {
        AddressEntry(namespace: "guest", instanceID: InstanceID(id)!, ip: ip, invoker: invoker, activationId: .generate(), since: Int64(Date().timeIntervalSince1970 * 1000))
    }

    func publish(_ publication: AddressMapPublication, to agent: AddressMapAgent) throws {
        agent.handle(try WhiskMessageCoding.encode(publication))
    }

    /// The file's instances (`id@ip`), once they are `expected` (or what they are after 5 s).
    func instances(of agent: AddressMapAgent, becoming expected: [String]) async throws -> [String] {
        let path = "\(agent.files.writer.folder(namespace: "guest"))/map.json"
        var seen: [String] = []
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if let data = FileManager.default.contents(atPath: path), let file = try? JSONDecoder().decode(AddressMapFile.self, from: data) {
                seen = file.instances.map { "\($0.id)@\($0.ip)" }
                if seen == expected { return seen }
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        return seen
    }

    /// Peers on the same invoker find an instance as soon as it starts, not a heartbeat and a
    /// publication later; the controller's copy of this invoker's instances never overrides
    /// what the invoker knows of them, and other invokers' instances come from the controller.
    @Test func ownInstancesAreInTheFileAtOnceAndOthersComeFromTheController() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let agent = agent(instance: 0)
        try await agent.files.prepare(namespace: "guest")
        // Positive control: the controller's map reaches the file. Its copy of invoker 0's "gone"
        // (an instance that ended here, whose removal the controller has not published yet) does not.
        let other = entry("other", invoker: 1, ip: "10.0.1.5")
        try publish(.snapshot(namespace: "guest", version: 10, entries: [other, entry("gone", invoker: 0, ip: "10.0.1.6")]), to: agent)
        #expect(try await instances(of: agent, becoming: ["other@10.0.1.5"]) == ["other@10.0.1.5"])

        let mine = entry("mine", invoker: 0, ip: "10.0.1.7")
        agent.add(mine)  // no publication: only the local path can bring it
        #expect(try await instances(of: agent, becoming: ["mine@10.0.1.7", "other@10.0.1.5"]) == ["mine@10.0.1.7", "other@10.0.1.5"])

        // The controller's delta of it changes nothing; its removal here takes it out at once,
        // though the controller's map still holds it.
        try publish(.delta(namespace: "guest", version: 11, added: [mine], removed: []), to: agent)
        agent.remove(mine.key, activationId: mine.activationId)
        #expect(try await instances(of: agent, becoming: ["other@10.0.1.5"]) == ["other@10.0.1.5"])

        // Another invoker's change still comes through, and the file's version follows it.
        let late = entry("late", invoker: 1, ip: "10.0.1.8")
        try publish(.delta(namespace: "guest", version: 12, added: [late], removed: [InstanceID("other")!]), to: agent)
        #expect(try await instances(of: agent, becoming: ["late@10.0.1.8"]) == ["late@10.0.1.8"])
        let data = try #require(FileManager.default.contents(atPath: "\(agent.files.writer.folder(namespace: "guest"))/map.json"))
        #expect(try JSONDecoder().decode(AddressMapFile.self, from: data).version == 12)
    }

    /// An instance ID that moved to this invoker shows this invoker's entry, whatever the
    /// controller still holds for it.
    @Test func anInstanceThatMovedHereShowsItsNewAddress() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let agent = agent(instance: 0)
        try await agent.files.prepare(namespace: "guest")
        try publish(.snapshot(namespace: "guest", version: 5, entries: [entry("worker", invoker: 1, ip: "10.0.1.20")]), to: agent)
        #expect(try await instances(of: agent, becoming: ["worker@10.0.1.20"]) == ["worker@10.0.1.20"])
        agent.add(entry("worker", invoker: 0, ip: "10.0.1.21"))
        #expect(try await instances(of: agent, becoming: ["worker@10.0.1.21"]) == ["worker@10.0.1.21"])
    }
}
