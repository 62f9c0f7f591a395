import CCurl
import CWhiskShims
import Foundation
import Synchronization

/// One HTTP exchange over libcurl, optionally through a unix socket.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [String]
    public var body: Data?
    public var timeout: Duration?
    /// How long making the connection may take (nil: libcurl's default, within `timeout`). A
    /// connection not made in time is a connect failure (``HTTPTransportError/isConnectFailure``),
    /// not a timeout: a SYN to an address whose container just vanished is never answered.
    public var connectTimeout: Duration?
    /// The connection is closed after this request instead of kept for the next one (an idle
    /// kept-alive connection to the same address is taken for it, so it closes that one).
    public var closesConnection: Bool

    public init(method: String, url: String, headers: [String] = [], body: Data? = nil, timeout: Duration? = nil, connectTimeout: Duration? = nil,
                closesConnection: Bool = false) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.closesConnection = closesConnection
    }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    public var body: Data

    public init(status: Int, body: Data) {
        self.status = status
        self.body = body
    }
}

/// The request got no HTTP answer: no such socket, refused, timed out, reset.
public struct HTTPTransportError: Error, Sendable, CustomStringConvertible {
    public var message: String
    /// The transfer hit its time limit.
    public var isTimeout: Bool
    /// No connection was made (refused, unreachable): nothing of the request reached the server,
    /// so it can be sent again. A reset after connecting is not this: the server may have acted.
    public var isConnectFailure: Bool = false
    public var description: String { message }
}

/// An HTTP client over libcurl's multi interface. One thread of the client's own drives every
/// transfer (`curl_multi_poll`), so any number of requests can be in flight at once: a request that
/// lasts minutes (an action's `/run`) never keeps another from starting, and nothing blocks Swift's
/// cooperative pool. (It once ran `curl_easy_perform` on a pool of 64 threads: the 65th concurrent
/// `/run` then waited for one of the first 64 to end, and a group of 65 instances that wait for
/// each other deadlocked.)
public final class CurlHTTPClient: Sendable {
    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_ALL)) }()

    public let unixSocketPath: String?
    private let driver: CurlMultiDriver

    /// - Parameters:
    ///   - unixSocketPath: send every request through this socket (Docker's API), else TCP.
    ///   - maxInFlight: at most this many transfers at once (later ones wait their turn, and their
    ///     timeout starts when they start); nil: no limit.
    public init(unixSocketPath: String? = nil, maxInFlight: Int? = nil) {
        _ = Self.globalInit
        self.unixSocketPath = unixSocketPath
        self.driver = CurlMultiDriver(maxInFlight: maxInFlight)
    }

    /// Ends every transfer still in flight with an error and stops the client's thread.
    public func shutdown() async {
        await driver.shutdown()
    }

    /// One request. Cancelling the calling task ends the transfer with `CancellationError`.
    public func perform(_ request: HTTPRequest) async throws -> HTTPResponse {
        let transfer = try CurlTransfer(request, unixSocketPath: unixSocketPath, sink: BodySink())
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                transfer.setCompletion { continuation.resume(with: $0) }
                driver.submit(transfer)
            }
        } onCancel: {
            driver.cancel(transfer)
        }
    }

    /// Streams a long-lived response (Docker's events, a container's log), handing each chunk to
    /// `onChunk` on the client's thread, until the server ends it or `cancelled` becomes true
    /// (seen within a second). Streams do not count against `maxInFlight`.
    public func stream(_ request: HTTPRequest, cancelled: CancelFlag, onChunk: @escaping @Sendable (Data) -> Void,
                       onEnd: @escaping @Sendable (Result<Int, HTTPTransportError>) -> Void) {
        let sink = BodySink(onChunk: onChunk, cancelled: cancelled)
        let transfer: CurlTransfer
        do {
            transfer = try CurlTransfer(request, unixSocketPath: unixSocketPath, sink: sink, limited: false)
        } catch {
            onEnd(.failure(error as? HTTPTransportError ?? HTTPTransportError(message: "\(error)", isTimeout: false)))
            return
        }
        transfer.setCompletion { result in
            switch result {
            case .success(let response): onEnd(.success(response.status))
            case .failure where sink.isCancelled: onEnd(.success(0))
            case .failure(let error as HTTPTransportError): onEnd(.failure(error))
            case .failure(let error): onEnd(.failure(HTTPTransportError(message: "\(error)", isTimeout: false)))
            }
        }
        driver.submit(transfer)
    }
}

/// One transfer: an easy handle configured for the request, and everything it points to (the
/// header list, the error buffer, the body sink), freed together when the transfer is dropped.
///
/// `@unchecked Sendable`: the handle is used by one thread at a time (the submitting task until it
/// is queued, then the driver's thread); the completion is taken once under its lock.
final class CurlTransfer: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    let request: HTTPRequest
    let sink: BodySink
    /// Counts against the client's `maxInFlight` (streams do not).
    let limited: Bool
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private let completion = Mutex<(@Sendable (Result<HTTPResponse, Error>) -> Void)?>(nil)
    /// Set by a cancellation that arrived before the transfer reached the driver.
    let cancelRequested = Atomic<Bool>(false)

    init(_ request: HTTPRequest, unixSocketPath: String?, sink: BodySink, limited: Bool = true) throws {
        guard let handle = curl_easy_init() else {
            throw HTTPTransportError(message: "curl_easy_init failed", isTimeout: false)
        }
        self.handle = handle
        self.request = request
        self.sink = sink
        self.limited = limited
        self.errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        for header in request.headers {
            headerList = curl_slist_append(headerList, header)
        }
        whisk_curl_setopt_string(handle, CURLOPT_URL, request.url)
        if let unixSocketPath {
            whisk_curl_setopt_string(handle, CURLOPT_UNIX_SOCKET_PATH, unixSocketPath)
        }
        whisk_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method)
        whisk_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        // Connections are kept alive and reused (the driver's cache), as upstream's invoker keeps
        // one per container: a new connection per `/run` cost the invoker a TCP handshake and
        // teardown and the Python proxy a thread. A kept-alive connection cannot reach another
        // container: once its container is gone, a container given the same address answers the
        // old connection with a reset, and libcurl retries a reused connection that died before
        // any answer on a new one, to the address it was asked for.
        whisk_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer)
        whisk_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList)
        if let timeout = request.timeout {
            whisk_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, max(1, timeout.milliseconds))
        }
        if let connectTimeout = request.connectTimeout {
            whisk_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, max(1, connectTimeout.milliseconds))
        }
        if request.closesConnection {
            whisk_curl_setopt_long(handle, CURLOPT_FORBID_REUSE, 1)
        }
        let sinkPointer = Unmanaged.passUnretained(sink).toOpaque()
        whisk_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, sinkPointer)
        whisk_curl_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION) { buffer, size, count, userdata in
            guard let buffer, let userdata else { return 0 }
            let sink = Unmanaged<BodySink>.fromOpaque(userdata).takeUnretainedValue()
            let length = size * count
            return sink.append(UnsafeRawBufferPointer(start: buffer, count: length)) ? length : 0
        }
        whisk_curl_setopt_long(handle, CURLOPT_NOPROGRESS, 0)
        whisk_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, sinkPointer)
        whisk_curl_setopt_xferinfo_callback(handle) { userdata, _, _, _, _ in
            guard let userdata else { return 0 }
            return Unmanaged<BodySink>.fromOpaque(userdata).takeUnretainedValue().isCancelled ? 1 : 0
        }
        if let body = request.body {
            // libcurl keeps its own copy of the body, so it outlives this call.
            whisk_curl_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
            body.withUnsafeBytes { bytes in
                _ = whisk_curl_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS,
                                              UnsafeMutableRawPointer(mutating: bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
            }
        }
    }

    deinit {
        curl_easy_cleanup(handle)
        curl_slist_free_all(headerList)
        errorBuffer.deallocate()
    }

    func setCompletion(_ completion: @escaping @Sendable (Result<HTTPResponse, Error>) -> Void) {
        self.completion.withLock { $0 = completion }
    }

    /// Tells the caller once; later calls do nothing.
    func finish(_ result: Result<HTTPResponse, Error>) {
        let taken = completion.withLock { value -> (@Sendable (Result<HTTPResponse, Error>) -> Void)? in
            defer { value = nil }
            return value
        }
        taken?(result)
    }

    /// The error of a transfer that the client's shutdown ended or refused.
    var shutDown: HTTPTransportError {
        HTTPTransportError(message: "\(request.method) \(request.url): the HTTP client was shut down", isTimeout: false)
    }

    /// What a transfer that ended with `code` produced.
    func outcome(_ code: CURLcode) -> Result<HTTPResponse, HTTPTransportError> {
        guard code == CURLE_OK else {
            let detail = String(cString: errorBuffer)
            let text = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
            // libcurl reports a connect timeout as a timeout. Nothing of the request sent means it
            // was one (a reused connection that timed out after sending is the request's timeout).
            var sent = 0
            let nothingSent = whisk_curl_request_size(handle, &sent) == CURLE_OK && sent == 0
            let connectTimedOut = code == CURLE_OPERATION_TIMEDOUT && request.connectTimeout != nil && nothingSent
            return .failure(HTTPTransportError(message: "\(request.method) \(request.url): \(text)",
                                                 isTimeout: code == CURLE_OPERATION_TIMEDOUT && !connectTimedOut,
                                                 isConnectFailure: code == CURLE_COULDNT_CONNECT || connectTimedOut))
        }
        var status = 0
        whisk_curl_response_code(handle, &status)
        return .success(HTTPResponse(status: status, body: sink.data))
    }
}

/// Drives transfers on one thread with a curl multi handle. Other threads hand it transfers and
/// cancellations through `shared` and wake it with `curl_multi_wakeup`; only its thread touches
/// the multi handle's transfers (`active`).
final class CurlMultiDriver: @unchecked Sendable {
    private struct Shared {
        var queued: [CurlTransfer] = []
        var cancelled: [CurlTransfer] = []
        var stopping = false
        var exited = false
        var exitWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let multi: UnsafeMutableRawPointer
    private let maxInFlight: Int?
    private let shared = Mutex(Shared())
    /// Only the driver's thread reads or writes this.
    private var active: [UnsafeMutableRawPointer: CurlTransfer] = [:]
    /// Transfers in `active` that count against `maxInFlight`; only the driver's thread.
    private var limitedActive = 0

    static let maxIdleConnections = 512

    init(maxInFlight: Int?) {
        self.multi = curl_multi_init()
        self.maxInFlight = maxInFlight
        // Idle connections kept for reuse: about one per container (libcurl's default is four
        // per transfer added, so a pool of quiet containers would lose theirs).
        whisk_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, Self.maxIdleConnections)
        let thread = Thread { [self] in run() }
        thread.name = "whiskmesh-curl"
        thread.start()
    }

    func submit(_ transfer: CurlTransfer) {
        let refused: Error? = shared.withLock { state in
            if state.stopping { return transfer.shutDown }
            if transfer.cancelRequested.load(ordering: .acquiring) { return CancellationError() }
            state.queued.append(transfer)
            return nil
        }
        if let refused {
            transfer.finish(.failure(refused))
        } else {
            curl_multi_wakeup(multi)
        }
    }

    func cancel(_ transfer: CurlTransfer) {
        transfer.cancelRequested.store(true, ordering: .releasing)
        enum Where { case queued, driver, gone }
        let place = shared.withLock { state -> Where in
            if let index = state.queued.firstIndex(where: { $0 === transfer }) {
                state.queued.remove(at: index)
                return .queued
            }
            if state.exited { return .gone }
            state.cancelled.append(transfer)
            return .driver
        }
        switch place {
        case .queued: transfer.finish(.failure(CancellationError()))
        case .driver: curl_multi_wakeup(multi)
        case .gone: break  // the driver already ended it
        }
    }

    func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let exited = shared.withLock { state -> Bool in
                state.stopping = true
                if !state.exited { state.exitWaiters.append(continuation) }
                return state.exited
            }
            if exited {
                continuation.resume()
            } else {
                curl_multi_wakeup(multi)
            }
        }
    }

    private func run() {
        while true {
            var slots = maxInFlight.map { max(0, $0 - limitedActive) } ?? Int.max
            let (starting, cancelled, stopping) = shared.withLock { state in
                // Streams start at once; requests in order, as slots allow.
                var starting: [CurlTransfer] = []
                state.queued.removeAll { transfer in
                    guard !transfer.limited || slots > 0 else { return false }
                    if transfer.limited { slots -= 1 }
                    starting.append(transfer)
                    return true
                }
                defer { state.cancelled.removeAll() }
                return (starting, state.cancelled, state.stopping)
            }
            for transfer in cancelled {
                if deactivate(transfer.handle) != nil {
                    curl_multi_remove_handle(multi, transfer.handle)
                    transfer.finish(.failure(CancellationError()))
                }
            }
            if stopping {
                stop()
                return
            }
            for transfer in starting {
                active[transfer.handle] = transfer
                if transfer.limited { limitedActive += 1 }
                curl_multi_add_handle(multi, transfer.handle)
            }
            var running: Int32 = 0
            curl_multi_perform(multi, &running)
            var left: Int32 = 0
            while let message = curl_multi_info_read(multi, &left) {
                guard message.pointee.msg == CURLMSG_DONE, let handle = message.pointee.easy_handle else { continue }
                let code = whisk_curl_msg_result(message)
                curl_multi_remove_handle(multi, handle)
                if let transfer = deactivate(handle) {
                    transfer.finish(transfer.outcome(code).mapError { $0 })
                }
            }
            // Returns on socket activity, on curl's own next timeout, or on a wake-up.
            curl_multi_poll(multi, nil, 0, 1000, nil)
        }
    }

    private func deactivate(_ handle: UnsafeMutableRawPointer) -> CurlTransfer? {
        guard let transfer = active.removeValue(forKey: handle) else { return nil }
        if transfer.limited { limitedActive -= 1 }
        return transfer
    }

    /// Ends everything in flight or waiting, frees the multi handle and lets `shutdown` return.
    private func stop() {
        for (handle, transfer) in active {
            curl_multi_remove_handle(multi, handle)
            transfer.finish(.failure(transfer.shutDown))
        }
        active.removeAll()
        limitedActive = 0
        let (queued, waiters) = shared.withLock { state in
            defer {
                state.queued.removeAll()
                state.exitWaiters.removeAll()
                state.exited = true
            }
            return (state.queued, state.exitWaiters)
        }
        for transfer in queued {
            transfer.finish(.failure(transfer.shutDown))
        }
        curl_multi_cleanup(multi)
        for waiter in waiters { waiter.resume() }
    }
}

/// Collects a response body, or hands chunks to a streaming consumer.
///
/// `@unchecked Sendable`: `data` is touched only by the one thread running the transfer, and
/// read after the transfer ended on that same thread; `cancelled` is atomic.
final class BodySink: @unchecked Sendable {
    var data = Data()
    private let onChunk: (@Sendable (Data) -> Void)?
    private let cancelled: CancelFlag?

    init(onChunk: (@Sendable (Data) -> Void)? = nil, cancelled: CancelFlag? = nil) {
        self.onChunk = onChunk
        self.cancelled = cancelled
    }

    var isCancelled: Bool { cancelled?.isSet ?? false }

    func append(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if isCancelled { return false }
        if let onChunk {
            onChunk(Data(bytes))
        } else {
            data.append(contentsOf: bytes)
        }
        return true
    }
}

/// A flag set once and read from any thread (stops a streaming transfer; marks an invoker's drain
/// period as over).
public final class CancelFlag: Sendable {
    private let value = Atomic<Bool>(false)
    public init() {}
    public var isSet: Bool { value.load(ordering: .acquiring) }
    public func set() { value.store(true, ordering: .releasing) }
}

extension Duration {
    /// Whole milliseconds.
    public var milliseconds: Int {
        let (seconds, attoseconds) = components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }
}
