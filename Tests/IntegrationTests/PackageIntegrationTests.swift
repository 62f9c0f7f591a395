import Foundation
import Testing
import WhiskMessages

/// Packages and bindings as upstream serves them, end to end: the controller resolves, the
/// invoker fetches a packaged action's code and marks a binding on the record.
@Suite("Packages", .serialized)
struct PackageIntegrationTests {
    static let echo = "def main(args):\n    return args\n"

    @Test func packagesBindingsAndTheirParameters() async throws {
        try await withPlatform(invokers: 1) { platform in
            let other = try await platform.createNamespace("team-b")
            func put(_ path: String, _ body: JSONValue, as auth: String = Platform.guestAuth) async throws -> Platform.Reply {
                try await platform.request("PUT", "/api/v1/namespaces/_/\(path)", json: body, auth: auth)
            }
            let parameters: JSONValue = [["key": "a", "value": "package"], ["key": "b", "value": "package"], ["key": "c", "value": "package"]]
            #expect(try await put("packages/utils", ["publish": true, "parameters": parameters]).status == 200)
            let action = try await put("actions/utils/echo", ["exec": ["kind": "python:3", "code": .string(Self.echo)],
                                                              "parameters": [["key": "c", "value": "action"], ["key": "d", "value": "action"]]])
            #expect(action.status == 200, "\(action.json)")
            #expect(action.json["namespace"] == "guest/utils")

            // Precedence as upstream: package < action < invoke.
            let own = try await platform.request("POST", "/api/v1/namespaces/_/actions/utils/echo?blocking=true&result=true", json: ["d": "invoke"])
            #expect(own.json == ["a": "package", "b": "package", "c": "action", "d": "invoke"], "\(own.json)")
            // A package's new parameters reach its (already read, cached) action at the next invoke.
            #expect(try await put("packages/utils?overwrite=true", ["publish": true, "parameters": [["key": "a", "value": "changed"], ["key": "b", "value": "package"],
                                                                                                     ["key": "c", "value": "package"]]]).status == 200)
            let changed = try await platform.request("POST", "/api/v1/namespaces/_/actions/utils/echo?blocking=true&result=true", json: [:])
            #expect(changed.json["a"] == "changed", "\(changed.json)")
            #expect(try await put("packages/utils?overwrite=true", ["parameters": parameters]).status == 200)

            let package = try await platform.request("GET", "/api/v1/namespaces/_/packages/utils")
            #expect(package.json["actions"]?.arrayValue?.map { $0["name"] } == ["echo"])
            #expect(package.json["binding"] == [:] && package.json["feeds"] == [])
            let listed = try await platform.request("GET", "/api/v1/namespaces/_/actions")
            #expect(listed.json.arrayValue?.contains { $0["namespace"] == "guest/utils" && $0["name"] == "echo" } == true, "\(listed.json)")

            // Another namespace binds the shared package with parameters of its own: package <
            // binding < action < invoke; the record says which binding it came through.
            let binding = try await put("packages/mine", ["binding": ["namespace": "guest", "name": "utils"],
                                                          "parameters": [["key": "b", "value": "binding"], ["key": "c", "value": "binding"]]], as: other)
            #expect(binding.status == 200, "\(binding.json)")
            #expect(binding.json["annotations"]?.arrayValue?.contains(["key": "binding", "value": ["namespace": "guest", "name": "utils"]]) == true)
            let bound = try await platform.request("POST", "/api/v1/namespaces/_/actions/mine/echo?blocking=true", json: [:], auth: other)
            #expect(bound.status == 200, "\(bound.json)")
            #expect(bound.json["response"]?["result"] == ["a": "package", "b": "binding", "c": "action", "d": "action"], "\(bound.json)")
            let annotations = bound.json["annotations"]?.arrayValue ?? []
            #expect(annotations.contains(["key": "binding", "value": "team-b/mine"]), "\(annotations)")
            #expect(annotations.contains(["key": "path", "value": "guest/utils/echo"]), "\(annotations)")
            #expect(bound.json["namespace"] == "team-b", "the record is the caller's")
            let shown = try await platform.request("GET", "/api/v1/namespaces/_/packages/mine", auth: other)
            #expect(shown.json["actions"]?.arrayValue?.map { $0["name"] } == ["echo"])
            #expect(shown.json["parameters"]?.arrayValue?.contains(["key": "b", "value": "binding"]) == true)
            // The other namespace sees only what guest shares.
            #expect(try await put("packages/secret", ["publish": false]).status == 200)
            let shared = try await platform.request("GET", "/api/v1/namespaces/guest/packages", auth: other)
            #expect(shared.json.arrayValue?.compactMap { $0["name"]?.stringValue } == ["utils"], "\(shared.json)")

            // What upstream refuses.
            let refusals: [(String, JSONValue, Int, String)] = [
                ("packages/x", ["binding": ["namespace": "guest", "name": "secret"]], 403, "not authorized"),
                ("packages/y", ["binding": ["namespace": "guest", "name": "nothing"]], 400, "Binding references a package that does not exist."),
                ("packages/z", ["binding": ["namespace": "team-b", "name": "mine"]], 400, "Cannot bind to another package binding."),
                ("actions/mine/new", ["exec": ["kind": "python:3", "code": .string(Self.echo)]], 400, "Operation not permitted on package binding."),
                ("actions/nopackage/new", ["exec": ["kind": "python:3", "code": .string(Self.echo)]], 404, "does not exist"),
                ("packages/default", [:], 400, "Package name 'default' is reserved."),
            ]
            for (path, body, status, message) in refusals {
                let reply = try await put(path, body, as: other)
                #expect(reply.status == status, "\(path): \(reply.status) \(reply.json)")
                #expect(reply.json["error"]?.stringValue?.contains(message) == true, "\(path): \(reply.json)")
            }
            let unshared = try await platform.request("POST", "/api/v1/namespaces/guest/actions/secret/echo?blocking=true", json: [:], auth: other)
            #expect(unshared.status == 403)

            // A package with actions goes only with force, and its actions with it.
            let refused = try await platform.request("DELETE", "/api/v1/namespaces/_/packages/utils")
            #expect(refused.status == 409 && refused.json["error"]?.stringValue?.hasPrefix("Package not empty (contains 1 entity)") == true, "\(refused.json)")
            #expect(try await platform.request("DELETE", "/api/v1/namespaces/_/packages/utils?force=true").status == 200)
            #expect(try await platform.request("GET", "/api/v1/namespaces/_/actions/utils/echo").status == 404)
            #expect(try await platform.request("POST", "/api/v1/namespaces/_/actions/mine/echo?blocking=true", json: [:], auth: other).status == 404)
            #expect(try await platform.request("DELETE", "/api/v1/namespaces/_/packages/mine", auth: other).status == 200, "a binding always goes")
        }
    }

    /// A sequence may name components inside packages; they get the package's parameters.
    @Test func aSequenceRunsPackagedComponents() async throws {
        try await withPlatform(invokers: 1) { platform in
            #expect(try await platform.request("PUT", "/api/v1/namespaces/_/packages/math", json: ["parameters": [["key": "step", "value": 10]]]).status == 200)
            let add = "def main(args):\n    return {'n': args.get('n', 0) + args['step']}\n"
            #expect(try await platform.request("PUT", "/api/v1/namespaces/_/actions/math/add", json: ["exec": ["kind": "python:3", "code": .string(add)]]).status == 200)
            let sequence: JSONValue = ["exec": ["kind": "sequence", "components": ["/guest/math/add", "/_/math/add"]]]
            #expect(try await platform.request("PUT", "/api/v1/namespaces/_/actions/twice", json: sequence).status == 200)
            let reply = try await platform.invoke("twice", ["n": 1], result: true)
            #expect(reply.json == ["n": 21], "\(reply.json)")
        }
    }
}
