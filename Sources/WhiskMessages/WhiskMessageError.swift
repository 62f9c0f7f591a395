import Foundation

/// A wire message that cannot be read: malformed JSON, a missing or invalid field, or too large.
public struct WhiskMessageError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        public static let malformed = Code("malformed")
        public static let invalidField = Code("invalidField")
        public static let tooLarge = Code("tooLarge")
    }

    public var code: Code
    public var reason: String
    public var file: String
    public var line: Int

    public init(_ code: Code, _ reason: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.reason = reason
        self.file = file
        self.line = line
    }

    public var description: String { "WhiskMessageError.\(code): \(reason)" }
}

/// Reads and writes OpenWhisk's wire messages (compact JSON, absent optionals omitted).
public enum WhiskMessageCoding {
    /// OpenWhisk's maximum Kafka message size.
    public static let defaultMaxMessageBytes = 1_054_644

    public static func decode<T: Decodable>(_ type: T.Type, from data: Data, maxBytes: Int = defaultMaxMessageBytes) throws -> T {
        guard data.count <= maxBytes else {
            throw WhiskMessageError(.tooLarge, "\(T.self) of \(data.count) bytes exceeds the limit of \(maxBytes) bytes")
        }
        // Parsed once into a tree (numbers as written), then read by ``JSONValueDecoder``: the
        // ``JSONValue``s of a message come out of the tree whole. Foundation's decoder tried each
        // kind of every one in turn, a thrown error per miss.
        let tree: JSONValue
        do {
            tree = try JSONValue.parse(data)
        } catch {
            throw WhiskMessageError(.malformed, "cannot read \(T.self): not valid JSON (\(error))")
        }
        do {
            return try JSONValueDecoder().decode(T.self, from: tree)
        } catch let error as DecodingError {
            throw WhiskMessageError(error.isInvalidValue ? .invalidField : .malformed, "cannot read \(T.self): \(error.readableDescription)")
        }
    }

    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }

    public static func encodeString<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try encode(value), as: UTF8.self)
    }
}

extension DecodingError {
    var isInvalidValue: Bool {
        if case .dataCorrupted(let context) = self { return !context.codingPath.isEmpty }
        return true
    }

    /// "field a.b: reason" rather than Foundation's nested debug dump.
    public var readableDescription: String {
        func path(_ codingPath: [CodingKey]) -> String {
            codingPath.isEmpty ? "top level" : codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch self {
        case .keyNotFound(let key, let context):
            let parent = context.codingPath.isEmpty ? "" : " in \(path(context.codingPath))"
            return "missing field '\(key.stringValue)'\(parent)"
        case .typeMismatch(let type, let context):
            return "\(path(context.codingPath)): expected \(type)"
        case .valueNotFound(let type, let context):
            return "\(path(context.codingPath)): expected \(type), found null"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty, let underlying = context.underlyingError {
                return "not valid JSON (\(underlying.localizedDescription))"
            }
            return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "\(self)"
        }
    }
}

extension KeyedDecodingContainer {
    func invalid(_ key: Key, _ reason: String) -> DecodingError {
        DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: reason)
    }
}
