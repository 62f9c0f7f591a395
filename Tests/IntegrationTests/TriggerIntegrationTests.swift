import Foundation
import Testing
import WhiskMessages

/// Triggers and rules as upstream serves them: firing activates every active rule's action
/// with the trigger's parameters under the payload; the trigger's record lists what each did.
@Suite("Triggers and rules", .serialized)
struct TriggerIntegrationTests {
    @Test func firingATriggerRunsTheActionsOfItsActiveRules() async throws {
        try await withPlatform(invokers: 1) { platform in
            func api(_ method: String, _ path: String, _ body: JSONValue = [:]) async throws -> Platform.Reply {
                try await platform.request(method, "/api/v1/namespaces/_/\(path)", json: body)
            }
            try await platform.createAction("echo", code: "def main(args):\n    return args\n")
            try await platform.createAction("other", code: "def main(args):\n    return {'other': args.get('x')}\n")
            let trigger = try await api("PUT", "triggers/ping", ["parameters": [["key": "x", "value": "default"], ["key": "y", "value": "default"]]])
            #expect(trigger.status == 200, "\(trigger.json)")
            // No rule yet: nothing runs and no record (204), as upstream.
            #expect(try await api("POST", "triggers/ping", ["x": 1]).status == 204)

            #expect(try await api("PUT", "rules/r1", ["trigger": "/_/ping", "action": "/_/echo"]).status == 200)
            let second = try await api("PUT", "rules/r2", ["trigger": "ping", "action": "other"])
            #expect(second.status == 200 && second.json["status"] == "active", "\(second.json)")
            #expect(second.json["trigger"] == ["path": "guest", "name": "ping"] && second.json["action"] == ["path": "guest", "name": "other"])
            let shown = try await api("GET", "triggers/ping")
            #expect(shown.json["rules"]?["guest/r1"]?["status"] == "active", "\(shown.json)")

            let fired = try await api("POST", "triggers/ping", ["x": "fired"])
            #expect(fired.status == 202, "\(fired.json)")
            let triggerId = try #require(fired.json["activationId"]?.stringValue)
            let record = try await platform.request("GET", "/api/v1/namespaces/_/activations/\(triggerId)")
            #expect(record.json["name"] == "ping" && record.json["response"]?["result"] == ["x": "fired"], "\(record.json)")
            let logs = (record.json["logs"]?.arrayValue ?? []).compactMap { $0.stringValue.flatMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) } }
            #expect(logs.count == 2 && logs.allSatisfy { $0["success"] == true && $0["statusCode"] == 0 }, "\(logs)")
            let echoId = try #require(logs.first { $0["rule"] == "guest/r1" }?["activationId"]?.stringValue, "\(logs)")
            try await waitUntil("the rule's activation has its record", timeout: .seconds(60)) {
                (try? await platform.request("GET", "/api/v1/namespaces/_/activations/\(echoId)"))?.status == 200
            }
            let echoed = try await platform.request("GET", "/api/v1/namespaces/_/activations/\(echoId)")
            // The trigger's parameters under the payload; the record's cause is the trigger's activation.
            #expect(echoed.json["response"]?["result"] == ["x": "fired", "y": "default"], "\(echoed.json)")
            #expect(echoed.json["cause"]?.stringValue == triggerId)
            #expect(echoed.json["annotations"]?.arrayValue?.contains { $0["key"] == "causedBy" } == false, "not a sequence component")

            // A disabled rule does not fire; enabled again, it does.
            #expect(try await api("POST", "rules/r2", ["status": "inactive"]).json["status"] == "inactive")
            let once = try await api("POST", "triggers/ping", [:])
            let onceRecord = try await platform.request("GET", "/api/v1/namespaces/_/activations/\(once.json["activationId"]?.stringValue ?? "")")
            #expect(onceRecord.json["logs"]?.arrayValue?.count == 1, "\(onceRecord.json)")
            #expect(try await api("POST", "rules/r2", ["status": "sleepy"]).status == 400)

            // What upstream refuses.
            #expect(try await api("PUT", "rules/r3", ["trigger": "nothere", "action": "echo"]).status == 400)
            #expect(try await api("PUT", "rules/r3", ["trigger": "ping", "action": "nothere"]).status == 400)
            #expect(try await api("PUT", "rules/r1", ["trigger": "ping", "action": "echo"]).status == 409)
            #expect(try await api("GET", "rules").json.arrayValue?.count == 2)
            // Deleting a trigger leaves its rules inactive, as upstream: made again, it fires nothing.
            #expect(try await api("PUT", "triggers/again").status == 200)
            #expect(try await api("PUT", "rules/r4", ["trigger": "again", "action": "echo"]).status == 200)
            #expect(try await api("POST", "triggers/again", [:]).status == 202, "positive control: the rule fires")
            #expect(try await api("DELETE", "triggers/again").status == 200)
            #expect(try await api("GET", "rules/r4").json["status"] == "inactive")
            #expect(try await api("PUT", "triggers/again").status == 200)
            #expect(try await api("POST", "triggers/again", [:]).status == 204, "the old rule does not fire the new trigger")
            #expect(try await api("DELETE", "rules/r4").status == 200)
            #expect(try await api("DELETE", "triggers/again").status == 200)
            // A fire's payload keeps its numbers as written, as an invoke's does.
            try await platform.createAction("kinds", code: "def main(args):\n    return {k: type(v).__name__ for k, v in args.items()}\n")
            #expect(try await api("PUT", "triggers/exact").status == 200)
            #expect(try await api("PUT", "rules/r5", ["trigger": "exact", "action": "kinds"]).status == 200)
            let exact = try await platform.request("POST", "/api/v1/namespaces/_/triggers/exact", body: Data(#"{"x": 1.0}"#.utf8))
            let exactLogs = try await platform.request("GET", "/api/v1/namespaces/_/activations/\(exact.json["activationId"]?.stringValue ?? "")")
            let firstLog = try #require(exactLogs.json["logs"]?.arrayValue?.first?.stringValue, "\(exactLogs.json)")
            let exactId = try #require(try JSONValue.parse(Data(firstLog.utf8))["activationId"]?.stringValue, "\(firstLog)")
            try await waitUntil("the fired activation's record", timeout: .seconds(60)) {
                (try? await platform.request("GET", "/api/v1/namespaces/_/activations/\(exactId)"))?.status == 200
            }
            let typed = try await platform.request("GET", "/api/v1/namespaces/_/activations/\(exactId)")
            #expect(typed.json["response"]?["result"]?["x"] == "float", "1.0 stays a float: \(typed.json)")
            #expect(try await api("DELETE", "rules/r5").status == 200)
            #expect(try await api("DELETE", "triggers/exact").status == 200)

            #expect(try await api("DELETE", "rules/r1").status == 200)
            #expect(try await api("DELETE", "rules/r2").status == 200)
            #expect(try await api("POST", "triggers/ping", [:]).status == 204, "no rule left")
            #expect(try await api("DELETE", "triggers/ping").status == 200)
            #expect(try await api("POST", "triggers/ping", [:]).status == 404)
        }
    }
}
