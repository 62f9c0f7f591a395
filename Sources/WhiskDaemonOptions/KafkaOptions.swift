import ArgumentParser
import Foundation
import WhiskKafka

/// The Kafka options of both daemons (`whisk-controller`, `whisk-invoker`), parsed once.
public struct KafkaOptions: ParsableArguments {
    @Option(help: "Kafka bootstrap servers.")
    public var kafka = ProcessInfo.processInfo.environment["WHISK_KAFKA_BROKERS"] ?? "127.0.0.1:9092"

    @Option(help: "Least milliseconds a consumer lets the broker hold a fetch (raise it for a broker with slow storage, e.g. Tansu on S3).")
    public var kafkaMinFetchWait = Int(ProcessInfo.processInfo.environment["WHISK_KAFKA_MIN_FETCH_WAIT_MS"] ?? "0") ?? 0

    @Option(help: "Milliseconds the consumers of activations and acks let the broker hold a fetch (default 10).")
    public var kafkaFetchWait: Int?

    @Option(help: "Milliseconds the consumers of heartbeats and address-map publications let the broker hold a fetch (default 5 for address maps, 10 for heartbeats).")
    public var kafkaControlFetchWait: Int?

    public init() {}

    public func validate() throws {
        guard kafkaMinFetchWait >= 0 else { throw ValidationError("--kafka-min-fetch-wait must not be negative") }
        guard (kafkaFetchWait ?? 0) >= 0 else { throw ValidationError("--kafka-fetch-wait must not be negative") }
        guard (kafkaControlFetchWait ?? 0) >= 0 else { throw ValidationError("--kafka-control-fetch-wait must not be negative") }
    }

    /// The client settings these options describe, for a client named `clientID`.
    public func clientConfiguration(clientID: String) -> KafkaClientConfiguration {
        var configuration = KafkaClientConfiguration(bootstrapServers: kafka.split(separator: ",").map(String.init), clientID: clientID)
        configuration.minimumFetchWait = .milliseconds(kafkaMinFetchWait)
        configuration.fetchWait = kafkaFetchWait.map { .milliseconds($0) }
        configuration.controlFetchWait = kafkaControlFetchWait.map { .milliseconds($0) }
        return configuration
    }
}
