import Foundation

/// OpenWhisk's transaction id, written as the array `[id, startMillis]`, optionally followed by
/// `true` (extra logging) and a nested parent array.
public struct TransactionId: Hashable, Sendable, Codable, CustomStringConvertible {
    public var id: String
    /// Start of the transaction, epoch milliseconds.
    public var start: Int64
    public var extraLogging: Bool
    private var parentBox: [TransactionId]

    public var parent: TransactionId? {
        get { parentBox.first }
        set { parentBox = newValue.map { [$0] } ?? [] }
    }

    public init(id: String, start: Int64, extraLogging: Bool = false, parent: TransactionId? = nil) {
        self.id = id
        self.start = start
        self.extraLogging = extraLogging
        self.parentBox = parent.map { [$0] } ?? []
    }

    /// A new user transaction id: 32 random alphanumerics, started now.
    public static func generate(now: Date = Date()) -> TransactionId {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        let id = String((0..<32).map { _ in alphabet.randomElement()! })
        return TransactionId(id: id, start: Int64(now.timeIntervalSince1970 * 1000))
    }

    public var description: String { id }

    public init(from decoder: Decoder) throws {
        var container = try decoder.unkeyedContainer()
        id = try container.decode(String.self)
        start = try container.decode(Int64.self)
        extraLogging = false
        parentBox = []
        if !container.isAtEnd, let flag = try? container.decode(Bool.self) {
            extraLogging = flag
        }
        if !container.isAtEnd {
            parentBox = [try container.decode(TransactionId.self)]
        }
        if !container.isAtEnd {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "a transaction id has at most 4 elements")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(id)
        try container.encode(start)
        if extraLogging { try container.encode(true) }
        if let parent { try container.encode(parent) }
    }
}
