import CRdKafka

/// An error from the Kafka client, with an extensible code, a reason and where it was raised.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is; compare with the static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A configuration property was rejected by librdkafka.
        public static let configuration = Code("configuration")
        /// A client handle could not be created.
        public static let clientCreation = Code("clientCreation")
        /// A message could not be enqueued for sending.
        public static let produce = Code("produce")
        /// The message exceeds the producer's or broker's maximum message size.
        public static let messageTooLarge = Code("messageTooLarge")
        /// The broker did not acknowledge a sent message.
        public static let delivery = Code("delivery")
        /// Consuming failed fatally.
        public static let consume = Code("consume")
        /// An offset commit failed.
        public static let commit = Code("commit")
        /// An admin operation (topic creation or deletion) failed.
        public static let admin = Code("admin")
        /// The client was already closed.
        public static let closed = Code("closed")
    }

    public var code: Code
    public var reason: String
    /// librdkafka's error code, when the failure came from librdkafka.
    public var rdKafkaError: Int32?
    public var file: String
    public var line: Int

    public init(_ code: Code, _ reason: String, rdKafkaError: Int32? = nil, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.reason = reason
        self.rdKafkaError = rdKafkaError
        self.file = file
        self.line = line
    }

    static func fromRDKafka(_ code: Code, _ error: rd_kafka_resp_err_t, context: String, file: String = #fileID, line: Int = #line) -> KafkaError {
        let name = String(cString: rd_kafka_err2name(error))
        let text = String(cString: rd_kafka_err2str(error))
        let finalCode: Code = (error == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) ? .messageTooLarge : code
        return KafkaError(finalCode, "\(context): \(text) (\(name))", rdKafkaError: error.rawValue, file: file, line: line)
    }

    public var description: String { "KafkaError.\(code): \(reason) [\(file):\(line)]" }
}
