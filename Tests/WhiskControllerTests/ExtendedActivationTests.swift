import Foundation
import Testing
@testable import WhiskController
import WhiskMessages

/// The record as the REST API shows it, encoded straight from the record.
@Suite("extended activation")
struct ExtendedActivationTests {
    func json(_ value: some Encodable) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: WhiskMessageCoding.encode(value))
    }

    @Test func showsSuccessAndStatusInsteadOfStatusCodeAndFillsInTheDuration() throws {
        let record = WhiskActivation(namespace: EntityPath("guest")!, name: EntityName("hello")!, subject: "guest",
                                     activationId: ActivationId("0123456789abcdef0123456789abcdef")!, start: 100, end: 142,
                                     response: .error(.applicationError, "boom"), logs: ["a line"],
                                     annotations: [Parameter(key: "waitTime", value: 3)])
        let shown = try json(record.extended)
        #expect(shown == [
            "namespace": "guest", "name": "hello", "subject": "guest", "activationId": "0123456789abcdef0123456789abcdef",
            "start": 100, "end": 142, "logs": ["a line"], "version": "0.0.1", "publish": false,
            "annotations": [["key": "waitTime", "value": 3]], "duration": 42,
            "response": ["result": ["error": "boom"], "success": false, "status": "application error"],
        ])
        // The record's other fields are encoded as the record encodes them.
        guard case .object(var stored) = try json(record), case .object(var extended) = shown else {
            Issue.record("not objects")
            return
        }
        for key in ["response", "duration"] {
            stored[key] = nil
            extended[key] = nil
        }
        #expect(stored == extended)
        #expect(try json(record.extendedResponse) == ["result": ["error": "boom"], "success": false, "status": "application error"])
    }

    @Test func keepsACauseAndARecordedDuration() throws {
        var record = WhiskActivation(namespace: EntityPath("guest")!, name: EntityName("seq")!, subject: "guest",
                                     activationId: ActivationId("0123456789abcdef0123456789abcdef")!, start: 100, end: 142,
                                     cause: ActivationId("fedcba9876543210fedcba9876543210")!, response: .success(["ok": true], size: 11))
        record.duration = 7
        let shown = try json(record.extended)
        #expect(shown["cause"] == "fedcba9876543210fedcba9876543210")
        #expect(shown["duration"] == 7)
        #expect(shown["response"] == ["result": ["ok": true], "size": 11, "success": true, "status": "success"])
    }
}
