import ArgumentParser
import Foundation
import Logging
import WhiskDocker
import WhiskKafka

@main
struct WhiskMeshCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "whiskmesh",
        abstract: "WhiskMesh platform tools.",
        subcommands: [Status.self]
    )
}

/// Checks the broker and the Docker Engine, creates the platform's Kafka topics, and reports.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check Kafka and Docker and create the platform's topics.")

    @Option(name: .customLong("kafka"), help: "Kafka bootstrap servers (host:port,...).")
    var kafka: String = ProcessInfo.processInfo.environment["WHISK_KAFKA_BROKERS"] ?? "127.0.0.1:9092"

    @Option(help: "Docker Engine socket.")
    var dockerSocket: String = "/var/run/docker.sock"

    @Option(help: "Topics to make sure exist (OpenWhisk's classic topics for one controller and two invokers).")
    var topics: [String] = ["health", "completed0", "invoker0", "invoker1"]

    func run() async throws {
        var logger = Logger(label: "whiskmesh.status")
        logger.logLevel = .warning
        var failed = false

        print("librdkafka \(KafkaLibrary.version)\(KafkaLibrary.isSupported ? "" : " (older than 2.1: cannot talk to current brokers)")")
        do {
            let admin = try KafkaAdmin(configuration: KafkaClientConfiguration(bootstrapServers: kafka.split(separator: ",").map(String.init), clientID: "whiskmesh-status"), logger: logger)
            do {
                for topic in topics {
                    let role: KafkaAdmin.TopicRole = topic.wholeMatch(of: /invoker[0-9]+/) != nil ? .invoker
                        : topic.wholeMatch(of: /completed[0-9]+/) != nil ? .completed : .control
                    try await admin.createTopic(topic, configs: role.configs, timeout: .seconds(10))
                }
                await admin.close()
            } catch {
                await admin.close()
                throw error
            }
            print("kafka   \(kafka): up; topics \(topics.joined(separator: ", ")) ready")
        } catch {
            print("kafka   \(kafka): DOWN (\(error))")
            failed = true
        }

        var configuration = DockerClient.Configuration()
        configuration.socketPath = dockerSocket
        let docker = DockerClient(configuration: configuration, logger: logger)
        do {
            let version = try await docker.version()
            let managed = try await docker.listImages(labels: ["org.whiskmesh.managed"])
            let images = managed.flatMap(\.repoTags).sorted().joined(separator: ", ")
            print("docker  \(dockerSocket): Engine \(version.version) (API \(version.apiVersion)); images: \(images.isEmpty ? "none" : images)")
        } catch {
            print("docker  \(dockerSocket): DOWN (\(error))")
            failed = true
        }
        await docker.shutdown()
        if failed { throw ExitCode(1) }
    }
}
