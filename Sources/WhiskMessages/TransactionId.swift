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
        TransactionId(id: randomAlphanumerics(32), start: Int64(now.timeIntervalSince1970 * 1000))
    }

    private static let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)

    /// `count` random alphanumerics, eight from each random 64-bit word (2^64 / 62^8 > 84,000, so
    /// no string is likelier than another by more than 1 in 84,000). Picking each character with
    /// `randomElement()` asked the system's generator once per character: 2 % of the controller's
    /// CPU.
    static func randomAlphanumerics(_ count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        while bytes.count < count {
            var word = generator.next()
            for _ in 0..<min(8, count - bytes.count) {
                bytes.append(alphabet[Int(word % 62)])
                word /= 62
            }
        }
        return String(decoding: bytes, as: UTF8.self)
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
