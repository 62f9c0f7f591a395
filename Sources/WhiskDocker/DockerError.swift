/// A failed Docker Engine call: Docker's HTTP status and message, or a transport failure.
public struct DockerError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// Docker answered with an error status; see ``DockerError/status``.
        public static let engine = Code("engine")
        /// The request never got an answer (socket missing, timeout, connection reset).
        public static let transport = Code("transport")
        /// Docker's answer could not be read.
        public static let decoding = Code("decoding")
        /// An image build reported an error in its progress stream.
        public static let build = Code("build")
    }

    public var code: Code
    /// Docker's HTTP status, for `.engine`.
    public var status: Int?
    public var message: String
    public var file: String
    public var line: Int

    public init(_ code: Code, status: Int? = nil, _ message: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.status = status
        self.message = message
        self.file = file
        self.line = line
    }

    public var isNotFound: Bool { status == 404 }
    public var isConflict: Bool { status == 409 }
    /// Docker's overlay attach gives up after ~20 s under load; worth retrying.
    public var isDeadlineExceeded: Bool { message.contains("context deadline exceeded") }

    public var description: String {
        if let status { return "Docker error \(status): \(message)" }
        return "Docker \(code) error: \(message)"
    }
}
