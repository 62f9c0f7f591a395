import Foundation

/// Decodes `Decodable` values from a ``JSONValue`` tree, such as ``JSONValue/parse(_:)`` makes.
///
/// Why not Foundation's `JSONDecoder`: the wire messages carry ``JSONValue``s (parameters,
/// results, annotations), and the only way to read one through a foreign decoder is to try each
/// kind in turn, every failed try a thrown `DecodingError`. Here a ``JSONValue`` is taken whole
/// from the tree, with its numbers as they were written. Errors are the `DecodingError`s
/// Foundation's decoder throws for the same input (kind and coding path), so
/// ``WhiskMessageCoding`` reports them the same way.
public struct JSONValueDecoder {
    public init() {}

    public func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        try TreeDecoder(value: value, codingPath: []).decode(T.self)
    }
}

/// Internal so that ``JSONValue/init(from:)`` can take its value whole.
struct TreeDecoder: Decoder {
    let value: JSONValue
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try ScalarReader(value: value, codingPath: codingPath).decode(T.self)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let fields) = value else {
            throw mismatch([String: Any].self, value, codingPath)
        }
        return KeyedDecodingContainer(KeyedTreeContainer<Key>(fields: fields, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let items) = value else {
            throw mismatch([Any].self, value, codingPath)
        }
        return UnkeyedTreeContainer(items: items, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleValueTreeContainer(value: value, codingPath: codingPath)
    }
}

/// Foundation's wording, so that messages read the same whichever decoder read them.
private func mismatch(_ type: Any.Type, _ value: JSONValue, _ codingPath: [any CodingKey]) -> DecodingError {
    if case .null = value {
        return .valueNotFound(type, .init(codingPath: codingPath, debugDescription: "Cannot get value of type \(type) -- found null value instead"))
    }
    return .typeMismatch(type, .init(codingPath: codingPath, debugDescription: "Expected to decode \(type) but found \(value.kindDescription) instead."))
}

private extension JSONValue {
    var kindDescription: String {
        switch self {
        case .null: "null"
        case .bool: "bool"
        case .int, .double, .number: "number"
        case .string: "a string"
        case .array: "an array"
        case .object: "a dictionary"
        }
    }
}

/// One value read as whatever type a container is asked for. Its generic `decode` also stands
/// in for each container's per-type requirements (`decode(Int8.Type)`, ...): a generic method
/// can witness them.
private struct ScalarReader {
    let value: JSONValue
    let codingPath: [any CodingKey]

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self == JSONValue.self { return value as! T }
        if T.self == String.self { return try string() as! T }
        if T.self == Bool.self { return try bool() as! T }
        if let integerType = T.self as? any FixedWidthInteger.Type { return try integer(integerType) as! T }
        if let floatType = T.self as? any (BinaryFloatingPoint & LosslessStringConvertible).Type { return try floatingPoint(floatType) as! T }
        return try T(from: TreeDecoder(value: value, codingPath: codingPath))
    }

    func bool() throws -> Bool {
        guard case .bool(let flag) = value else { throw mismatch(Bool.self, value, codingPath) }
        return flag
    }

    func string() throws -> String {
        guard case .string(let text) = value else { throw mismatch(String.self, value, codingPath) }
        return text
    }

    func floatingPoint<T: BinaryFloatingPoint & LosslessStringConvertible>(_ type: T.Type) throws -> T {
        let number: T?
        switch value {
        case .int(let integer): number = T(exactly: integer) ?? T(Double(integer))
        case .double(let double): number = T(double)
        case .number(let literal): number = T(literal)
        default: throw mismatch(T.self, value, codingPath)
        }
        guard let number, number.isFinite else {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "Parsed JSON number <\(literal)> does not fit in \(T.self)."))
        }
        return number
    }

    func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        let number: T?
        switch value {
        case .int(let integer): number = T(exactly: integer)
        case .double(let double): number = T(exactly: double)
        case .number(let literal): number = T(literal) ?? Double(literal).flatMap { T(exactly: $0) }
        default: throw mismatch(T.self, value, codingPath)
        }
        guard let number else {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "Parsed JSON number <\(literal)> does not fit in \(T.self)."))
        }
        return number
    }

    private var literal: String {
        switch value {
        case .int(let integer): String(integer)
        case .double(let double): String(double)
        case .number(let literal): literal
        default: "\(value)"
        }
    }
}

private struct SingleValueTreeContainer: SingleValueDecodingContainer {
    let value: JSONValue
    let codingPath: [any CodingKey]
    private var reader: ScalarReader { ScalarReader(value: value, codingPath: codingPath) }

    init(value: JSONValue, codingPath: [any CodingKey]) {
        self.value = value
        self.codingPath = codingPath
    }

    func decodeNil() -> Bool { value == .null }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try reader.decode(T.self) }
}

private struct KeyedTreeContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let fields: [String: JSONValue]
    let codingPath: [any CodingKey]

    var allKeys: [Key] { fields.keys.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { fields[key.stringValue] != nil }

    private func field(_ key: Key) throws -> JSONValue {
        guard let value = fields[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "No value associated with key \(key) (\"\(key.stringValue)\")."))
        }
        return value
    }

    private func reader(_ key: Key) throws -> ScalarReader {
        ScalarReader(value: try field(key), codingPath: codingPath + [key])
    }

    func decodeNil(forKey key: Key) throws -> Bool { try field(key) == .null }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try reader(key).decode(T.self) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try TreeDecoder(value: try field(key), codingPath: codingPath + [key]).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try TreeDecoder(value: try field(key), codingPath: codingPath + [key]).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        TreeDecoder(value: fields["super"] ?? .null, codingPath: codingPath + [TreeKey(stringValue: "super")])
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        TreeDecoder(value: fields[key.stringValue] ?? .null, codingPath: codingPath + [key])
    }
}

private struct UnkeyedTreeContainer: UnkeyedDecodingContainer {
    let items: [JSONValue]
    let codingPath: [any CodingKey]
    private(set) var currentIndex = 0

    init(items: [JSONValue], codingPath: [any CodingKey]) {
        self.items = items
        self.codingPath = codingPath
    }

    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    /// The next item and its coding path; the index moves on only once the item is read.
    private func next(_ type: Any.Type) throws -> (JSONValue, [any CodingKey]) {
        let path = codingPath + [TreeKey(index: currentIndex)]
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, .init(codingPath: path, debugDescription: "Unkeyed container is at end."))
        }
        return (items[currentIndex], path)
    }

    private mutating func read<T>(_ type: T.Type, _ body: (ScalarReader) throws -> T) throws -> T {
        let (value, path) = try next(type)
        let result = try body(ScalarReader(value: value, codingPath: path))
        currentIndex += 1
        return result
    }

    mutating func decodeNil() throws -> Bool {
        let (value, _) = try next(Never.self)
        guard value == .null else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try read(type) { try $0.decode(T.self) } }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try read(KeyedDecodingContainer<NestedKey>.self) { try TreeDecoder(value: $0.value, codingPath: $0.codingPath).container(keyedBy: type) }
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try read((any UnkeyedDecodingContainer).self) { try TreeDecoder(value: $0.value, codingPath: $0.codingPath).unkeyedContainer() }
    }

    mutating func superDecoder() throws -> any Decoder {
        try read((any Decoder).self) { TreeDecoder(value: $0.value, codingPath: $0.codingPath) }
    }
}

private struct TreeKey: CodingKey {
    var stringValue: String
    var intValue: Int?

    init(stringValue: String) {
        self.stringValue = stringValue
        intValue = nil
    }

    init(intValue: Int) {
        stringValue = "Index \(intValue)"
        self.intValue = intValue
    }

    init(index: Int) { self.init(intValue: index) }
}
