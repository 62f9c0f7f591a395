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
            // Swarm tears a removed container's attachment task down after the container is
            // gone: until then an overlay is "in use by task" (400).
            try await waitUntil("overlay \(network.name) can be removed") {
                do {
                    try await client.removeNetwork(network.id)
                    return true
                } catch let error as DockerError where error.message.contains("in use by task") {
                    return false
                }
            }
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

extension Process {
    /// Waits until the process has exited, polling, so no thread blocks on it (Foundation's
    /// `waitUntilExit` spins a thread of the test's pool, and once spun forever on an invoker
    /// that had aborted at exit, which hung the whole run). After `patience` the process is
    /// SIGKILLed; a process that is still there 10 s later is recorded as an issue, and the
    /// test goes on rather than hang. A zombie counts as exited (Foundation reaps it later).
    /// - Returns: whether it exited on its own, before `patience`.
    @discardableResult
    func exit(within patience: Duration = .seconds(20)) async -> Bool {
        let clock = ContinuousClock()
        var deadline = clock.now + patience
        var killed = false
        while !hasExited {
            if clock.now > deadline {
                if killed {
                    Issue.record("process \(processIdentifier) (\(executableURL?.lastPathComponent ?? "?")) did not exit 10 s after SIGKILL")
                    return false
                }
                Foundation.kill(processIdentifier, SIGKILL)
                killed = true
                deadline = clock.now + .seconds(10)
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return !killed
    }

    /// After a SIGTERM: the process must end with status 0 (or by the SIGTERM, when it came
    /// before the process handled it) — not by a signal of its own making (an abort at exit),
    /// not with an error — and, if `inTime`, within `patience` (else it is
    /// SIGKILLed then, e.g. with activations still draining). Records an issue otherwise.
    func expectCleanExit(within patience: Duration, inTime: Bool = true, log: () -> String) async {
        let name = executableURL?.lastPathComponent ?? "?"
        guard await exit(within: patience) else {
            if inTime { Issue.record("\(name) did not exit within \(patience) of SIGTERM:\n\(log())") }
            return
        }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while isRunning && clock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }  // until Foundation reaped it
        guard !isRunning else { return }
        // Ended by the SIGTERM itself: it came before the process installed its handler.
        if terminationReason == .uncaughtSignal && terminationStatus == SIGTERM { return }
        if terminationReason == .uncaughtSignal || terminationStatus != 0 {
            Issue.record("\(name) ended with \(terminationReason == .uncaughtSignal ? "signal" : "status") \(terminationStatus) after SIGTERM:\n\(log())")
        }
    }

    /// Whether the process is gone or a zombie (exited, not yet reaped).
    var hasExited: Bool {
        guard isRunning else { return true }
        guard let stat = try? String(contentsOfFile: "/proc/\(processIdentifier)/stat", encoding: .utf8) else { return true }
        // "pid (name) S ...": the state follows the last ')'.
        guard let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].dropFirst().first == "Z"
    }
}
