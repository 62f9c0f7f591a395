import Foundation

/// Any JSON value: action parameters, results and annotation values, carried as they came.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    /// A number exactly as written, where `.int` or `.double` would write it otherwise (`1.0`,
    /// `1e5`, a 20-digit integer); only ``parse(_:)`` makes these.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }

    public var int64Value: Int64? {
        switch self {
        case .int(let value): return value
        case .double(let value) where value.rounded() == value && abs(value) < 9.0e15: return Int64(value)
        case .number(let literal): return Int64(literal) ?? Double(literal).flatMap { $0.rounded() == $0 && abs($0) < 9.0e15 ? Int64($0) : nil }
        default: return nil
        }
    }

    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }
}

extension JSONValue: Codable {
    public init(from decoder: Decoder) throws {
        if let tree = decoder as? TreeDecoder {  // ``JSONValueDecoder``: the value as parsed
            self = tree.value
            return
        }
        let container = try decoder.singleValueContainer()
        // Through another decoder (Foundation's), each kind is tried in turn and every miss is a
        // thrown DecodingError (~30 µs each here): the commonest kinds first. No attempt converts
        // another kind (a number is never read as a string, nor `1` as true).
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([String: JSONValue].self) {
            self = .object(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a JSON value")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        // Foundation's encoder writes no literal: a Decimal keeps its digits (not a trailing
        // ".0"). One beyond Decimal's and Double's range (1e400) cannot be written this way: an
        // error, not Decimal(Double.infinity), which traps.
        case .number(let literal):
            if let decimal = Decimal(string: literal) {
                try container.encode(decimal)
            } else if let double = Double(literal), double.isFinite {
                try container.encode(double)
            } else {
                throw EncodingError.invalidValue(literal, .init(codingPath: encoder.codingPath,
                                                                debugDescription: "the number \(literal) is out of range (only literalJSON writes it)"))
            }
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByFloatLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(nilLiteral: ()) { self = .null }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}
