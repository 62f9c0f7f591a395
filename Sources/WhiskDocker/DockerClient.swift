import Foundation
import Logging
import WhiskHTTP

/// A client of the Docker Engine API v1.41 over its unix socket, through libcurl.
///
/// Every call runs on the HTTP client's own thread; close it with ``shutdown()``.
public final class DockerClient: Sendable {
    public struct Configuration: Sendable {
        public var socketPath: String = "/var/run/docker.sock"
        public var apiVersion: String = "v1.41"
        /// Calls to the engine at once (container creates, attaches, inspects); later ones wait
        /// their turn. Streams (events, logs) do not count.
        public var maxRequestsInFlight: Int = 16
        /// Per-request time limit for ordinary calls (not for streams, waits and builds).
        public var requestTimeout: Duration = .seconds(60)

        public init() {}
    }

    let configuration: Configuration
    private let transport: CurlHTTPClient
    private let logger: Logger

    public init(configuration: Configuration = Configuration(), logger: Logger) {
        self.configuration = configuration
        self.transport = CurlHTTPClient(unixSocketPath: configuration.socketPath, maxInFlight: configuration.maxRequestsInFlight)
        self.logger = logger
    }

    public func shutdown() async {
        await transport.shutdown()
    }

    // MARK: - Requests

    func url(_ path: String, query: [String: String] = [:]) -> String {
        var components = URLComponents()
        components.scheme = "http"
        components.host = "localhost"
        components.path = "/\(configuration.apiVersion)\(path)"
        if !query.isEmpty {
            components.queryItems = query.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) }
        }
        // '+' is valid in a query but Docker decodes it as a space.
        return components.url?.absoluteString.replacingOccurrences(of: "+", with: "%2B") ?? ""
    }

    /// Sends a request; any status outside 2xx (and not in `accepting`) becomes a ``DockerError``.
    @discardableResult
    func request(_ method: String, _ path: String, query: [String: String] = [:], body: Data? = nil,
                 contentType: String = "application/json", timeout: Duration? = nil, accepting: Set<Int> = []) async throws -> HTTPResponse {
        var headers: [String] = ["Expect:"]
        if body != nil { headers.append("Content-Type: \(contentType)") }
        let request = HTTPRequest(method: method, url: url(path, query: query), headers: headers, body: body,
                                  timeout: timeout ?? configuration.requestTimeout)
        let response: HTTPResponse
        do {
            response = try await transport.perform(request)
        } catch let error as HTTPTransportError {
            throw DockerError(.transport, error.message)
        }
        guard (200..<300).contains(response.status) || accepting.contains(response.status) else {
            throw Self.engineError(response, context: "\(method) \(path)")
        }
        return response
    }

    static func engineError(_ response: HTTPResponse, context: String) -> DockerError {
        struct Message: Decodable { var message: String }
        let message = (try? JSONDecoder().decode(Message.self, from: response.body).message)
            ?? String(decoding: response.body, as: UTF8.self)
        return DockerError(.engine, status: response.status, "\(context): \(message.trimmingCharacters(in: .whitespacesAndNewlines))")
    }

    func decode<T: Decodable>(_ type: T.Type, _ response: HTTPResponse) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: response.body)
        } catch {
            throw DockerError(.decoding, "cannot read \(T.self) from Docker: \(error)")
        }
    }

    static func json<T: Encodable>(_ value: T) -> Data {
        // Encoding these plain structs cannot fail.
        (try? JSONEncoder().encode(value)) ?? Data("{}".utf8)
    }

    static func filters(_ filters: [String: [String]]) -> String {
        String(decoding: json(filters), as: UTF8.self)
    }

    // MARK: - System

    public struct Version: Sendable, Decodable {
        public var version: String
        public var apiVersion: String
        enum CodingKeys: String, CodingKey { case version = "Version", apiVersion = "ApiVersion" }
    }

    public func version() async throws -> Version {
        try decode(Version.self, try await request("GET", "/version"))
    }

    public func ping() async throws -> Bool {
        let response = try await request("GET", "/_ping")
        return String(decoding: response.body, as: UTF8.self) == "OK"
    }
}

// MARK: - Containers

extension DockerClient {
    /// Creates a container and returns its id.
    public func createContainer(_ spec: ContainerSpec) async throws -> String {
        var query: [String: String] = [:]
        if let name = spec.name { query["name"] = name }
        let response = try await request("POST", "/containers/create", query: query, body: Self.json(CreateContainerBody(spec)))
        return try decode(IdResponse.self, response).id
    }

    public func startContainer(_ id: String) async throws {
        try await request("POST", "/containers/\(id)/start", accepting: [304])
    }

    public func inspectContainer(_ id: String) async throws -> ContainerInspect {
        try decode(ContainerInspect.self, try await request("GET", "/containers/\(id)/json"))
    }

    /// Stops with SIGTERM, then SIGKILL after `timeout`.
    public func stopContainer(_ id: String, timeout: Duration = .seconds(10)) async throws {
        let seconds = Int(timeout.components.seconds)
        try await request("POST", "/containers/\(id)/stop", query: ["t": String(seconds)], timeout: timeout + .seconds(30), accepting: [304])
    }

    public func killContainer(_ id: String, signal: String = "SIGKILL") async throws {
        try await request("POST", "/containers/\(id)/kill", query: ["signal": signal])
    }

    /// Removes a container (forced: a running one is killed); removing a missing one is not an error.
    public func removeContainer(_ id: String, force: Bool = true) async throws {
        try await request("DELETE", "/containers/\(id)", query: ["force": String(force), "v": "true"], accepting: [404])
    }

    public func pauseContainer(_ id: String) async throws {
        try await request("POST", "/containers/\(id)/pause")
    }

    public func unpauseContainer(_ id: String) async throws {
        try await request("POST", "/containers/\(id)/unpause")
    }

    /// Waits until the container stops; returns its exit code.
    public func waitContainer(_ id: String, timeout: Duration = .seconds(3600)) async throws -> Int {
        struct WaitResponse: Decodable {
            var statusCode: Int
            enum CodingKeys: String, CodingKey { case statusCode = "StatusCode" }
        }
        return try decode(WaitResponse.self, try await request("POST", "/containers/\(id)/wait", timeout: timeout)).statusCode
    }

    /// The container's stdout and stderr, demultiplexed into lines.
    public func containerLogs(_ id: String, since: Date? = nil, timestamps: Bool = false) async throws -> [LogLine] {
        var query = ["stdout": "true", "stderr": "true", "timestamps": String(timestamps)]
        if let since { query["since"] = String(format: "%.9f", since.timeIntervalSince1970) }
        let response = try await request("GET", "/containers/\(id)/logs", query: query)
        return DockerLogDemultiplexer.lines(from: response.body)
    }

    /// The container's stdout and stderr from its start, live, one line at a time (`onLine`, on the
    /// HTTP client's thread: keep it short), until the container stops or `cancelled` is set;
    /// then `onEnd`, with an error if the stream broke or was refused.
    public func followLogs(_ id: String, timestamps: Bool = true, cancelled: CancelFlag,
                           onLine: @escaping @Sendable (LogLine) -> Void, onEnd: @escaping @Sendable (DockerError?) -> Void) {
        let query = ["stdout": "true", "stderr": "true", "follow": "true", "timestamps": String(timestamps)]
        let request = HTTPRequest(method: "GET", url: url("/containers/\(id)/logs", query: query), headers: [], body: nil, timeout: nil)
        let reader = LogStreamReader()
        transport.stream(request, cancelled: cancelled, onChunk: { chunk in
            for line in reader.feed(chunk) { onLine(line) }
        }, onEnd: { result in
            for line in reader.flush() { onLine(line) }
            onEnd(Self.streamError(result, "log stream of container \(id) refused"))
        })
    }

    /// Containers (running or not) carrying all of `labels` (`key` or `key=value`).
    public func listContainers(labels: [String] = [], all: Bool = true) async throws -> [ContainerSummary] {
        var query = ["all": String(all)]
        if !labels.isEmpty { query["filters"] = Self.filters(["label": labels]) }
        return try decode([ContainerSummary].self, try await request("GET", "/containers/json", query: query))
    }
}

// MARK: - Networks

extension DockerClient {
    /// Creates a network and returns its id.
    public func createNetwork(_ spec: NetworkSpec) async throws -> String {
        let response = try await request("POST", "/networks/create", body: Self.json(CreateNetworkBody(spec)))
        return try decode(IdResponse.self, response).id
    }

    public func inspectNetwork(_ idOrName: String) async throws -> NetworkInspect {
        try decode(NetworkInspect.self, try await request("GET", "/networks/\(idOrName)"))
    }

    /// Networks carrying all of `labels` (`key` or `key=value`).
    public func listNetworks(labels: [String] = [], name: String? = nil) async throws -> [NetworkInspect] {
        var filters: [String: [String]] = [:]
        if !labels.isEmpty { filters["label"] = labels }
        if let name { filters["name"] = [name] }
        let query = filters.isEmpty ? [:] : ["filters": Self.filters(filters)]
        return try decode([NetworkInspect].self, try await request("GET", "/networks", query: query))
    }

    /// Attaches a running container to a network.
    ///
    /// In swarm mode Docker answers 200 for a container that is only created, even when the
    /// network does not exist, and fails its start instead: attach after start.
    public func connect(container: String, toNetwork network: String, timeout: Duration = .seconds(60)) async throws {
        struct Body: Encodable {
            var container: String
            enum CodingKeys: String, CodingKey { case container = "Container" }
        }
        try await request("POST", "/networks/\(network)/connect", body: Self.json(Body(container: container)), timeout: timeout)
    }

    public func disconnect(container: String, fromNetwork network: String, force: Bool = true) async throws {
        struct Body: Encodable {
            var container: String
            var force: Bool
            enum CodingKeys: String, CodingKey { case container = "Container", force = "Force" }
        }
        try await request("POST", "/networks/\(network)/disconnect", body: Self.json(Body(container: container, force: force)))
    }

    /// Removes a network; removing a missing one is not an error.
    public func removeNetwork(_ idOrName: String) async throws {
        try await request("DELETE", "/networks/\(idOrName)", accepting: [404])
    }
}

// MARK: - Images

extension DockerClient {
    public func listImages(labels: [String] = []) async throws -> [ImageSummary] {
        let query = labels.isEmpty ? [:] : ["filters": Self.filters(["label": labels])]
        return try decode([ImageSummary].self, try await request("GET", "/images/json", query: query))
    }

    public func inspectImage(_ name: String) async throws -> ImageSummary {
        try decode(ImageSummary.self, try await request("GET", "/images/\(name)/json"))
    }

    public func removeImage(_ name: String, force: Bool = true) async throws {
        try await request("DELETE", "/images/\(name)", query: ["force": String(force)], accepting: [404])
    }

    /// Builds an image from a tar build context (see ``TarArchive``); returns the build output.
    @discardableResult
    public func buildImage(context: Data, tag: String, labels: [String: String] = [:], timeout: Duration = .seconds(1800)) async throws -> String {
        var query = ["t": tag, "rm": "true", "forcerm": "true"]
        if !labels.isEmpty { query["labels"] = String(decoding: Self.json(labels), as: UTF8.self) }
        let response = try await request("POST", "/build", query: query, body: context, contentType: "application/x-tar", timeout: timeout)
        // The build reports failures inside its 200 progress stream, one JSON object per line.
        struct Progress: Decodable {
            var stream: String?
            var error: String?
        }
        var output = ""
        for line in response.body.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
            guard let progress = try? JSONDecoder().decode(Progress.self, from: Data(line)) else { continue }
            if let error = progress.error {
                throw DockerError(.build, "building \(tag): \(error.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            output += progress.stream ?? ""
        }
        return output
    }
}

// MARK: - Events

extension DockerClient {
    /// Container events (e.g. `die`, `destroy`) of containers carrying all of `labels`, live,
    /// until the consuming task stops iterating.
    /// With `since`, events from that moment on are replayed first, so none is missed between
    /// an action and the subscription.
    public func containerEvents(actions: [String] = ["die", "destroy"], labels: [String] = [], since: Date? = nil) -> AsyncThrowingStream<DockerEvent, Error> {
        var filters: [String: [String]] = ["type": ["container"]]
        if !actions.isEmpty { filters["event"] = actions }
        if !labels.isEmpty { filters["label"] = labels }
        var query = ["filters": Self.filters(filters)]
        if let since { query["since"] = String(format: "%.9f", since.timeIntervalSince1970) }
        let request = HTTPRequest(method: "GET", url: url("/events", query: query), headers: [], body: nil, timeout: nil)
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: DockerEvent.self)
        let cancelled = CancelFlag()
        continuation.onTermination = { _ in cancelled.set() }
        let splitter = LineSplitter()
        let logger = self.logger
        transport.stream(request, cancelled: cancelled, onChunk: { chunk in
            for line in splitter.feed(chunk) {
                do {
                    continuation.yield(try JSONDecoder().decode(DockerEvent.self, from: line))
                } catch {
                    logger.warning("unreadable Docker event skipped", metadata: ["error": "\(error)"])
                }
            }
        }, onEnd: { result in
            continuation.finish(throwing: Self.streamError(result, "event stream refused"))
        })
        return stream
    }

    /// How a stream ended: nil when the engine closed it or it was cancelled (status 0), else
    /// the error (`refused` for an answer outside 2xx).
    static func streamError(_ result: Result<Int, HTTPTransportError>, _ refused: String) -> DockerError? {
        switch result {
        case .success(let status) where status == 0 || (200..<300).contains(status):
            return nil
        case .success(let status):
            return DockerError(.engine, status: status, refused)
        case .failure(let error):
            return DockerError(.transport, error.message)
        }
    }
}

/// Turns a log stream's chunks into lines.
///
/// `@unchecked Sendable`: fed only from the single thread that runs its stream.
final class LogStreamReader: @unchecked Sendable {
    private var demultiplexer = DockerLogDemultiplexer()
    private var assembler = LogLineAssembler()

    func feed(_ chunk: Data) -> [LogLine] {
        assembler.lines(from: demultiplexer.feed(chunk))
    }

    func flush() -> [LogLine] {
        assembler.flush()
    }
}

/// Splits a byte stream into newline-terminated lines across chunks.
///
/// `@unchecked Sendable`: fed only from the single thread that runs its stream.
final class LineSplitter: @unchecked Sendable {
    private var buffer = Data()

    func feed(_ chunk: Data) -> [Data] {
        buffer.append(chunk)
        var lines: [Data] = []
        while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
            let line = buffer[buffer.startIndex..<newline]
            if !line.isEmpty { lines.append(Data(line)) }
            buffer = Data(buffer[(newline + 1)...])
        }
        return lines
    }
}
