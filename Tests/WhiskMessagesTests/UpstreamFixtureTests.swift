import Foundation
import Testing
@testable import WhiskMessages

/// A fixture of `Fixtures/upstream` round-tripped as ``expectRoundTrip(_:_:upstream:)`` does.
func expectUpstreamRoundTrip<T: Codable & Equatable>(_ type: T.Type, _ name: String) throws -> T {
    try expectRoundTrip(type, name, upstream: true)
}

@Suite("Upstream's own JSON")
struct UpstreamFixtureTests {
    @Test func transactionIds() throws {
        let plain = try expectUpstreamRoundTrip(TransactionId.self, "transid-plain")
        #expect(plain.id == "ctid1" && plain.start == 1_600_000_000_000 && plain.parent == nil && !plain.extraLogging)
        let child = try expectUpstreamRoundTrip(TransactionId.self, "transid-with-parent")
        #expect(child.parent?.id == "ptid1" && child.parent?.start == 1_500_000_000_000 && !child.extraLogging)
        let logged = try expectUpstreamRoundTrip(TransactionId.self, "transid-with-parent-extra-logging")
        #expect(logged.extraLogging && logged.parent?.extraLogging == true)
    }

    @Test func invokerInstanceIds() throws {
        let plain = try expectUpstreamRoundTrip(InvokerInstanceId.self, "invoker-instance-id")
        #expect(plain.instance == 0 && plain.userMemory == .megabytes(1024) && plain.uniqueName == nil)
        let unique = try expectUpstreamRoundTrip(InvokerInstanceId.self, "invoker-instance-id-unique-name")
        #expect(unique.uniqueName == "uniqueInvoker" && unique.displayedName == nil)
        let displayed = try expectUpstreamRoundTrip(InvokerInstanceId.self, "invoker-instance-id-displayed-name")
        #expect(displayed.displayedName == "displayedInvoker")
    }

    @Test func activationRecordsOfTheCompatTests() throws {
        let response = try expectUpstreamRoundTrip(ActivationResponse.self, "activation-response")
        #expect(response.status == .success && response.result == ["res": "hello"])
        let record = try expectUpstreamRoundTrip(WhiskActivation.self, "activation-compat")
        #expect(record.subject.rawValue == "anon-HfJWZZSG9YE38Y8DJbgp9Xn0YyN")
        #expect(record.duration == 123 && record.cause == nil && record.annotations["initTime"] == 10)
        let failed = try expectUpstreamRoundTrip(WhiskActivation.self, "activation-compat-error")
        #expect(failed.response.result?["error"]?["statusCode"] == 404)
    }

    @Test func acknowledgements() throws {
        for name in ["ack-result", "ack-result-shrunk"] {
            let ack = try expectUpstreamRoundTrip(AcknowledgementMessage.self, name)
            guard case .result = ack else { Issue.record("\(name): expected a result message, got \(ack)"); continue }
            #expect(ack.releasedInvoker == nil, "a result message frees no slot")
            #expect(ack.transid.id == "sid_testing")
        }
        let completion = try expectUpstreamRoundTrip(AcknowledgementMessage.self, "ack-completion")
        guard case .completion(_, _, false, let invoker) = completion else { Issue.record("expected a completion, got \(completion)"); return }
        #expect(invoker.userMemory.description == "1024 MB")
        for (name, systemError) in [("ack-combined", false), ("ack-combined-system-error", true),
                                    ("ack-combined-shrunk", false), ("ack-combined-shrunk-system-error", true)] {
            let ack = try expectUpstreamRoundTrip(AcknowledgementMessage.self, name)
            guard case .combined(_, let response, let isSystemError, _) = ack else { Issue.record("\(name): expected combined, got \(ack)"); continue }
            #expect(isSystemError == systemError, "\(name)")
            #expect(response.activationId.rawValue == "5d9f0e0c1b2a4c3d8e7f6a5b4c3d2e1f")
            #expect(ack.releasedInvoker?.instance == 0)
        }
    }

    /// ContainerProxyTests' message: `ENV_VAR` is an init argument, so `/init` gets it in its env
    /// and `/run` only `param`.
    @Test func initArgumentsArePartitionedAsUpstreamDoes() throws {
        let message = try expectUpstreamRoundTrip(ActivationMessage.self, "activation-message-init-args")
        #expect(message.initArgs == ["ENV_VAR"])
        #expect(message.initEnvironment == ["ENV_VAR": "env"])
        #expect(message.runValue == ["param": "param"])
        #expect(message.user.subject.rawValue.count >= Subject.minimumLength)
    }

    /// Upstream's Subject needs at least 5 characters; a message with a shorter one is refused
    /// with a message that says why.
    @Test func aSubjectShorterThanFiveCharactersIsRefused() throws {
        let text = String(decoding: try fixture("activation-message-init-args", upstream: true), as: UTF8.self)
        let short = text.replacingOccurrences(of: "anon-HfJWZZSG9YE38Y8DJbgp9Xn0YyN", with: "anon")
        #expect(short != text, "positive control: the subject was replaced")
        let error = #expect(throws: WhiskMessageError.self) { try WhiskMessageCoding.decode(ActivationMessage.self, from: Data(short.utf8)) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("user.subject: subject 'anon' is shorter than 5 characters"))
        let five = text.replacingOccurrences(of: "anon-HfJWZZSG9YE38Y8DJbgp9Xn0YyN", with: "anon-")
        #expect(try WhiskMessageCoding.decode(ActivationMessage.self, from: Data(five.utf8)).user.subject.rawValue == "anon-")
        #expect(Subject(namespace: "ns").rawValue == "ns___")
    }
}

@Suite("Runtime manifest")
struct RuntimeManifestTests {
    @Test func upstreamsManifestIsRead() throws {
        let url = try #require(Bundle.module.url(forResource: "runtimes", withExtension: "json", subdirectory: "Fixtures/upstream"))
        let manifest = try RuntimeManifest.load(path: url.path)
        #expect(manifest.kinds.contains("nodejs:20") && manifest.kinds.contains("python:3.11"))
        #expect(manifest.resolve("nodejs") == "nodejs:20" && manifest.resolve("nodejs:default") == "nodejs:20")
        #expect(manifest.resolve("python:3.11") == "python:3.11" && manifest.resolve("cobol:1") == nil)
        #expect(manifest.images["nodejs:20"] == "openwhisk/action-nodejs-v20:nightly")
        #expect(manifest.stemCells["nodejs:20"] == 2 && manifest.stemCells["nodejs:18"] == nil)
        #expect(manifest.blackboxes?.first?.description == "openwhisk/dockerskeleton:nightly")
    }

    @Test func theRepositorysManifestHasTheBuiltInPythonAndNodejs() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("runtimes.json").path
        let manifest = try RuntimeManifest.load(path: path)
        #expect(manifest.runtimes["python"] == RuntimeManifest.builtIn.runtimes["python"], "the binaries' default is the repository's Python")
        #expect(manifest.images == ["python:3": "whiskmesh/python:3", "nodejs:20": "whiskmesh/nodejs:20"] && manifest.stemCells == ["python:3": 1])
        #expect(manifest.resolve("nodejs") == "nodejs:20")
    }

    @Test func aManifestWithoutADefaultKindIsRefused() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("manifest-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try #"{"runtimes": {"python": [{"kind": "python:3", "image": {"name": "python"}}]}}"#.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: WhiskMessageError.self) { try RuntimeManifest.load(path: path) }
        #expect(throws: WhiskMessageError.self) { try RuntimeManifest.load(path: path + ".missing") }
    }
}
