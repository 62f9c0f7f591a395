import Foundation
import Testing
@testable import WhiskMessages

/// Numbers as written, as upstream keeps them: the invoke body, `content` and `/run`.
@Suite("JSON with numbers as written")
struct JSONLiteralTests {
    @Test(arguments: ["1.0", "12345678901234567890", "1e5", "-0", "0.10", "1E-7", "-12345678901234567890.5"])
    func aNumberComesBackAsItWasWritten(_ literal: String) throws {
        let value = try JSONValue.parse(Data("{\"n\":\(literal)}".utf8))
        #expect(String(decoding: value.literalJSON, as: UTF8.self) == "{\"n\":\(literal)}")
    }

    @Test func plainNumbersKeepTheirUsualCases() throws {
        let value = try JSONValue.parse(Data(#"[42, -7, 0.5, 2.25, true, null, "x"]"#.utf8))
        #expect(value == [42, -7, .double(0.5), .double(2.25), true, nil, "x"])
        #expect(try JSONValue.parse(Data("1.0".utf8)) == .double(1.0), "1.0 is a float, not the integer 1")
        #expect(try JSONValue.parse(Data("12345678901234567890".utf8)) == .number("12345678901234567890"))
        // Positive control: Foundation's decoder is what loses them.
        #expect(try JSONDecoder().decode(JSONValue.self, from: Data("1.0".utf8)) == .int(1))
    }

    /// A literal beyond Double's range keeps its text; Foundation's encoder gets an error, not a
    /// trap (Decimal(Double.infinity) crashed the process before).
    @Test func anOutOfRangeNumberIsKeptAsTextAndRefusedByFoundationsEncoder() throws {
        let value = try JSONValue.parse(Data(#"{"huge": 1e400, "tiny": 1e-400, "big": 123456789012345678901234567890}"#.utf8))
        #expect(value["huge"] == .number("1e400"))
        let text = String(decoding: value.literalJSON, as: UTF8.self)
        #expect(text.contains("1e400") && text.contains("1e-400"), "\(text)")
        #expect(throws: EncodingError.self) { try JSONEncoder().encode(value) }
        let encoded = try JSONEncoder().encode(["big": value["big"]!, "tiny": value["tiny"]!])
        #expect(String(decoding: encoded, as: UTF8.self).contains("123456789012345678901234567890"), "positive control: an in-range literal still encodes")
    }

    @Test func stringsAndEscapesRoundTrip() throws {
        let text = #"{"s":"a\"b\\c\nd\u00e9\ud83d\ude00\u0001/"}"#
        let value = try JSONValue.parse(Data(text.utf8))
        #expect(value["s"] == .string("a\"b\\c\ndé😀\u{01}/"))
        #expect(try JSONValue.parse(value.literalJSON) == value)
        #expect(try JSONDecoder().decode(JSONValue.self, from: value.literalJSON) == value, "Foundation reads what it writes")
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "-", "1e", "tru", "\"\\x\"", "\"\u{01}\"", "[1] 2", "\"\\ud800\"", "{\"a\":1,}", "nul"])
    func malformedJSONIsAnError(_ text: String) {
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(Data(text.utf8)) }
    }

    @Test func deepNestingIsRefusedNotACrash() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(Data(deep.utf8)) }
        let fine = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        #expect(throws: Never.self) { try JSONValue.parse(Data(fine.utf8)) }
    }

    @Test func anActivationMessageKeepsItsContentsNumbers() throws {
        var message = try WhiskMessageCoding.decode(ActivationMessage.self, from: try fixture("activation-message"))
        message.content = try JSONValue.parse(Data(#"{"a": 1.0, "b": 12345678901234567890, "c": [1e2, 3]}"#.utf8))
        let wire = try message.encodedKeepingLiterals()
        let text = String(decoding: wire, as: UTF8.self)
        #expect(text.contains("1.0") && text.contains("12345678901234567890") && text.contains("1e2"), "\(text)")
        let read = try WhiskMessageCoding.decode(ActivationMessage.self, from: wire)  // numbers as written
        #expect(read.content == message.content)
        #expect(read.transid == message.transid && read.user == message.user)
        // What /run gets.
        let run = String(decoding: read.runValue.literalJSON, as: UTF8.self)
        #expect(run.contains("\"a\":1.0") && run.contains("\"b\":12345678901234567890"), "\(run)")
    }
}
