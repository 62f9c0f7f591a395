import CCurl
import CWhiskShims
import Foundation
import NIOPosix
import Synchronization

/// One HTTP exchange over libcurl, optionally through a unix socket.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [String]
    public var body: Data?
    public var timeout: Duration?

    public init(method: String, url: String, headers: [String] = [], body: Data? = nil, timeout: Duration? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
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
    public var description: String { message }
}

/// An HTTP client over libcurl. Runs libcurl's blocking `curl_easy_perform` on its own thread pool, never on Swift's
/// cooperative pool.
public final class CurlHTTPClient: Sendable {
    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_ALL)) }()

    public let unixSocketPath: String?
    private let pool: NIOThreadPool

    /// - Parameters:
    ///   - unixSocketPath: send every request through this socket (Docker's API), else TCP.
    ///   - threads: how many requests may block at once.
    public init(unixSocketPath: String? = nil, threads: Int) {
        _ = Self.globalInit
        self.unixSocketPath = unixSocketPath
        self.pool = NIOThreadPool(numberOfThreads: threads)
        pool.start()
    }

    public func shutdown() async {
        try? await pool.shutdownGracefully()
    }

    public func perform(_ request: HTTPRequest) async throws -> HTTPResponse {
        let socket = unixSocketPath
        let result = try await pool.runIfActive { () -> Result<HTTPResponse, HTTPTransportError> in
            let sink = BodySink()
            let outcome = Self.performBlocking(request, unixSocketPath: socket, sink: sink)
            return outcome.map { HTTPResponse(status: $0, body: sink.data) }
        }
        return try result.get()
    }

    /// Streams a long-lived response on a thread of its own, handing each chunk to `onChunk`,
    /// until the server ends it or `cancelled` becomes true.
    public func stream(_ request: HTTPRequest, cancelled: CancelFlag, onChunk: @escaping @Sendable (Data) -> Void,
                       onEnd: @escaping @Sendable (Result<Int, HTTPTransportError>) -> Void) {
        let socket = unixSocketPath
        let thread = Thread {
            let sink = BodySink(onChunk: onChunk, cancelled: cancelled)
            onEnd(Self.performBlocking(request, unixSocketPath: socket, sink: sink))
        }
        thread.name = "whiskmesh-docker-stream"
        thread.start()
    }

    /// Blocking; call only from a pool or stream thread. Returns the HTTP status.
    private static func performBlocking(_ request: HTTPRequest, unixSocketPath: String?, sink: BodySink) -> Result<Int, HTTPTransportError> {
        guard let handle = curl_easy_init() else {
            return .failure(HTTPTransportError(message: "curl_easy_init failed", isTimeout: false))
        }
        defer { curl_easy_cleanup(handle) }
        var headerList: UnsafeMutablePointer<curl_slist>? = nil
        for header in request.headers {
            headerList = curl_slist_append(headerList, header)
        }
        defer { curl_slist_free_all(headerList) }
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        let unmanagedSink = Unmanaged.passRetained(sink)
        defer { unmanagedSink.release() }

        let code: CURLcode = errorBuffer.withUnsafeMutableBufferPointer { errorPointer in
            whisk_curl_setopt_string(handle, CURLOPT_URL, request.url)
            if let unixSocketPath {
                whisk_curl_setopt_string(handle, CURLOPT_UNIX_SOCKET_PATH, unixSocketPath)
            }
            whisk_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method)
            whisk_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
            whisk_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorPointer.baseAddress)
            whisk_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList)
            if let timeout = request.timeout {
                whisk_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, timeout.milliseconds)
            }
            whisk_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, unmanagedSink.toOpaque())
            whisk_curl_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION) { buffer, size, count, userdata in
                guard let buffer, let userdata else { return 0 }
                let sink = Unmanaged<BodySink>.fromOpaque(userdata).takeUnretainedValue()
                let length = size * count
                return sink.append(UnsafeRawBufferPointer(start: buffer, count: length)) ? length : 0
            }
            whisk_curl_setopt_long(handle, CURLOPT_NOPROGRESS, 0)
            whisk_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, unmanagedSink.toOpaque())
            whisk_curl_setopt_xferinfo_callback(handle) { userdata, _, _, _, _ in
                guard let userdata else { return 0 }
                return Unmanaged<BodySink>.fromOpaque(userdata).takeUnretainedValue().isCancelled ? 1 : 0
            }
            if let body = request.body {
                return body.withUnsafeBytes { bytes in
                    whisk_curl_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(bytes.count))
                    whisk_curl_setopt_pointer(handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
                    return curl_easy_perform(handle)
                }
            }
            return curl_easy_perform(handle)
        }
        if code == CURLE_ABORTED_BY_CALLBACK && sink.isCancelled {
            return .success(0)
        }
        guard code == CURLE_OK else {
            let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let text = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
            return .failure(HTTPTransportError(message: "\(request.method) \(request.url): \(text)", isTimeout: code == CURLE_OPERATION_TIMEDOUT))
        }
        var status = 0
        whisk_curl_response_code(handle, &status)
        return .success(status)
    }
}

/// Collects a response body, or hands chunks to a streaming consumer.
///
/// `@unchecked Sendable`: `data` is touched only by the one thread running the transfer, and
/// read after `curl_easy_perform` returned on that same thread; `cancelled` is atomic.
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
