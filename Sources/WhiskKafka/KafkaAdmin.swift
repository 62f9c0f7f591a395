import CRdKafka
import Logging
import NIOPosix

/// Creates and deletes topics through Kafka's admin API.
///
/// Upstream OpenWhisk runs Kafka with topic auto-creation off, so every component creates
/// the topics it consumes; creating an existing topic is not an error.
public final class KafkaAdmin: Sendable {
    private let client: RDKafkaClient
    private let worker: NIOThreadPool

    public init(configuration: KafkaClientConfiguration, logger: Logger) throws {
        var properties = configuration.baseProperties
        properties.merge(configuration.extraProperties) { _, extra in extra }
        self.client = try RDKafkaClient(type: RD_KAFKA_PRODUCER, properties: properties, callbacks: RDKafkaCallbacks(logger: logger))
        self.worker = NIOThreadPool(numberOfThreads: 1)
        worker.start()
    }

    /// What upstream's Kafka setup gives the topics that carry activations and their acks
    /// (`invoker{N}`, `completed{C}`): room for a 1 MB payload and the message around it.
    public static let activationTopicConfigs = ["max.message.bytes": "1054644"]

    /// Upstream's topic settings (`whisk.kafka.topics` in its `application.conf`): 512 MiB
    /// segments, at most 1 GiB kept, and what is read at once kept for an hour (`completed{C}`,
    /// `health`; WhiskMesh's `addressmap`, read from its end, too) or for two days (`invoker{N}`,
    /// which a restarted invoker reads on from its committed offset).
    public enum TopicRole: Sendable {
        case invoker, completed, control

        public var configs: [String: String] {
            var configs = ["segment.bytes": "536870912", "retention.bytes": "1073741824", "retention.ms": "3600000"]
            switch self {
            case .invoker:
                configs.merge(activationTopicConfigs) { _, activation in activation }
                configs["retention.ms"] = "172800000"
            case .completed:
                configs.merge(activationTopicConfigs) { _, activation in activation }
            case .control:
                break
            }
            return configs
        }
    }

    /// Creates `name` unless it exists, with the topic `configs` given (e.g. `max.message.bytes`).
    /// An existing topic keeps the configs it has.
    public func createTopic(_ name: String, partitions: Int = 1, replicationFactor: Int = 1, configs: [String: String] = [:],
                            timeout: Duration = .seconds(15)) async throws {
        let client = self.client
        let result = try await worker.runIfActive { () -> Result<Void, KafkaError> in
            var errorBuffer = [CChar](repeating: 0, count: 512)
            guard let topic = rd_kafka_NewTopic_new(name, Int32(partitions), Int32(replicationFactor), &errorBuffer, errorBuffer.count) else {
                return .failure(KafkaError(.admin, "invalid topic \(name): \(String(cErrorBuffer: errorBuffer))"))
            }
            defer { rd_kafka_NewTopic_destroy(topic) }
            for (key, value) in configs.sorted(by: { $0.key < $1.key }) {
                let error = rd_kafka_NewTopic_set_config(topic, key, value)
                if error != RD_KAFKA_RESP_ERR_NO_ERROR {
                    return .failure(KafkaError.fromRDKafka(.admin, error, context: "topic \(name): config \(key)=\(value)"))
                }
            }
            var topics: [OpaquePointer?] = [topic]
            return Self.runAdmin(client: client, timeout: timeout, what: "create topic \(name)") { handle, queue in
                rd_kafka_CreateTopics(handle, &topics, 1, nil, queue)
            } extract: { event in
                var count = 0
                let results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count)
                return Self.topicErrors(results, count: count, ignoring: RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            }
        }
        try result.get()
    }

    /// Deletes `name`; deleting a topic that does not exist is not an error.
    public func deleteTopic(_ name: String, timeout: Duration = .seconds(15)) async throws {
        let client = self.client
        let result = try await worker.runIfActive { () -> Result<Void, KafkaError> in
            guard let topic = rd_kafka_DeleteTopic_new(name) else {
                return .failure(KafkaError(.admin, "invalid topic \(name)"))
            }
            defer { rd_kafka_DeleteTopic_destroy(topic) }
            var topics: [OpaquePointer?] = [topic]
            return Self.runAdmin(client: client, timeout: timeout, what: "delete topic \(name)") { handle, queue in
                rd_kafka_DeleteTopics(handle, &topics, 1, nil, queue)
            } extract: { event in
                var count = 0
                let results = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(event), &count)
                return Self.topicErrors(results, count: count, ignoring: RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            }
        }
        try result.get()
    }

    /// The configs the broker reports for topic `name` (DescribeConfigs).
    public func topicConfigs(_ name: String, timeout: Duration = .seconds(15)) async throws -> [String: String] {
        let client = self.client
        let result = try await worker.runIfActive { () -> Result<[String: String], KafkaError> in
            guard let resource = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, name) else {
                return .failure(KafkaError(.admin, "invalid topic \(name)"))
            }
            defer { rd_kafka_ConfigResource_destroy(resource) }
            var resources: [OpaquePointer?] = [resource]
            var configs: [String: String] = [:]
            let outcome = Self.runAdmin(client: client, timeout: timeout, what: "describe topic \(name)") { handle, queue in
                rd_kafka_DescribeConfigs(handle, &resources, 1, nil, queue)
            } extract: { event in
                var count = 0
                guard let results = rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(event), &count) else { return nil }
                for index in 0..<count {
                    guard let described = results[index] else { continue }
                    let error = rd_kafka_ConfigResource_error(described)
                    if error != RD_KAFKA_RESP_ERR_NO_ERROR {
                        let message = rd_kafka_ConfigResource_error_string(described).map { String(cString: $0) } ?? ""
                        return KafkaError(.admin, "\(String(cString: rd_kafka_err2name(error))) \(message)", rdKafkaError: error.rawValue)
                    }
                    var entryCount = 0
                    guard let entries = rd_kafka_ConfigResource_configs(described, &entryCount) else { continue }
                    for entryIndex in 0..<entryCount {
                        guard let entry = entries[entryIndex], let key = rd_kafka_ConfigEntry_name(entry) else { continue }
                        configs[String(cString: key)] = rd_kafka_ConfigEntry_value(entry).map { String(cString: $0) }
                    }
                }
                return nil
            }
            return outcome.map { configs }
        }
        return try result.get()
    }

    /// Runs on the admin thread: issues the request, waits for its result event.
    private static func runAdmin(
        client: RDKafkaClient, timeout: Duration, what: String,
        request: (OpaquePointer, OpaquePointer?) -> Void,
        extract: (OpaquePointer) -> KafkaError?
    ) -> Result<Void, KafkaError> {
        client.withHandle { handle in
            runAdmin(handle: handle, timeout: timeout, what: what, request: request, extract: extract)
        } ?? .failure(KafkaError(.closed, "\(what): the admin client is closed"))
    }

    private static func runAdmin(
        handle: OpaquePointer, timeout: Duration, what: String,
        request: (OpaquePointer, OpaquePointer?) -> Void,
        extract: (OpaquePointer) -> KafkaError?
    ) -> Result<Void, KafkaError> {
        guard let queue = rd_kafka_queue_new(handle) else {
            return .failure(KafkaError(.admin, "\(what): cannot create a result queue"))
        }
        defer { rd_kafka_queue_destroy(queue) }
        request(handle, queue)
        guard let event = rd_kafka_queue_poll(queue, Int32(timeout.milliseconds)) else {
            return .failure(KafkaError(.admin, "\(what): no answer within \(timeout)"))
        }
        defer { rd_kafka_event_destroy(event) }
        let error = rd_kafka_event_error(event)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            return .failure(KafkaError.fromRDKafka(.admin, error, context: what))
        }
        if let failure = extract(event) {
            return .failure(KafkaError(.admin, "\(what): \(failure.reason)", rdKafkaError: failure.rdKafkaError))
        }
        return .success(())
    }

    private static func topicErrors(_ results: UnsafeMutablePointer<OpaquePointer?>?, count: Int, ignoring ignored: rd_kafka_resp_err_t) -> KafkaError? {
        guard let results else { return nil }
        for index in 0..<count {
            guard let result = results[index] else { continue }
            let error = rd_kafka_topic_result_error(result)
            if error != RD_KAFKA_RESP_ERR_NO_ERROR && error != ignored {
                let message = rd_kafka_topic_result_error_string(result).map { String(cString: $0) } ?? ""
                return KafkaError(.admin, "\(String(cString: rd_kafka_err2name(error))) \(message)", rdKafkaError: error.rawValue)
            }
        }
        return nil
    }

    /// Destroys the client (on its thread) and stops the thread.
    public func close() async {
        let client = self.client
        _ = try? await worker.runIfActive { client.destroy() }
        try? await worker.shutdownGracefully()
    }
}
