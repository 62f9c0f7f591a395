import CRdKafka
import Foundation
import Logging
import NIOPosix
import Synchronization

/// Sends messages to Kafka and awaits the broker's delivery report for each.
///
/// A dedicated thread serves librdkafka's delivery-report queue, so sending never blocks
/// Swift's cooperative thread pool. Call ``close(timeout:)`` to flush and release it.
public final class KafkaProducer: Sendable {
    private let client: RDKafkaClient
    private let deliveries: DeliveryTracker
    private let pollThread: NIOThreadPool
    private let running = RunFlag()
    private let logger: Logger
    private let partition: Int32?

    public init(configuration: KafkaProducerConfiguration, logger: Logger) throws {
        self.partition = configuration.partition
        let deliveries = DeliveryTracker()
        let callbacks = RDKafkaCallbacks(logger: logger) { id, result in
            deliveries.complete(id: id, with: result)
        }
        self.client = try RDKafkaClient(type: RD_KAFKA_PRODUCER, properties: configuration.librdkafkaProperties, callbacks: callbacks)
        self.deliveries = deliveries
        self.logger = logger
        self.pollThread = NIOThreadPool(numberOfThreads: 1)
        pollThread.start()
        let client = self.client
        let running = self.running
        pollThread.submit { _ in
            while running.isSet {
                _ = client.withHandle { rd_kafka_poll($0, 100) }
            }
        }
    }

    /// Sends `value` to `topic` and returns once the broker acknowledged it.
    ///
    /// - Throws: ``KafkaError`` with code `.messageTooLarge` for an oversized message,
    ///   `.delivery` when the broker did not take it, `.closed` after ``close(timeout:)``.
    @discardableResult
    public func send(topic: String, key: [UInt8]? = nil, value: some ContiguousBytes) async throws -> KafkaDeliveryReport {
        try await withCheckedThrowingContinuation { continuation in
            guard let id = deliveries.register(continuation) else {
                continuation.resume(throwing: KafkaError(.closed, "the producer is closed"))
                return
            }
            if let error = produce(topic: topic, key: key, value: value, id: id) {
                deliveries.complete(id: id, with: .failure(error))
            }
        }
    }

    /// Hands `value` to librdkafka and returns at once; `onDelivery` runs on the producer's thread
    /// with the broker's report. Messages enqueued one after another keep their order on a
    /// partition (barring retries), so a caller can stream without awaiting each round trip.
    ///
    /// - Throws: ``KafkaError`` when the message cannot even be enqueued (too large, queue full,
    ///   closed); `onDelivery` is then not called.
    public func sendDetached(topic: String, key: [UInt8]? = nil, value: some ContiguousBytes,
                             onDelivery: @escaping @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void) throws {
        guard let id = deliveries.register(onDelivery) else { throw KafkaError(.closed, "the producer is closed") }
        if let error = produce(topic: topic, key: key, value: value, id: id) {
            deliveries.discard(id: id)
            throw error
        }
    }

    /// Sends a UTF-8 string (OpenWhisk's messages are keyless JSON strings).
    @discardableResult
    public func send(topic: String, string: String) async throws -> KafkaDeliveryReport {
        try await send(topic: topic, value: Array(string.utf8))
    }

    private func produce(topic: String, key: [UInt8]?, value: some ContiguousBytes, id: UInt) -> KafkaError? {
        value.withUnsafeBytes { valueBuffer in
            topic.withCString { topicName in
                withKeyBuffer(key) { keyBuffer in
                    var values = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 6)
                    values[0].vtype = RD_KAFKA_VTYPE_TOPIC
                    values[0].u.cstr = topicName
                    values[1].vtype = RD_KAFKA_VTYPE_VALUE
                    values[1].u.mem.ptr = UnsafeMutableRawPointer(mutating: valueBuffer.baseAddress)
                    values[1].u.mem.size = valueBuffer.count
                    values[2].vtype = RD_KAFKA_VTYPE_MSGFLAGS
                    values[2].u.i = RD_KAFKA_MSG_F_COPY
                    values[3].vtype = RD_KAFKA_VTYPE_OPAQUE
                    values[3].u.ptr = UnsafeMutableRawPointer(bitPattern: id)
                    var count = 4
                    if let keyBuffer {
                        values[4].vtype = RD_KAFKA_VTYPE_KEY
                        values[4].u.mem.ptr = UnsafeMutableRawPointer(mutating: keyBuffer.baseAddress)
                        values[4].u.mem.size = keyBuffer.count
                        count = 5
                    }
                    if let partition {
                        values[count].vtype = RD_KAFKA_VTYPE_PARTITION
                        values[count].u.i32 = partition
                        count += 1
                    }
                    guard let error = client.withHandle({ rd_kafka_produceva($0, &values, count) }) else {
                        return KafkaError(.closed, "the producer is closed")
                    }
                    guard let error else { return nil }
                    defer { rd_kafka_error_destroy(error) }
                    return KafkaError.fromRDKafka(.produce, rd_kafka_error_code(error), context: "cannot send to \(topic) (\(valueBuffer.count) bytes)")
                }
            }
        }
    }

    private func withKeyBuffer<R>(_ key: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
        guard let key else { return body(nil) }
        return key.withUnsafeBytes { body($0) }
    }

    /// Waits up to `timeout` for outstanding messages, then fails whatever is still pending.
    public func close(timeout: Duration = .seconds(10)) async {
        deliveries.close()
        guard running.clear() else { return }
        let client = self.client
        let remaining = try? await pollThread.runIfActive {
            client.withHandle { handle in
                rd_kafka_flush(handle, Int32(timeout.milliseconds))
                return rd_kafka_outq_len(handle)
            }
        }
        if let remaining, remaining > 0 {
            logger.warning("producer closed with undelivered messages", metadata: ["count": "\(remaining)"])
        }
        deliveries.failAll(KafkaError(.closed, "the producer was closed before the broker acknowledged the message"))
        _ = try? await pollThread.runIfActive { client.destroy() }
        try? await pollThread.shutdownGracefully()
    }
}

/// Correlates delivery reports with the tasks awaiting them; each continuation is resumed
/// exactly once, by its report, by a produce error, or when the producer closes.
final class DeliveryTracker: Sendable {
    /// Who learns of a delivery: an awaiting task, or a callback (detached sends).
    enum Waiter {
        case continuation(CheckedContinuation<KafkaDeliveryReport, Error>)
        case callback(@Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void)

        func resume(with result: Result<KafkaDeliveryReport, KafkaError>) {
            switch self {
            case .continuation(let continuation): continuation.resume(with: result.mapError { $0 as Error })
            case .callback(let callback): callback(result)
            }
        }
    }

    private struct State {
        var nextID: UInt = 1
        var pending: [UInt: Waiter] = [:]
        var closed = false
    }
    private let state = Mutex(State())

    /// Returns the message's id, or nil when closed.
    func register(_ continuation: CheckedContinuation<KafkaDeliveryReport, Error>) -> UInt? {
        register(.continuation(continuation))
    }

    func register(_ callback: @escaping @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void) -> UInt? {
        register(.callback(callback))
    }

    private func register(_ waiter: Waiter) -> UInt? {
        state.withLock { state in
            guard !state.closed else { return nil }
            let id = state.nextID
            state.nextID += 1
            state.pending[id] = waiter
            return id
        }
    }

    func complete(id: UInt, with result: Result<KafkaDeliveryReport, KafkaError>) {
        let waiter = state.withLock { $0.pending.removeValue(forKey: id) }
        waiter?.resume(with: result)
    }

    /// Forgets a message that never reached librdkafka (its producer call failed).
    func discard(id: UInt) {
        _ = state.withLock { $0.pending.removeValue(forKey: id) }
    }

    func close() {
        state.withLock { $0.closed = true }
    }

    func failAll(_ error: KafkaError) {
        let all = state.withLock { state in
            defer { state.pending.removeAll() }
            return Array(state.pending.values)
        }
        for waiter in all { waiter.resume(with: .failure(error)) }
    }

    var pendingCount: Int { state.withLock { $0.pending.count } }
}

/// A flag that a long-running thread loop checks; shared by reference with that loop.
final class RunFlag: Sendable {
    private let value = Atomic<Bool>(true)
    var isSet: Bool { value.load(ordering: .acquiring) }
    /// Clears the flag; returns whether it was set.
    func clear() -> Bool { value.exchange(false, ordering: .acquiringAndReleasing) }
}

extension KafkaProducer {
    /// The bootstrap servers of librdkafka's in-process mock cluster, when this producer was
    /// created with `test.mock.num.brokers`; lets unit tests point a consumer at the same cluster.
    public var mockClusterBootstrapServers: String? {
        guard let cluster = client.withHandle({ rd_kafka_handle_mock_cluster($0) }) ?? nil,
              let servers = rd_kafka_mock_cluster_bootstraps(cluster) else { return nil }
        return String(cString: servers)
    }
}
