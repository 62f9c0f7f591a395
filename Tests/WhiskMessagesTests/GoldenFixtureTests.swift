import Foundation
import Testing
@testable import WhiskMessages

/// `Fixtures/<name>.json`, or `Fixtures/upstream/<name>.json` (JSON from upstream's own tests).
func fixture(_ name: String, upstream: Bool = false) throws -> Data {
    let url = try #require(Bundle.module.url(forResource: name, withExtension: "json", subdirectory: upstream ? "Fixtures/upstream" : "Fixtures"),
                           "no fixture \(name)")
    return try Data(contentsOf: url)
}

/// Decodes a golden file, encodes it again and compares the two as JSON values (field order free,
/// absent optionals must stay absent, explicit nulls must stay null).
func expectRoundTrip<T: Codable & Equatable>(_ type: T.Type, _ name: String, upstream: Bool = false) throws -> T {
    let data = try fixture(name, upstream: upstream)
    let decoded = try WhiskMessageCoding.decode(T.self, from: data)
    let encoded = try WhiskMessageCoding.encode(decoded)
    let original = try JSONDecoder().decode(JSONValue.self, from: data)
    let reencoded = try JSONDecoder().decode(JSONValue.self, from: encoded)
    #expect(original == reencoded, "\(name) does not survive decode/encode:\n\(String(decoding: encoded, as: UTF8.self))")
    #expect(try WhiskMessageCoding.decode(T.self, from: encoded) == decoded)
    return decoded
}

@Suite("Golden OpenWhisk wire messages")
struct GoldenFixtureTests {
    @Test func activationMessage() throws {
        let message = try expectRoundTrip(ActivationMessage.self, "activation-message")
        #expect(message.transid.id == "d2b4a1c0e9f84f7c9a1b2c3d4e5f6a7b")
        #expect(message.transid.start == 1_717_171_717_123)
        #expect(message.action.description == "guest/hello")
        #expect(message.action.version == SemVer(major: 0, minor: 0, patch: 1))
        #expect(message.user.namespace.name.rawValue == "guest")
        #expect(message.user.apiKey?.hasPrefix("23bc46b1-71f6-4ed5-8c54-816aa4f8c502:") == true)
        #expect(message.rootControllerIndex.completionTopic == "completed0")
        #expect(message.blocking)
        #expect(message.content?["nested"]?["list"] == [1, "two", nil, true])
        #expect(message.content?["ratio"] == .double(0.5))
    }

    @Test func healthTestActivationHasNullRevisionAndNoContent() throws {
        let message = try expectRoundTrip(ActivationMessage.self, "activation-message-health")
        #expect(message.revision == nil)
        #expect(message.content == nil)
        #expect(message.user.rights.isEmpty)
        let encoded = String(decoding: try WhiskMessageCoding.encode(message), as: UTF8.self)
        #expect(encoded.contains("\"revision\":null"))
        #expect(!encoded.contains("\"content\""))
    }

    @Test func sequenceComponentWithParentTransactionAndBinding() throws {
        let message = try expectRoundTrip(ActivationMessage.self, "activation-message-sequence-component")
        #expect(message.transid.extraLogging)
        #expect(message.transid.parent?.id == "parentparentparentparentparent12")
        #expect(message.action.binding?.rawValue == "guest/mybinding")
        #expect(message.action.path.namespace == "guest")
        #expect(message.cause?.rawValue == "7c1e5f4a2b3d4c5e8f9a0b1c2d3e4f50")
        #expect(message.lockedArgs == ["password": "aes-256"])
        #expect(message.initArgs == ["SECRET"])
    }

    @Test func whiskActivation() throws {
        let activation = try expectRoundTrip(WhiskActivation.self, "whisk-activation")
        #expect(activation.response.status == .success)
        #expect(activation.duration == 90)
        #expect(activation.annotations["waitTime"] == 77)
        #expect(activation.annotations["limits"]?["memory"] == 256)
    }

    @Test func combinedAcknowledgement() throws {
        let ack = try expectRoundTrip(AcknowledgementMessage.self, "ack-combined")
        guard case .combined(_, .activation(let activation), false, let instance) = ack else {
            Issue.record("expected a combined ack with a whole record, got \(ack)")
            return
        }
        #expect(activation.name.rawValue == "hello")
        #expect(instance.userMemory == .megabytes(2048))
        #expect(ack.releasedInvoker?.instance == 0)
    }

    @Test func shrunkCombinedAcknowledgement() throws {
        let ack = try expectRoundTrip(AcknowledgementMessage.self, "ack-combined-shrunk")
        guard case .combined(_, .activationId(let id), _, _) = ack else {
            Issue.record("expected a shrunk combined ack, got \(ack)")
            return
        }
        #expect(id.rawValue == "7c1e5f4a2b3d4c5e8f9a0b1c2d3e4f5a")
        #expect(ack.activation == nil)
    }

    @Test func completionAcknowledgement() throws {
        let ack = try expectRoundTrip(AcknowledgementMessage.self, "ack-completion")
        guard case .completion(_, let id, false, _) = ack else {
            Issue.record("expected a completion ack, got \(ack)")
            return
        }
        #expect(id == ack.activationId)
    }

    @Test func resultAcknowledgementFreesNoSlot() throws {
        let ack = try expectRoundTrip(AcknowledgementMessage.self, "ack-result")
        guard case .result = ack else {
            Issue.record("expected a result ack, got \(ack)")
            return
        }
        #expect(ack.releasedInvoker == nil)
        #expect(ack.activation?.logs == [])
    }

    @Test func systemErrorAcknowledgement() throws {
        let ack = try expectRoundTrip(AcknowledgementMessage.self, "ack-combined-error")
        #expect(ack.activation?.response.status == .whiskError)
        #expect(ack.activation?.response.result?["error"]?.stringValue?.contains("Failed to run container") == true)
        guard case .combined(_, _, let isSystemError, _) = ack else {
            Issue.record("expected combined")
            return
        }
        #expect(isSystemError)
    }

    @Test func pingMessage() throws {
        let ping = try expectRoundTrip(PingMessage.self, "ping")
        #expect(ping.name.description == "invoker0/0")
        #expect(ping.enabled)
        #expect(ping.extensions.isEmpty)
    }

    @Test func pingWithoutIsEnabledParsesAnyUnit() throws {
        let ping = try WhiskMessageCoding.decode(PingMessage.self, from: try fixture("ping-minimal"))
        #expect(ping.isEnabled == nil)
        #expect(ping.enabled)
        #expect(ping.name.userMemory.bytes == 4096 * 1024 * 1024)
        #expect(ping.name.description == "invoker3/host-a/a")
        #expect(ping.name.topic == "invoker3")
        // Written back in the unit it came in, as upstream's ByteSize does.
        let encoded = String(decoding: try WhiskMessageCoding.encode(ping), as: UTF8.self)
        #expect(encoded.contains("\"userMemory\":\"4096 MB\""))
        #expect(ping.name.userMemory.inBytes.description == "4294967296 B")
    }

    @Test func pingExtensionFieldsSurviveAndStockFieldsStayReadable() throws {
        var data = try fixture("ping")
        data.removeLast(2)  // "}\n"
        data.append(contentsOf: Array(#","addressMap":{"seq":7,"added":[{"id":"a"}]}}"#.utf8))
        let ping = try WhiskMessageCoding.decode(PingMessage.self, from: data)
        #expect(ping.extensions["addressMap"]?["seq"] == 7)
        let again = try WhiskMessageCoding.decode(PingMessage.self, from: try WhiskMessageCoding.encode(ping))
        #expect(again == ping)
    }
}
