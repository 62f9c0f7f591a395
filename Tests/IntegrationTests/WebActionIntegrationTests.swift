import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import WhiskMessages

/// Web actions end to end, no credentials: the request becomes `__ow_*` parameters, the result
/// the HTTP response, as upstream's WebActions.scala does it.
@Suite("Web actions", .serialized)
struct WebActionIntegrationTests {
    struct WebReply {
        var status: Int
        var headers: [String: String]
        var body: Data
        var json: JSONValue { (try? JSONDecoder().decode(JSONValue.self, from: body)) ?? .string(String(decoding: body, as: UTF8.self)) }
    }

    /// A request with no credentials (unless given in `headers`).
    func web(_ platform: Platform, _ method: String, _ path: String, headers: [String: String] = [:], body: Data? = nil) async throws -> WebReply {
        var request = URLRequest(url: URL(string: platform.apiHost + "/api/v1/web/" + path)!)
        request.httpMethod = method
        for (key, value) in headers { request.setValue(value, forHTTPHeaderField: key) }
        request.httpBody = body
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = try #require(response as? HTTPURLResponse)
        var fields: [String: String] = [:]
        for (key, value) in http.allHeaderFields { fields[String(describing: key).lowercased()] = String(describing: value) }
        return WebReply(status: http.statusCode, headers: fields, body: data)
    }

    func createWebAction(_ platform: Platform, _ name: String, code: String, annotations: JSONValue) async throws {
        let body: JSONValue = ["exec": ["kind": "python:3", "code": .string(code)], "annotations": annotations]
        let reply = try await platform.request("PUT", "/api/v1/namespaces/_/actions/\(name)", json: body)
        #expect(reply.status == 200, "\(reply.json)")
    }

    @Test func webActionsAnswerHTTPWithoutCredentials() async throws {
        try await withPlatform(invokers: 1) { platform in
            let echo = """
            import base64
            def main(args):
                kind = args.get("kind")
                if kind == "html":
                    return {"html": "<p>hello</p>"}
                if kind == "png":
                    return {"headers": {"Content-Type": "image/png"}, "body": base64.b64encode(bytes([137, 80, 78, 71])).decode()}
                if kind == "fail":
                    return {"error": {"statusCode": 418, "body": "teapot"}}
                return {"statusCode": 201, "headers": {"X-Test": "yes"},
                        "body": {"method": args["__ow_method"], "path": args["__ow_path"], "q": args.get("q"), "b": args.get("b"),
                                 "custom": args["__ow_headers"].get("x-custom"), "default": args.get("d")}}
            """
            try await createWebAction(platform, "webby", code: echo, annotations: [["key": "web-export", "value": true]])
            #expect(try await platform.request("PUT", "/api/v1/namespaces/_/actions/webby?overwrite=true",
                                               json: ["parameters": [["key": "d", "value": "default"]]]).status == 200)

            let get = try await web(platform, "GET", "guest/default/webby.http/extra/path?q=1", headers: ["X-Custom": "c"])
            #expect(get.status == 201, "\(get.json)")
            #expect(get.headers["x-test"] == "yes" && get.headers["access-control-allow-origin"] == "*", "\(get.headers)")
            #expect(get.headers["x-openwhisk-activation-id"]?.count == 32)
            #expect(get.json == ["method": "get", "path": "/extra/path", "q": "1", "b": nil, "custom": "c", "default": "default"], "\(get.json)")
            let post = try await web(platform, "POST", "guest/default/webby", headers: ["Content-Type": "application/json"], body: Data(#"{"b": 2}"#.utf8))
            #expect(post.json["b"] == 2 && post.json["method"] == "post", "\(post.json)")
            let form = try await web(platform, "POST", "guest/default/webby.http", headers: ["Content-Type": "application/x-www-form-urlencoded"],
                                     body: Data("b=two+words&q=x".utf8))
            #expect(form.json["b"] == "two words" && form.json["q"] == "x", "\(form.json)")

            let html = try await web(platform, "GET", "guest/default/webby.html?kind=html")
            #expect(html.status == 200 && String(decoding: html.body, as: UTF8.self) == "<p>hello</p>" && html.headers["content-type"]?.hasPrefix("text/html") == true)
            let json = try await web(platform, "GET", "guest/default/webby.json?kind=html")
            #expect(json.json == ["html": "<p>hello</p>"] && json.headers["content-type"]?.hasPrefix("application/json") == true)
            let png = try await web(platform, "GET", "guest/default/webby.http?kind=png")
            #expect(png.body == Data([137, 80, 78, 71]) && png.headers["content-type"] == "image/png", "\(png.headers)")
            let failed = try await web(platform, "GET", "guest/default/webby.http?kind=fail")
            #expect(failed.status == 418 && String(decoding: failed.body, as: UTF8.self) == "teapot", "an application error answers with its error")
            let notHTML = try await web(platform, "GET", "guest/default/webby.html")
            #expect(notHTML.status == 400 && notHTML.json["error"] == "Response is not valid 'text/html'.", "\(notHTML.json)")
            let reserved = try await web(platform, "GET", "guest/default/webby.json?__ow_method=put")
            #expect(reserved.status == 400, "\(reserved.json)")

            // Not exported, missing, or behind a secret: as upstream.
            try await platform.createAction("hidden", code: "def main(args):\n    return {}\n")
            #expect(try await web(platform, "GET", "guest/default/hidden.json").status == 404, "not web-exported")
            #expect(try await web(platform, "GET", "guest/default/nothing.json").status == 404)
            #expect(try await web(platform, "GET", "nobody/default/webby.json").status == 404)
            try await createWebAction(platform, "guarded", code: "def main(args):\n    return {'ok': True}\n",
                                      annotations: [["key": "web-export", "value": true], ["key": "require-whisk-auth", "value": "s3cret"]])
            #expect(try await web(platform, "GET", "guest/default/guarded.json").status == 401)
            #expect(try await web(platform, "GET", "guest/default/guarded.json", headers: ["X-Require-Whisk-Auth": "s3cret"]).json == ["ok": true])

            // raw-http: query and body as they came.
            try await createWebAction(platform, "rawish", code: "def main(args):\n    return {'q': args['__ow_query'], 'b': args['__ow_body'], 'x': args.get('x')}\n",
                                      annotations: [["key": "web-export", "value": true], ["key": "raw-http", "value": true]])
            let raw = try await web(platform, "POST", "guest/default/rawish.json?x=1&y=2", headers: ["Content-Type": "text/plain"], body: Data("plain text".utf8))
            #expect(raw.json == ["q": "x=1&y=2", "b": "plain text", "x": nil], "\(raw.json)")
        }
    }
}
