import Foundation
import Testing
import WhiskMessages
@testable import WhiskInvoker

/// `/run` replies read the way upstream's `processRunResponseContent` reads them.
@Suite("Reading a /run reply")
struct RunResponseTests {
    func interpret(_ status: Int, _ body: String, limit: Int = 1_048_576) -> ActivationResponse {
        ActivationRunner.interpret(status: status, body: Data(body.utf8), limit: limit)
    }

    @Test func anObjectIsTheResultAndItsErrorFieldAnApplicationError() {
        #expect(interpret(200, #"{"a":1}"#) == .success(["a": 1], size: 7))
        let failed = interpret(200, #"{"error":"no"}"#)
        #expect(failed.status == .applicationError && failed.result == ["error": "no"])
    }

    @Test func anArrayIsAResult() {
        let response = interpret(200, "[1,\"two\",{\"x\":null}]")
        #expect(response.status == .success)
        #expect(response.result == [1, "two", ["x": nil]])
    }

    @Test func anArrayOrObjectWithAnotherStatusIsTheDevelopersError() {
        let array = interpret(502, "[1]")
        #expect(array.status == .developerError)
        #expect(array.result == ["error": "The action did not produce a valid JSON or JSON Array response: [1]"])
        let object = interpret(502, #"{"error":"boom"}"#)
        #expect(object.status == .developerError && object.result == ["error": "boom"])
    }

    @Test(arguments: ["42", "\"text\"", "null", "not json", ""])
    func anythingElseIsTheDevelopersError(_ body: String) {
        let response = interpret(200, body)
        #expect(response.status == .developerError)
        #expect(response.result?["error"]?.stringValue?.hasPrefix("The action did not produce a valid JSON or JSON Array response") == true)
    }

    @Test func aReplyOverTheLimitIsAnApplicationErrorWithItsTrunk() {
        let response = interpret(200, #"{"data":"0123456789"}"#, limit: 8)
        #expect(response.status == .applicationError)
        #expect(response.result?["error"]?.stringValue == #"The action produced a response that exceeded the allowed length: 21 > 8 bytes. The truncated response was: {"data":"#)
    }
}
