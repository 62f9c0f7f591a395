import ArgumentParser
import Foundation
import WhiskKafka

/// The Kafka options of both daemons (`whisk-controller`, `whisk-invoker`), parsed once.
public struct KafkaOptions: ParsableArguments {
    @Option(help: "Kafka bootstrap servers.")
    public var kafka = ProcessInfo.processInfo.environment["WHISK_KAFKA_BROKERS"] ?? "127.0.0.1:9092"

    @Option(help: "Least milliseconds a consumer lets the broker hold a fetch (raise it for a broker with slow storage, e.g. Tansu on S3).")
    public var kafkaMinFetchWait = Int(ProcessInfo.processInfo.environment["WHISK_KAFKA_MIN_FETCH_WAIT_MS"] ?? "0") ?? 0

    /// Tansu holds every fetch for its whole wait and does not answer it early when data
    /// arrives, so each hop of an activation costs up to the wait, and each idle consumer one
    /// fetch per wait. The activation path (invokerN, completedN) waits little; the control plane
    /// (health, addressmap), idle most of the time, waits longer: benchmark 10 measured 3/20
    /// against 10/10 (address maps 5) — one client's p50 9.5 → 6-8 ms, 16 clients 4-6 % fewer
    /// activations per second, the broker's idle CPU 16-18 → 19-23 %.
    @Option(help: "Milliseconds the consumers of activations and acks let the broker hold a fetch.")
    public var kafkaFetchWait = 3

    @Option(help: "Milliseconds the consumers of heartbeats and address-map publications let the broker hold a fetch.")
    public var kafkaControlFetchWait = 20

    public init() {}

    public func validate() throws {
        guard kafkaMinFetchWait >= 0 else { throw ValidationError("--kafka-min-fetch-wait must not be negative") }
        guard kafkaFetchWait >= 0 else { throw ValidationError("--kafka-fetch-wait must not be negative") }
        guard kafkaControlFetchWait >= 0 else { throw ValidationError("--kafka-control-fetch-wait must not be negative") }
    }

    /// The client settings these options describe, for a client named `clientID`.
    public func clientConfiguration(clientID: String) -> KafkaClientConfiguration {
        var configuration = KafkaClientConfiguration(bootstrapServers: kafka.split(separator: ",").map(String.init), clientID: clientID)
        configuration.minimumFetchWait = .milliseconds(kafkaMinFetchWait)
        configuration.fetchWait = .milliseconds(kafkaFetchWait)
        configuration.controlFetchWait = .milliseconds(kafkaControlFetchWait)
        return configuration
    }
}
