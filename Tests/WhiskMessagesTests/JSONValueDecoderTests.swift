import Foundation
import Testing
@testable import WhiskMessages

/// ``JSONValueDecoder`` reads what Foundation's `JSONDecoder` reads, and fails where it fails,
/// with the same kind of `DecodingError` at the same coding path.
@Suite("JSONValueDecoder against Foundation's JSONDecoder")
struct JSONValueDecoderTests {
    /// Both decoders' answers for one input: the value, or the error's kind and path.
    func both<T: Codable & Equatable>(_ type: T.Type, _ data: Data) throws -> (tree: Result<T, DecodingError>, foundation: Result<T, DecodingError>) {
        let parsed = try JSONValue.parse(data)  // the inputs are valid JSON: only decoding may fail
        let tree = Result { try JSONValueDecoder().decode(T.self, from: parsed) }.mapError { $0 as! DecodingError }
        let foundation = Result { try JSONDecoder().decode(T.self, from: data) }.mapError { $0 as! DecodingError }
        return (tree, foundation)
    }

    /// An error's kind and coding path. Two differences from Foundation are allowed: a null
    /// where a Bool belongs is `valueNotFound` here (Foundation says `typeMismatch` for Bool but
    /// `valueNotFound` for String), and a number that does not fit its field is `dataCorrupted`
    /// at the field's path (Foundation's path stops at the container). Either way it is the same
    /// ``WhiskMessageError`` kind, `invalidField`, except that a field's overflow is no longer
    /// reported as malformed JSON.
    func agree(_ tree: DecodingError, _ foundation: DecodingError) -> Bool {
        func path(_ keys: [any CodingKey]) -> [String] { keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue } }
        switch (tree, foundation) {
        case (.keyNotFound(let a, let x), .keyNotFound(let b, let y)):
            return a.stringValue == b.stringValue && path(x.codingPath) == path(y.codingPath)
        case (.typeMismatch(_, let x), .typeMismatch(_, let y)), (.valueNotFound(_, let x), .valueNotFound(_, let y)),
             (.valueNotFound(_, let x), .typeMismatch(_, let y)):
            return path(x.codingPath) == path(y.codingPath)
        case (.dataCorrupted(let x), .dataCorrupted(let y)):
            return path(x.codingPath).starts(with: path(y.codingPath))
        default:
            return false
        }
    }

    /// Equal, or equal but for numbers kept as written (`1e3` here, 1000 from Foundation): then
    /// both encode alike.
    func expectSame<T: Codable & Equatable>(_ type: T.Type, _ data: Data, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let (tree, foundation) = try both(T.self, data)
        switch (tree, foundation) {
        case (.success(let a), .success(let b)):
            #expect(try a == b || WhiskMessageCoding.encode(a) == WhiskMessageCoding.encode(b), sourceLocation: sourceLocation)
        case (.failure(let a), .failure(let b)):
            #expect(agree(a, b), "tree: \(a); Foundation: \(b)", sourceLocation: sourceLocation)
        default:
            Issue.record("tree: \(tree), Foundation: \(foundation)", sourceLocation: sourceLocation)
        }
    }

    static let activationFixtures = ["activation-message", "activation-message-health", "activation-message-sequence-component"]
    static let ackFixtures = ["ack-combined", "ack-combined-error", "ack-combined-shrunk", "ack-completion", "ack-result"]
    static let upstreamAckFixtures = ["ack-combined", "ack-combined-shrunk", "ack-combined-system-error", "ack-combined-shrunk-system-error",
                                      "ack-completion", "ack-result", "ack-result-shrunk"]

    @Test(arguments: activationFixtures)
    func activationMessages(name: String) throws {
        try expectSame(ActivationMessage.self, try fixture(name))
    }

    @Test(arguments: ackFixtures)
    func acknowledgements(name: String) throws {
        try expectSame(AcknowledgementMessage.self, try fixture(name))
    }

    @Test(arguments: upstreamAckFixtures)
    func upstreamAcknowledgements(name: String) throws {
        try expectSame(AcknowledgementMessage.self, try fixture(name, upstream: true))
    }

    @Test func pingsActivationsAndUpstreamMessages() throws {
        try expectSame(PingMessage.self, try fixture("ping"))
        try expectSame(PingMessage.self, try fixture("ping-minimal"))
        try expectSame(WhiskActivation.self, try fixture("whisk-activation"))
        try expectSame(ActivationMessage.self, try fixture("activation-message-init-args", upstream: true))
        try expectSame(TransactionId.self, try fixture("transid-with-parent", upstream: true))
        try expectSame(InvokerInstanceId.self, try fixture("invoker-instance-id", upstream: true))
    }

    /// Each field of an activation message replaced by a value of every other kind, or removed:
    /// both decoders accept or refuse it alike, with the same error kind and path.
    @Test func everyFieldOfAnActivationMessageWithEveryWrongKind() throws {
        guard case .object(let message) = try JSONValue.parse(try fixture("activation-message")) else {
            Issue.record("the fixture is not an object")
            return
        }
        let replacements: [JSONValue?] = [nil, .null, .bool(true), .int(7), .int(-1), .double(2.5), .number("1e3"), .string("x"),
                                          .array([.string("a")]), .object(["k": .string("v")])]
        var cases = 0
        for key in message.keys.sorted() {
            for replacement in replacements {
                var mutated = message
                mutated[key] = replacement
                try expectSame(ActivationMessage.self, JSONValue.object(mutated).literalJSON)
                cases += 1
            }
        }
        #expect(cases == message.count * replacements.count)
    }

    @Test func numbersOfEveryWidth() throws {
        struct Numbers: Codable, Equatable {
            var i8: Int8?, u8: UInt8?, i32: Int32?, u64: UInt64?, int: Int?, float: Float?, double: Double?
        }
        for text in [#"{"i8": 127, "u8": 255, "i32": -5, "u64": 18446744073709551615, "int": 3, "float": 1.5, "double": 1e300}"#,
                     #"{"i8": 128}"#, #"{"u8": -1}"#, #"{"int": 1.5}"#, #"{"int": 2.0}"#, #"{"int": "3"}"#, #"{"double": true}"#,
                     #"{"int": null}"#, #"[1]"#, #"7"#] {
            try expectSame(Numbers.self, Data(text.utf8))
        }
    }

    @Test func jsonValuesComeOutOfTheTreeWithTheirLiterals() throws {
        let value = try JSONValueDecoder().decode([String: JSONValue].self, from: try JSONValue.parse(Data(#"{"a": 1.0, "b": [1e2, "x", null]}"#.utf8)))
        #expect(value["a"] == .double(1.0))
        #expect(value["b"] == .array([.number("1e2"), .string("x"), .null]))
        #expect(String(decoding: JSONValue.object(value).literalJSON, as: UTF8.self).contains(#"[1e2,"x",null]"#))
    }

    /// The one input Foundation refused that is now read: a parameter beyond Double's range
    /// (Foundation's decoder has no JSON value for it). It reaches the action as written, as
    /// upstream's BigDecimal keeps it; before, the controller accepted such an invoke and the
    /// invoker could not read the message it was sent.
    @Test func aParameterBeyondDoublesRangeIsKeptAsWritten() throws {
        var message = try WhiskMessageCoding.decode(ActivationMessage.self, from: try fixture("activation-message"))
        message.content = .object(["big": .number("1e400")])
        let wire = try message.encodedKeepingLiterals()
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(ActivationMessage.self, from: wire) }
        let read = try WhiskMessageCoding.decode(ActivationMessage.self, from: wire)
        #expect(read.content == .object(["big": .number("1e400")]))
    }

    @Test func wireErrorsKeepTheirKinds() throws {
        func code(_ text: String) -> WhiskMessageError.Code? {
            do {
                _ = try WhiskMessageCoding.decode(ActivationMessage.self, from: Data(text.utf8))
                return nil
            } catch let error as WhiskMessageError {
                return error.code
            } catch {
                return nil
            }
        }
        #expect(code("{") == .malformed)
        #expect(code("[]") == .invalidField, "the wrong kind at the top level, as Foundation reports it")
        #expect(code(#"{"transid": 5}"#) == .invalidField)
    }
}
