import Foundation
import Logging
import Testing
import WhiskDocker
import WhiskKafka

/// Where the real services are; `scripts/test` sets these. A missing one fails the test: an
/// integration test never skips silently.
enum TestEnvironment {
    static var kafkaBrokers: String? { ProcessInfo.processInfo.environment["WHISK_KAFKA_BROKERS"] }
    static var dockerSocket: String { ProcessInfo.processInfo.environment["WHISK_DOCKER_SOCKET"] ?? "/var/run/docker.sock" }
    static var testImage: String { ProcessInfo.processInfo.environment["WHISK_TEST_IMAGE"] ?? "whiskmesh/busybox:latest" }

    static let logger: Logger = {
        var logger = Logger(label: "whiskmesh.integration")
        logger.logLevel = .warning
        return logger
    }()

    static func requireBrokers() throws -> KafkaClientConfiguration {
        let brokers = try #require(kafkaBrokers, "WHISK_KAFKA_BROKERS is not set: run the tests through scripts/test")
        return KafkaClientConfiguration(bootstrapServers: brokers.split(separator: ",").map(String.init), clientID: "whiskmesh-test")
    }

    /// A name unique to this test run and call.
    static func uniqueName(_ prefix: String) -> String {
        "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
    }
}

/// Creates Kafka topics for one test and deletes them afterwards, even when the test fails.
func withTopics<T>(_ count: Int, _ body: (KafkaClientConfiguration, [String]) async throws -> T) async throws -> T {
    let configuration = try TestEnvironment.requireBrokers()
    let admin = try KafkaAdmin(configuration: configuration, logger: TestEnvironment.logger)
    let topics = (0..<count).map { _ in TestEnvironment.uniqueName("whiskmesh-test") }
    do {
        for topic in topics { try await admin.createTopic(topic) }
        let result = try await body(configuration, topics)
        for topic in topics { try await admin.deleteTopic(topic) }
        await admin.close()
        return result
    } catch {
        for topic in topics { try? await admin.deleteTopic(topic) }
        await admin.close()
        throw error
    }
}

/// A Docker client plus a label that marks everything one test creates; all of it is removed
/// afterwards, even when the test fails.
struct DockerFixture {
    let client: DockerClient
    let runLabel: String
    var labels: [String: String] { ["org.whiskmesh.managed": "true", "org.whiskmesh.test": runLabel] }
    var labelFilter: String { "org.whiskmesh.test=\(runLabel)" }

    func containerSpec(_ command: [String], name: String? = nil, network: String? = nil) -> ContainerSpec {
        var spec = ContainerSpec(image: TestEnvironment.testImage, name: name)
        spec.command = command
        spec.labels = labels
        spec.network = network
        return spec
    }

    func cleanUp() async throws {
        for container in try await client.listContainers(labels: [labelFilter]) {
            try await client.removeContainer(container.id)
        }
        for network in try await client.listNetworks(labels: [labelFilter]) {
            try await client.removeNetwork(network.id)
        }
        for image in try await client.listImages(labels: [labelFilter]) {
            try await client.removeImage(image.id)
        }
    }
}

func withDocker<T>(_ body: (DockerFixture) async throws -> T) async throws -> T {
    var configuration = DockerClient.Configuration()
    configuration.socketPath = TestEnvironment.dockerSocket
    let fixture = DockerFixture(client: DockerClient(configuration: configuration, logger: TestEnvironment.logger),
                                runLabel: TestEnvironment.uniqueName("run"))
    do {
        let result = try await body(fixture)
        try await fixture.cleanUp()
        await fixture.client.shutdown()
        return result
    } catch {
        try? await fixture.cleanUp()
        await fixture.client.shutdown()
        throw error
    }
}

/// Polls `condition` until it holds or `deadline` passes: waiting on a condition, never a fixed sleep.
func waitUntil(_ what: String, timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("timed out after \(timeout) waiting until \(what)")
    throw CancellationError()
}
