import CRdKafka
import Foundation
import Logging
import NIOPosix
import Synchronization

/// One message read from Kafka.
public struct KafkaConsumerMessage: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: Data

    public init(topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: Data) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
    }
}

/// A consumer-group member: messages as an AsyncSequence, offsets committed by hand after
/// processing, so a restarted member resumes right after its last commit.
///
/// Polls, commits and close run on a thread of the consumer's own, never on Swift's
/// cooperative pool. Errors that librdkafka reports for single messages or brokers are
/// logged and consumption goes on; only a fatal client error ends the sequence.
public final class KafkaConsumer: Sendable {
    private let client: RDKafkaClient
    private let configuration: KafkaConsumerConfiguration
    private let worker: NIOThreadPool
    private let closed = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)
    private let logger: Logger

    public init(configuration: KafkaConsumerConfiguration, logger: Logger) throws {
        var logger = logger
        logger[metadataKey: "kafka.group"] = "\(configuration.groupID)"
        self.client = try RDKafkaClient(type: RD_KAFKA_CONSUMER, properties: configuration.librdkafkaProperties, callbacks: RDKafkaCallbacks(logger: logger))
        self.configuration = configuration
        self.logger = logger
        let client = self.client

        let error = client.withHandle { handle in
            rd_kafka_poll_set_consumer(handle)
            return Self.start(handle, configuration)
        } ?? RD_KAFKA_RESP_ERR__DESTROY
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            client.destroy()
            throw KafkaError.fromRDKafka(.consume, error, context: "cannot consume \(configuration.topics)")
        }
        self.worker = NIOThreadPool(numberOfThreads: 1)
        worker.start()
    }

    /// Assigns or subscribes `handle` to the topics of `configuration`.
    private static func start(_ handle: OpaquePointer, _ configuration: KafkaConsumerConfiguration) -> rd_kafka_resp_err_t {
        let list = rd_kafka_topic_partition_list_new(Int32(configuration.topics.count))
        defer { rd_kafka_topic_partition_list_destroy(list) }
        if let assignment = configuration.assignment {
            for topic in configuration.topics {
                for partition in assignment.partitions {
                    let entry = rd_kafka_topic_partition_list_add(list, topic, partition)
                    switch assignment.start {
                    case .end: entry?.pointee.offset = Int64(RD_KAFKA_OFFSET_END)
                    case .beginning: entry?.pointee.offset = Int64(RD_KAFKA_OFFSET_BEGINNING)
                    case .committed: entry?.pointee.offset = Int64(RD_KAFKA_OFFSET_STORED)
                    case .offset(let offset): entry?.pointee.offset = offset
                    }
                }
            }
            return rd_kafka_assign(handle, list)
        }
        for topic in configuration.topics {
            rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA)
        }
        return rd_kafka_subscribe(handle, list)
    }

    /// The messages of the subscribed topics; ends when the consumer is closed or the task cancelled.
    public var messages: Messages { Messages(consumer: self) }

    /// Returns the next message, or nil once closed or cancelled.
    public func next() async throws -> KafkaConsumerMessage? {
        try await nextBatch(limit: 1).first
    }

    /// Up to `limit` messages: waits for the first, then takes those librdkafka already holds,
    /// without waiting, in the same hop to the consumer's thread (each hop back to Swift's pool
    /// wakes a thread). Empty once closed or cancelled. A busy reader handles a batch at the cost
    /// of one message's overheads (a store transaction, a commit, a thread switch).
    public func nextBatch(limit: Int) async throws -> [KafkaConsumerMessage] {
        let client = self.client
        let timeout = Int32(configuration.pollInterval.milliseconds)
        let limit = max(1, limit)
        while !closed.load(ordering: .acquiring) && !stopped.load(ordering: .acquiring) && !Task.isCancelled {
            let outcomes: [PollOutcome]
            do {
                outcomes = try await worker.runIfActive { () -> [PollOutcome] in
                    client.withHandle { handle in
                        var outcomes: [PollOutcome] = []
                        var wait = timeout
                        while outcomes.count < limit, let message = rd_kafka_consumer_poll(handle, wait) {
                            defer { rd_kafka_message_destroy(message) }
                            outcomes.append(PollOutcome(message.pointee))
                            wait = 0
                        }
                        return outcomes
                    } ?? []
                }
            } catch {
                return []  // the worker was shut down by close()
            }
            var batch: [KafkaConsumerMessage] = []
            for outcome in outcomes {
                switch outcome {
                case .nothing: break
                case .message(let message): batch.append(message)
                case .error(let error, let fatal):
                    // A fatal error comes back on the next poll too: the batch so far is handled first.
                    if fatal && batch.isEmpty { throw error }
                    logger.warning("consumer error; continuing", metadata: ["error": "\(error.reason)"])
                }
            }
            if !batch.isEmpty { return batch }
        }
        return []
    }

    /// Commits `message` as processed: after a restart the group resumes at the next one.
    /// A consumer with a fixed assignment that starts at the end or the beginning keeps no
    /// position: this is a no-op for it.
    ///
    /// The commit is handed to librdkafka without waiting for the broker (a round trip per
    /// message would serialise the consumer behind the broker); librdkafka keeps commits in
    /// order and a failed one is logged. A crash can therefore re-deliver the last few messages,
    /// which at-least-once consumption allows anyway.
    public func commit(_ message: KafkaConsumerMessage) async throws {
        try commit(topic: message.topic, partition: message.partition, nextOffset: message.offset + 1)
    }

    /// Commits `nextOffset` as the position to resume `topic`/`partition` at: every message
    /// before it is processed. For readers that finish messages out of order and commit the
    /// watermark below which all are done (``KafkaCommitWatermark``). Asynchronous like
    /// ``commit(_:)``; a no-op for a fixed assignment that keeps no position.
    public func commit(topic: String, partition: Int32, nextOffset: Int64) throws {
        if let assignment = configuration.assignment, assignment.start != .committed { return }
        guard !closed.load(ordering: .acquiring) else { throw KafkaError(.closed, "the consumer is closed") }
        let list = rd_kafka_topic_partition_list_new(1)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let entry = rd_kafka_topic_partition_list_add(list, topic, partition)
        entry?.pointee.offset = nextOffset
        // Asynchronous: only enqueues the request, never blocks the calling thread.
        let error = client.withHandle { rd_kafka_commit($0, list, 1) } ?? RD_KAFKA_RESP_ERR__DESTROY
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.fromRDKafka(.commit, error, context: "cannot commit \(topic)[\(partition)]@\(nextOffset)")
        }
    }

    /// How many messages of its partition follow `message`, from the high watermark librdkafka
    /// last saw in a fetch (no broker round trip, so cheap enough after every message); nil
    /// before librdkafka knows it.
    public func lag(after message: KafkaConsumerMessage) -> Int64? {
        var low: Int64 = 0
        var high: Int64 = 0
        let error = client.withHandle { rd_kafka_get_watermark_offsets($0, message.topic, message.partition, &low, &high) } ?? RD_KAFKA_RESP_ERR__DESTROY
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR, high >= 0 else { return nil }
        return max(high - (message.offset + 1), 0)
    }

    /// The partition's high watermark (the offset the next produced message will get), found on
    /// the consumer's own thread.
    ///
    /// The broker's answer to a ListOffsets request is not taken on trust: Tansu 0.6 answers with
    /// the base offset of the partition's last record batch plus one, so every record of that
    /// batch after its first lies beyond the answer (a producer that sends several messages at
    /// once writes them as one batch). The answer is checked by reading from it, on a short-lived
    /// reader of its own, to the partition's end: the watermark is the larger of the answer, the
    /// offset after the last record read there, and the end the fetch reported. A reader that
    /// does not reach the end within `timeout` gives what it read so far, with a warning.
    public func highWatermark(topic: String, partition: Int32, timeout: Duration = .seconds(10)) async throws -> Int64 {
        let client = self.client
        let milliseconds = Int32(timeout.milliseconds)
        let configuration = self.configuration
        let callbacks = RDKafkaCallbacks(logger: logger)
        let (error, high, reachedEnd) = try await worker.runIfActive { () throws -> (rd_kafka_resp_err_t, Int64, Bool) in
            var low: Int64 = 0
            var high: Int64 = 0
            let error = client.withHandle { rd_kafka_query_watermark_offsets($0, topic, partition, &low, &high, milliseconds) } ?? RD_KAFKA_RESP_ERR__DESTROY
            guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { return (error, high, false) }
            var readerConfiguration = configuration
            readerConfiguration.groupID += ".watermark"
            readerConfiguration.topics = [topic]
            readerConfiguration.assignment = .init(partitions: [partition], start: .offset(high))
            var properties = readerConfiguration.librdkafkaProperties
            properties["enable.partition.eof"] = "true"
            let reader = try RDKafkaClient(type: RD_KAFKA_CONSUMER, properties: properties, callbacks: callbacks)
            defer {
                _ = reader.withHandle { rd_kafka_consumer_close($0) }
                reader.destroy()
            }
            return reader.withHandle { handle in
                rd_kafka_poll_set_consumer(handle)
                let assigned = Self.start(handle, readerConfiguration)
                guard assigned == RD_KAFKA_RESP_ERR_NO_ERROR else { return (assigned, high, false) }
                let (end, reached) = Self.readToTheEnd(handle, topic: topic, partition: partition, from: high, timeout: timeout)
                return (RD_KAFKA_RESP_ERR_NO_ERROR, end, reached)
            } ?? (RD_KAFKA_RESP_ERR__DESTROY, high, false)
        }
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.fromRDKafka(.consume, error, context: "cannot read the high watermark of \(topic)[\(partition)]")
        }
        if !reachedEnd {
            logger.warning("the partition's end was not reached in time: its high watermark may be short", metadata: [
                "topic": "\(topic)", "partition": "\(partition)", "watermark": "\(high)",
            ])
        }
        return high
    }

    /// Polls an assigned reader until librdkafka reports the partition's end
    /// (`enable.partition.eof`) or `timeout` passes: the end found (never less than `offset`),
    /// and whether it was reached. Blocks: run it on a thread of its own.
    private static func readToTheEnd(_ handle: OpaquePointer, topic: String, partition: Int32, from offset: Int64, timeout: Duration) -> (Int64, Bool) {
        var end = offset
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard let message = rd_kafka_consumer_poll(handle, 100) else { continue }
            defer { rd_kafka_message_destroy(message) }
            switch message.pointee.err {
            case RD_KAFKA_RESP_ERR_NO_ERROR:
                end = max(end, message.pointee.offset + 1)
            case RD_KAFKA_RESP_ERR__PARTITION_EOF:
                var low: Int64 = 0
                var high: Int64 = 0
                if rd_kafka_get_watermark_offsets(handle, topic, partition, &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR {
                    end = max(end, high)
                }
                return (max(end, message.pointee.offset), true)
            default:
                break  // a broker's passing error: librdkafka retries the fetch
            }
        }
        return (end, false)
    }

    /// Makes `next()` return nil from now on without leaving the group; safe from any context
    /// (a graceful-shutdown handler). Call ``close()`` afterwards.
    public func stopConsuming() {
        stopped.store(true, ordering: .releasing)
    }

    /// Leaves the group cleanly, destroys the client and stops the consumer's thread; later
    /// `next()` calls return nil.
    public func close() async {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let client = self.client
        _ = try? await worker.runIfActive {
            _ = client.withHandle { rd_kafka_consumer_close($0) }
            client.destroy()
        }
        try? await worker.shutdownGracefully()
    }

    /// The consumer's messages as an AsyncSequence.
    public struct Messages: AsyncSequence, Sendable {
        public typealias Element = KafkaConsumerMessage
        let consumer: KafkaConsumer

        public struct AsyncIterator: AsyncIteratorProtocol {
            let consumer: KafkaConsumer
            public mutating func next() async throws -> KafkaConsumerMessage? {
                try await consumer.next()
            }
        }

        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(consumer: consumer) }
    }
}

/// What one poll produced, copied out of librdkafka's message before it is destroyed.
enum PollOutcome: Sendable {
    case nothing
    case message(KafkaConsumerMessage)
    case error(KafkaError, fatal: Bool)

    init(_ message: rd_kafka_message_t) {
        let topic = message.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
        guard message.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            let fatal = message.err == RD_KAFKA_RESP_ERR__FATAL
            var error = KafkaError.fromRDKafka(.consume, message.err, context: "consuming \(topic)")
            if let payload = message.payload, message.len > 0 {
                error.reason += ": " + String(decoding: UnsafeRawBufferPointer(start: payload, count: message.len), as: UTF8.self)
            }
            self = .error(error, fatal: fatal)
            return
        }
        let value = message.payload.map { Data(bytes: $0, count: message.len) } ?? Data()
        let key = message.key.map { Array(UnsafeRawBufferPointer(start: $0, count: message.key_len)) }
        self = .message(KafkaConsumerMessage(topic: topic, partition: message.partition, offset: message.offset, key: key, value: value))
    }
}
