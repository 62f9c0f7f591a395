import Foundation
import Testing
@testable import WhiskMessages

@Suite("Malformed wire input is a clear error, never a crash")
struct MalformedInputTests {
    func decodeError<T: Decodable>(_ type: T.Type, _ text: String, maxBytes: Int = WhiskMessageCoding.defaultMaxMessageBytes) -> WhiskMessageError? {
        do {
            _ = try WhiskMessageCoding.decode(T.self, from: Data(text.utf8), maxBytes: maxBytes)
            return nil
        } catch let error as WhiskMessageError {
            return error
        } catch {
            Issue.record("unexpected error type \(error)")
            return nil
        }
    }

    func mutatedActivationMessage(_ transform: (inout [String: JSONValue]) -> Void) throws -> String {
        guard case .object(var object) = try JSONDecoder().decode(JSONValue.self, from: try fixture("activation-message")) else {
            throw WhiskMessageError(.malformed, "fixture is not an object")
        }
        transform(&object)
        return String(decoding: try JSONEncoder().encode(JSONValue.object(object)), as: UTF8.self)
    }

    @Test func notJSON() throws {
        let error = try #require(decodeError(ActivationMessage.self, "this is not json {"))
        #expect(error.code == .malformed)
        #expect(error.reason.contains("ActivationMessage"))
    }

    @Test func missingRequiredFieldIsNamed() throws {
        let text = try mutatedActivationMessage { $0.removeValue(forKey: "initArgs") }
        let error = try #require(decodeError(ActivationMessage.self, text))
        #expect(error.reason.contains("initArgs"))
    }

    @Test func missingRevisionIsAnErrorButNullIsFine() throws {
        let missing = try mutatedActivationMessage { $0.removeValue(forKey: "revision") }
        #expect(decodeError(ActivationMessage.self, missing)?.reason.contains("revision") == true)
        let null = try mutatedActivationMessage { $0["revision"] = .null }
        #expect(decodeError(ActivationMessage.self, null) == nil)
    }

    @Test(arguments: ["7C1E5F4A2B3D4C5E8F9A0B1C2D3E4F5A", "short", "7c1e5f4a-2b3d-4c5e-8f9a-0b1c2d3e4f5a", ""])
    func invalidActivationId(_ id: String) throws {
        let text = try mutatedActivationMessage { $0["activationId"] = .string(id) }
        let error = try #require(decodeError(ActivationMessage.self, text))
        #expect(error.code == .invalidField)
        #expect(error.reason.contains("activationId"))
    }

    @Test func invalidEntityNameAndTransactionId() throws {
        let badName = try mutatedActivationMessage { $0["action"] = ["path": "guest", "name": " leading space"] }
        #expect(decodeError(ActivationMessage.self, badName)?.reason.contains("action.name") == true)
        let badTransid = try mutatedActivationMessage { $0["transid"] = "not-an-array" }
        #expect(decodeError(ActivationMessage.self, badTransid) != nil)
        let longTransid = try mutatedActivationMessage { $0["transid"] = ["a", 1, true, ["b", 2], "extra"] }
        #expect(decodeError(ActivationMessage.self, longTransid) != nil)
    }

    @Test func unknownFieldsAreIgnored() throws {
        let text = try mutatedActivationMessage { $0["somethingNew"] = ["x": 1] }
        #expect(decodeError(ActivationMessage.self, text) == nil)
    }

    @Test func oversizedMessageIsRejectedBeforeParsing() throws {
        let big = "{\"pad\":\"" + String(repeating: "x", count: 2000) + "\"}"
        let error = try #require(decodeError(PingMessage.self, big, maxBytes: 1000))
        #expect(error.code == .tooLarge)
    }

    @Test func invokerInstanceTypeMustBeInvoker() throws {
        let text = #"{"name":{"instance":0,"userMemory":"1 GB","instanceType":"controller","tags":[],"dedicatedNamespaces":[]}}"#
        #expect(decodeError(PingMessage.self, text)?.reason.contains("instanceType") == true)
    }

    @Test func acknowledgementWithNeitherResponseNorInstance() throws {
        let error = try #require(decodeError(AcknowledgementMessage.self, #"{"transid":["x",1]}"#))
        #expect(error.reason.contains("response"))
    }

    @Test func arbitraryBytesNeverCrash() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let bytes = (0..<Int.random(in: 0..<64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = try? WhiskMessageCoding.decode(ActivationMessage.self, from: Data(bytes))
            _ = try? WhiskMessageCoding.decode(AcknowledgementMessage.self, from: Data(bytes))
            _ = try? WhiskMessageCoding.decode(PingMessage.self, from: Data(bytes))
        }
    }
}

@Suite("Primitive encodings")
struct PrimitiveTests {
    @Test(arguments: [("2048 MB", Int64(2048) << 20), ("2147483648 B", Int64(2_147_483_648)), ("256M", Int64(256) << 20),
                      ("1 gb", Int64(1) << 30), ("  64 kb ", Int64(64) << 10)])
    func byteSizeParsesUpstreamNotations(_ text: String, _ bytes: Int64) {
        #expect(ByteSize(text)?.bytes == bytes)
    }

    @Test(arguments: ["", "MB", "12 XB", "-5 MB", "99999999999999999999 GB", "1.5 GB"])
    func byteSizeRejectsGarbage(_ text: String) {
        #expect(ByteSize(text) == nil)
    }

    /// As upstream's ByteSize: written in the unit it holds, equal by bytes.
    @Test func byteSizeWritesItsOwnUnit() {
        #expect(ByteSize.megabytes(256).description == "256 MB")
        #expect(ByteSize("256m")?.description == "256 MB")
        #expect(ByteSize("1 gb")?.description == "1 GB")
        #expect(ByteSize.megabytes(256).inBytes.description == "268435456 B")
        #expect(ByteSize("268435456 B") == .megabytes(256))
        #expect(Set([ByteSize("1 GB")!, ByteSize("1024 MB")!]).count == 1)
    }

    @Test func entityNames() {
        #expect(EntityName("hello") != nil)
        #expect(EntityName("hello world-1.0@x") != nil)
        #expect(EntityName("_private") != nil)
        #expect(EntityName("") == nil)
        #expect(EntityName("-dash") == nil)
        #expect(EntityName("trailing ") == nil)
        #expect(EntityName("a/b") == nil)
        #expect(EntityName(String(repeating: "a", count: 257)) == nil)
    }

    @Test func generatedIdsAreValid() {
        let id = ActivationId.generate()
        #expect(ActivationId(id.rawValue) == id)
        let transid = TransactionId.generate()
        #expect(transid.id.count == 32)
    }

    @Test func fullyQualifiedNameFromString() throws {
        let name = try JSONDecoder().decode(FullyQualifiedEntityName.self, from: Data(#""/guest/pkg/hello""#.utf8))
        #expect(name.path.rawValue == "guest/pkg")
        #expect(name.name.rawValue == "hello")
    }

    @Test func numericActivationIdIsReadAsDigitsAndValidated() {
        // Upstream accepts a number here; no number has 32 hex digits, so it is a clear error.
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(ActivationId.self, from: Data("12345678901234567".utf8))
        }
    }
}

@Suite("transaction ids")
struct TransactionIdGenerationTests {
    @Test func thirtyTwoAlphanumericsThatDoNotRepeatAndUseTheWholeAlphabet() {
        let ids = (0..<2000).map { _ in TransactionId.generate().id }
        #expect(ids.allSatisfy { $0.count == 32 && $0.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) } })
        #expect(Set(ids).count == ids.count)
        // 64,000 characters: every one of the 62 shows up, in every position class of a word.
        let seen = Set(ids.joined())
        #expect(seen.count == 62)
        let lastOfWords = Set(ids.map { $0[$0.index($0.startIndex, offsetBy: 7)] })
        #expect(lastOfWords.count == 62, "the most significant digit of a word is not stuck")
    }
}
