import CRdKafka
import Foundation
import Logging
import Synchronization

/// Owns one librdkafka handle and the callbacks wired to it.
///
/// `@unchecked Sendable`: librdkafka documents `rd_kafka_t` as thread-safe, and the handle is
/// reached only through ``withHandle(_:)``, which ``destroy()`` waits out.
///
/// The owner destroys the handle when it closes, not only in `deinit`: a process that exits
/// while a handle lives races librdkafka's threads against the C library's exit handlers (the
/// invoker once aborted with "double free or corruption" on `rdk:main` after it had stopped).
final class RDKafkaClient: @unchecked Sendable {
    /// librdkafka before 2.1 mis-parses the tagged fields of ApiVersions v3 replies
    /// (https://github.com/confluentinc/librdkafka/issues/4170) and cannot talk to such brokers.
    static let minimumSupportedVersion: Int32 = 0x0201_00ff

    private let handle: OpaquePointer
    let callbacks: RDKafkaCallbacks
    /// Calls in progress (the low bits) and whether ``destroy()`` began (``destroyedBit``).
    private let gate = Atomic<Int>(0)
    private static let destroyedBit = 1 << 62

    /// The version of the librdkafka that is actually loaded, e.g. "2.16.0".
    static var versionString: String { String(cString: rd_kafka_version_str()) }
    static var version: Int32 { rd_kafka_version() }

    init(type: rd_kafka_type_t, properties: [String: String], callbacks: RDKafkaCallbacks) throws {
        let logger = callbacks.logger
        if Self.version < Self.minimumSupportedVersion {
            logger.warning(
                "librdkafka is older than 2.1 and cannot talk to brokers that send tagged ApiVersions fields; put a newer librdkafka.so.1 on LD_LIBRARY_PATH",
                metadata: ["librdkafka": "\(Self.versionString)"]
            )
        }
        guard let conf = rd_kafka_conf_new() else {
            throw KafkaError(.configuration, "rd_kafka_conf_new failed")
        }
        var errorBuffer = [CChar](repeating: 0, count: 512)
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            let result = rd_kafka_conf_set(conf, key, value, &errorBuffer, errorBuffer.count)
            if result != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw KafkaError(.configuration, "\(key)=\(value): \(String(cErrorBuffer: errorBuffer))")
            }
        }
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(callbacks).toOpaque())
        rd_kafka_conf_set_log_cb(conf) { handle, level, facility, message in
            guard let handle, let opaque = rd_kafka_opaque(handle) else { return }
            let callbacks = Unmanaged<RDKafkaCallbacks>.fromOpaque(opaque).takeUnretainedValue()
            callbacks.log(level: level, facility: facility.map { String(cString: $0) } ?? "", message: message.map { String(cString: $0) } ?? "")
        }
        rd_kafka_conf_set_error_cb(conf) { _, error, reason, opaque in
            guard let opaque else { return }
            let callbacks = Unmanaged<RDKafkaCallbacks>.fromOpaque(opaque).takeUnretainedValue()
            callbacks.logger.warning(
                "librdkafka error",
                metadata: ["error": "\(String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(error))))", "reason": "\(reason.map { String(cString: $0) } ?? "")"]
            )
        }
        if type == RD_KAFKA_CONSUMER {
            // Results of asynchronous commits: only failures are worth a line.
            rd_kafka_conf_set_offset_commit_cb(conf) { _, error, _, opaque in
                guard let opaque, error != RD_KAFKA_RESP_ERR_NO_ERROR, error != RD_KAFKA_RESP_ERR__NO_OFFSET else { return }
                let callbacks = Unmanaged<RDKafkaCallbacks>.fromOpaque(opaque).takeUnretainedValue()
                callbacks.logger.warning("offset commit failed", metadata: ["error": "\(String(cString: rd_kafka_err2name(error)))"])
            }
        }
        if callbacks.deliveryReport != nil {
            rd_kafka_conf_set_dr_msg_cb(conf) { _, message, opaque in
                guard let opaque, let message else { return }
                let callbacks = Unmanaged<RDKafkaCallbacks>.fromOpaque(opaque).takeUnretainedValue()
                let id = UInt(bitPattern: message.pointee._private)
                let result: Result<KafkaDeliveryReport, KafkaError>
                if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                    result = .success(KafkaDeliveryReport(partition: message.pointee.partition, offset: message.pointee.offset))
                } else {
                    result = .failure(.fromRDKafka(.delivery, message.pointee.err, context: "delivery failed"))
                }
                callbacks.deliveryReport?(id, result)
            }
        }
        // rd_kafka_new takes ownership of conf on success only.
        guard let handle = rd_kafka_new(type, conf, &errorBuffer, errorBuffer.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(.clientCreation, String(cErrorBuffer: errorBuffer))
        }
        self.handle = handle
        self.callbacks = callbacks
    }

    /// Runs `body` with the handle; nil once ``destroy()`` began (the client is closed).
    func withHandle<R>(_ body: (OpaquePointer) throws -> R) rethrows -> R? {
        let before = gate.wrappingAdd(1, ordering: .acquiring).oldValue
        defer { gate.wrappingSubtract(1, ordering: .releasing) }
        guard before & Self.destroyedBit == 0 else { return nil }
        return try body(handle)
    }

    /// Destroys the handle once the calls in progress returned; later ``withHandle(_:)`` calls
    /// get nil. Blocks (a consumer leaves its group, librdkafka joins its threads): call it on a
    /// thread of the owner's own. Idempotent.
    func destroy() {
        let before = gate.bitwiseOr(Self.destroyedBit, ordering: .acquiringAndReleasing).oldValue
        guard before & Self.destroyedBit == 0 else { return }
        while gate.load(ordering: .acquiring) & ~Self.destroyedBit != 0 { usleep(1_000) }
        rd_kafka_destroy(handle)
    }

    deinit {
        if gate.load(ordering: .acquiring) & Self.destroyedBit == 0 { rd_kafka_destroy(handle) }
    }
}

/// What librdkafka's C callbacks reach through the handle's opaque pointer.
///
/// `@unchecked Sendable`: both stored properties are immutable and themselves thread-safe
/// (`Logger` is a value, `deliveryReport` a `@Sendable` closure).
final class RDKafkaCallbacks: @unchecked Sendable {
    let logger: Logger
    let deliveryReport: (@Sendable (UInt, Result<KafkaDeliveryReport, KafkaError>) -> Void)?

    init(logger: Logger, deliveryReport: (@Sendable (UInt, Result<KafkaDeliveryReport, KafkaError>) -> Void)? = nil) {
        self.logger = logger
        self.deliveryReport = deliveryReport
    }

    /// Routes a librdkafka log line (syslog levels) into swift-log.
    func log(level: Int32, facility: String, message: String) {
        let swiftLevel: Logger.Level
        switch level {
        case ...2: swiftLevel = .critical
        case 3: swiftLevel = .error
        case 4: swiftLevel = .warning
        case 5: swiftLevel = .notice
        case 6: swiftLevel = .info
        default: swiftLevel = .debug
        }
        logger.log(level: swiftLevel, "\(message)", metadata: ["librdkafka.facility": "\(facility)"])
    }
}

/// Where the broker stored a sent message.
public struct KafkaDeliveryReport: Sendable, Hashable {
    public var partition: Int32
    public var offset: Int64
}

/// The version of the loaded librdkafka and whether it can talk to current brokers.
public enum KafkaLibrary {
    public static var version: String { RDKafkaClient.versionString }
    public static var isSupported: Bool { RDKafkaClient.version >= RDKafkaClient.minimumSupportedVersion }

    /// Runs a daemon's services (`body`), then waits for librdkafka's threads to end, also
    /// when the services failed; logs a warning when a client was still open.
    public static func runDaemon(_ name: String, logger: Logger, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch {
            await warnUnlessEveryClientIsGone(name, logger: logger)
            throw error
        }
        await warnUnlessEveryClientIsGone(name, logger: logger)
    }

    private static func warnUnlessEveryClientIsGone(_ name: String, logger: Logger) async {
        if !(await waitUntilEveryClientIsGone()) {
            logger.warning("a Kafka client was still open when the \(name) exited")
        }
    }

    /// Waits up to `timeout` until every librdkafka handle of the process is destroyed and its
    /// threads are gone (`rd_kafka_wait_destroyed`); a daemon calls it last, before it exits, so
    /// no librdkafka thread outlives `main`. Returns false on timeout (a client not closed).
    public static func waitUntilEveryClientIsGone(timeout: Duration = .seconds(10)) async -> Bool {
        await withCheckedContinuation { continuation in
            // rd_kafka_wait_destroyed sleeps: on a thread of its own, not Swift's pool.
            Thread.detachNewThread {
                continuation.resume(returning: rd_kafka_wait_destroyed(Int32(timeout.milliseconds)) == 0)
            }
        }
    }
}

extension String {
    /// Reads a NUL-terminated C error buffer filled by librdkafka.
    init(cErrorBuffer buffer: [CChar]) {
        self = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
