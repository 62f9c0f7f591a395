import Foundation

/// An activation id: 32 lowercase hex characters (a UUID without dashes).
public struct ActivationId: Hashable, Sendable, CustomStringConvertible, Codable {
    public let rawValue: String

    public init?(_ string: String) {
        guard string.utf8.count == 32, string.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else { return nil }
        rawValue = string
    }

    public static func generate() -> ActivationId {
        ActivationId(unchecked: UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased())
    }

    private init(unchecked: String) { rawValue = unchecked }

    public var description: String { rawValue }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        // OpenWhisk's parser also accepts a number; keep its digits.
        let string = (try? container.decode(String.self)) ?? (try? container.decode(Int64.self)).map { String($0) }
        guard let string else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "an activation id must be a string")
        }
        guard let id = ActivationId(string) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(string)' is not an activation id (32 lowercase hex characters)")
        }
        self = id
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// A memory size as OpenWhisk writes it: `"<n> <unit>"`; units B, KB, MB, GB (any case, K/M/G too).
/// Like upstream's ByteSize it keeps the unit it was given and writes itself in it (`"1024 MB"`
/// stays `"1024 MB"`); two sizes are equal when their bytes are.
public struct ByteSize: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    public enum Unit: String, Sendable {
        case bytes = "B", kilobytes = "KB", megabytes = "MB", gigabytes = "GB"

        var multiplier: Int64 {
            switch self {
            case .bytes: 1
            case .kilobytes: 1024
            case .megabytes: 1024 * 1024
            case .gigabytes: 1024 * 1024 * 1024
            }
        }
    }

    public let bytes: Int64
    /// The unit it is written in.
    public let unit: Unit

    public init(bytes: Int64) {
        self.bytes = bytes
        self.unit = .bytes
    }

    public static func megabytes(_ value: Int64) -> ByteSize { ByteSize(bytes: value * Unit.megabytes.multiplier, unit: .megabytes) }

    private init(bytes: Int64, unit: Unit) {
        self.bytes = bytes
        self.unit = unit
    }

    /// Parses OpenWhisk's notation, e.g. `"2048 MB"`, `"2147483648 B"`, `"256M"`.
    public init?(_ string: String) {
        let trimmed = string.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let value = Int64(digits) else { return nil }
        let unit: Unit
        switch trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces).uppercased() {
        case "B": unit = .bytes
        case "K", "KB": unit = .kilobytes
        case "M", "MB": unit = .megabytes
        case "G", "GB": unit = .gigabytes
        default: return nil
        }
        let (product, overflow) = value.multipliedReportingOverflow(by: unit.multiplier)
        guard !overflow else { return nil }
        self.init(bytes: product, unit: unit)
    }

    /// The same size written in bytes (what upstream's invoker puts in its pings).
    public var inBytes: ByteSize { ByteSize(bytes: bytes) }
    public var megabytes: Int64 { bytes / Unit.megabytes.multiplier }
    public var description: String { "\(bytes / unit.multiplier) \(unit.rawValue)" }
    public static func < (lhs: ByteSize, rhs: ByteSize) -> Bool { lhs.bytes < rhs.bytes }
    public static func == (lhs: ByteSize, rhs: ByteSize) -> Bool { lhs.bytes == rhs.bytes }
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        let string = try container.decode(String.self)
        guard let size = ByteSize(string) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(string)' is not a size such as \"256 MB\"")
        }
        self = size
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// An entity name: 1-256 characters, first a word character, then word characters or `@ . & -` and spaces,
/// not ending in a space.
public struct EntityName: Hashable, Sendable, CustomStringConvertible, Codable {
    public let rawValue: String

    public init?(_ string: String) {
        guard Self.isValid(string) else { return nil }
        rawValue = string
    }

    static func isWord(_ c: Character) -> Bool { c.isASCII && (c.isLetter || c.isNumber || c == "_") }

    public static func isValid(_ string: String) -> Bool {
        guard let first = string.first, let last = string.last, string.count <= 256, isWord(first), last != " " else { return false }
        return string.allSatisfy { isWord($0) || "@.&- ".contains($0) }
    }

    public var description: String { rawValue }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        let string = try container.decode(String.self)
        guard let name = EntityName(string) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(string)' is not a valid entity name")
        }
        self = name
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// A namespace path, segments joined by `/` (e.g. `guest` or `guest/mypackage`).
public struct EntityPath: Hashable, Sendable, CustomStringConvertible, Codable {
    public let rawValue: String

    public init?(_ string: String) {
        let segments = string.split(separator: "/", omittingEmptySubsequences: false)
        guard !segments.isEmpty, segments.allSatisfy({ EntityName.isValid(String($0)) }) else { return nil }
        rawValue = string
    }

    public var segments: [String] { rawValue.split(separator: "/").map(String.init) }
    /// The namespace: the first segment.
    public var namespace: String { segments.first ?? rawValue }
    public var description: String { rawValue }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        let string = try container.decode(String.self)
        guard let path = EntityPath(string) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(string)' is not a valid entity path")
        }
        self = path
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// A semantic version `major.minor.patch`.
public struct SemVer: Hashable, Sendable, CustomStringConvertible, Codable {
    public var major: Int
    public var minor: Int
    public var patch: Int

    public init(major: Int = 0, minor: Int = 0, patch: Int = 1) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    public init?(_ string: String) {
        let parts = string.split(separator: ".", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 3, let major = parts[0], let minor = parts[1], let patch = parts[2],
              major >= 0, minor >= 0, patch >= 0 else { return nil }
        self.init(major: major, minor: minor, patch: patch)
    }

    public var description: String { "\(major).\(minor).\(patch)" }
    public func nextPatch() -> SemVer { SemVer(major: major, minor: minor, patch: patch + 1) }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        let string = try container.decode(String.self)
        guard let version = SemVer(string) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(string)' is not a version such as 0.0.1")
        }
        self = version
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// Who an identity or an activation record belongs to: upstream's `Subject`, at least 5
/// characters (its decoder refuses shorter ones).
public struct Subject: Hashable, Sendable, CustomStringConvertible, Codable, ExpressibleByStringLiteral {
    public static let minimumLength = 5
    public let rawValue: String

    public init?(_ string: String) {
        guard string.count >= Self.minimumLength else { return nil }
        rawValue = string
    }

    /// The subject of namespace `name`: the name, with `_` appended up to the minimum length
    /// (upstream's subjects are user names, which `wskadmin` keeps at 5 characters or more).
    public init(namespace name: String) {
        rawValue = name.count >= Self.minimumLength ? name : name + String(repeating: "_", count: Self.minimumLength - name.count)
    }

    /// A literal too short is lengthened as ``init(namespace:)`` does.
    public init(stringLiteral value: String) { self.init(namespace: value) }

    public var description: String { rawValue }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        let string = try container.decode(String.self)
        guard let subject = Subject(string) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "subject '\(string)' is shorter than \(Self.minimumLength) characters")
        }
        self = subject
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
