import Foundation
import WhiskHTTP
import WhiskMessages

/// Talks to the controller's REST API with Basic auth.
public struct WskClient: Sendable {
    public var baseURL: String
    public var auth: String?
    let http: CurlHTTPClient

    public init(apiHost: String, auth: String?) {
        self.baseURL = WskProperties.baseURL(apiHost: apiHost)
        self.auth = auth
        self.http = CurlHTTPClient()
    }

    public struct Reply: Sendable {
        public var status: Int
        public var json: JSONValue
        public var raw: Data
    }

    /// Sends a request; a transport failure is a clear CLIError.
    public func send(_ method: String, _ path: String, query: [String: String] = [:], body: JSONValue? = nil, headers extra: [String] = [],
                     authenticated: Bool = true) async throws -> Reply {
        var components = URLComponents(string: baseURL + path)
        if !query.isEmpty { components?.queryItems = query.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) } }
        guard let url = components?.url?.absoluteString else { throw CLIError("invalid API host '\(baseURL)'") }
        var headers = ["Content-Type: application/json", "Expect:"] + extra
        if authenticated {
            guard let auth, !auth.isEmpty else {
                throw CLIError("The API key is not configured: run 'wsk property set --auth UUID:KEY' or pass --auth")
            }
            headers.append("Authorization: Basic \(Data(auth.utf8).base64EncodedString())")
        }
        let data = try body.map { try WhiskMessageCoding.encode($0) }
        let response: HTTPResponse
        do {
            response = try await http.perform(HTTPRequest(method: method, url: url, headers: headers, body: data ?? (method == "GET" || method == "DELETE" ? nil : Data("{}".utf8)), timeout: .seconds(120)))
        } catch {
            throw CLIError("cannot reach the API host \(baseURL): \(error)")
        }
        let json = (try? JSONDecoder().decode(JSONValue.self, from: response.body)) ?? .string(String(decoding: response.body, as: UTF8.self))
        return Reply(status: response.status, json: json, raw: response.body)
    }

    /// Like `send`, but any non-2xx status is a CLIError with the server's message.
    public func expectSuccess(_ method: String, _ path: String, query: [String: String] = [:], body: JSONValue? = nil, headers: [String] = [],
                              authenticated: Bool = true) async throws -> JSONValue {
        let reply = try await send(method, path, query: query, body: body, headers: headers, authenticated: authenticated)
        guard (200..<300).contains(reply.status) else {
            throw CLIError(Self.message(reply), exitCode: reply.status == 404 ? 148 : 1)
        }
        return reply.json
    }

    static func message(_ reply: Reply) -> String {
        let text = reply.json["error"]?.stringValue ?? String(decoding: reply.raw, as: UTF8.self)
        let code = reply.json["code"]?.stringValue.map { " (code \($0))" } ?? ""
        return "\(text)\(code) [HTTP \(reply.status)]"
    }

    public func shutdown() async { await http.shutdown() }
}

extension JSONValue {
    /// Indented JSON with sorted keys, as the CLI prints it.
    public var pretty: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "\(self)"
    }
}
