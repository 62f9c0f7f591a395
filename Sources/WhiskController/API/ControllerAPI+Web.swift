import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import WhiskMessages

/// Web actions, as upstream's WebActions.scala serves them: `/api/v1/web/{ns}/{pkg}/{action}.{ext}`
/// (`pkg` is `default` outside a package), for actions annotated `web-export: true`, without
/// credentials unless the action says `require-whisk-auth`. The action gets the request as
/// `__ow_method`, `__ow_headers`, `__ow_path` and its query and JSON or form body as
/// parameters (or, with `raw-http: true`, `__ow_query` and `__ow_body` as they came); its result
/// becomes the response by the extension: `.http` (statusCode, headers, body), `.json`, `.html`,
/// `.svg` or `.text`; none means `.http`.
extension ControllerAPI {
    static let webExtensions = [".http", ".json", ".html", ".svg", ".text"]
    static let reservedWebParameters: Set<String> = ["__ow_method", "__ow_headers", "__ow_path", "__ow_user", "__ow_query", "__ow_body"]

    func addWebRoutes(to router: Router<BasicRequestContext>) {
        let methods: [HTTPRequest.Method] = [.get, .post, .put, .delete, .patch, .head, .options]
        for method in methods {
            for path in ["/api/v1/web/{ns}/{pkg}/{action}", "/api/v1/web/{ns}/{pkg}/{action}/**"] {
                router.on(RouterPath(path), method: method) { request, context in try await webAction(request, context) }
            }
        }
    }

    /// The action name and the extension of the last segment (`hello.json` → `hello`, `.json`).
    static func splitWebExtension(_ segment: String) -> (action: String, extension: String) {
        for ext in webExtensions where segment.hasSuffix(ext) && segment.count > ext.count {
            return (String(segment.dropLast(ext.count)), ext)
        }
        return (segment, ".http")
    }

    func webAction(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let namespace = try context.parameters.require("ns")
        let package = try context.parameters.require("pkg")
        let (name, ext) = Self.splitWebExtension(try context.parameters.require("action"))
        let rest = context.parameters.getCatchAll().joined(separator: "/")
        // Nothing about what exists leaks: every miss is the same 404.
        let notFound = APIError(.notFound, "The requested resource does not exist.")
        guard EntityName.isValid(name), let owner = try await store.namespace(named: namespace) else { throw notFound }
        let resolved: ResolvedAction
        do {
            guard let found = try await controller.resolveAction(namespace: namespace, package: package == "default" ? nil : package, name: name, for: owner) else {
                throw notFound
            }
            resolved = found
        } catch {
            throw notFound
        }
        let annotations = resolved.action.annotations
        guard annotations["web-export"]?.boolValue == true else { throw notFound }
        if !annotations.isTruthy("web-custom-options"), request.method == .options {
            return Response(status: .ok, headers: Self.corsHeaders(request))
        }
        guard try await webCallerAllowed(request, annotations) else {
            throw APIError(.unauthorized, "The supplied authentication is invalid")
        }
        let raw = annotations["raw-http"]?.boolValue == true
        let arguments = try await webArguments(request, raw: raw, path: rest.isEmpty ? "" : "/\(rest)")
        let outcome = try await controller.invoke(resolved.action, as: owner, parameters: arguments, blocking: true,
                                                  waitFor: configuration.blockingTimeout, binding: resolved.binding)
        var headers: HTTPFields = annotations.isTruthy("web-custom-options") ? [:] : Self.corsHeaders(request)
        switch outcome {
        case .accepted(let id):
            headers[.activationID] = id.rawValue
            return try JSONResponse.make(status: .accepted, headers: headers, ["error": "Response not yet ready.", "code": .string(id.rawValue)])
        case .completed(let record):
            headers[.activationID] = record.activationId.rawValue
            let projection: JSONValue?
            switch record.response.status {
            case .success: projection = record.response.result ?? [:]
            case .applicationError: projection = record.response.result?["error"]
            case .developerError, .whiskError: throw APIError(.badRequest, "There was an error processing your request.")
            }
            guard let projection else { throw APIError(.notFound, "Response does not include requested property.") }
            var response = try Self.transcode(projection, extension: ext)
            for field in headers where response.headers[field.name] == nil { response.headers.append(field) }
            return response
        }
    }

    /// `require-whisk-auth`: true asks for valid credentials, a string or number for that value
    /// in `X-Require-Whisk-Auth`; absent or false lets anyone in.
    func webCallerAllowed(_ request: Request, _ annotations: [Parameter]) async throws -> Bool {
        switch annotations["require-whisk-auth"] {
        case nil, .bool(false)?, .null?: return true
        case .bool(true)?: return (try? await authenticate(request)) != nil
        case .string(let secret)?: return request.headers[HTTPField.Name("X-Require-Whisk-Auth")!] == secret
        case .int(let secret)?: return request.headers[HTTPField.Name("X-Require-Whisk-Auth")!] == String(secret)
        default: return false
        }
    }

    /// The action's arguments from the request (upstream's `toActionArgument`): metadata, then
    /// the query, then the body (last wins); reserved names may not come from the request.
    func webArguments(_ request: Request, raw: Bool, path: String) async throws -> [String: JSONValue] {
        var arguments: [String: JSONValue] = [
            "__ow_method": .string(request.method.rawValue.lowercased()),
            "__ow_headers": .object(Dictionary(request.headers.map { ($0.name.canonicalName.lowercased(), JSONValue.string($0.value)) }, uniquingKeysWith: { first, _ in first })),
            "__ow_path": .string(path),
        ]
        let body = try await readBody(request)
        let contentType = request.headers[.contentType]?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        let isJSON = contentType == "application/json" || contentType.hasSuffix("+json")
        if raw {
            arguments["__ow_query"] = .string(request.uri.query ?? "")
            if body.isEmpty {
                arguments["__ow_body"] = ""
            } else {
                arguments["__ow_body"] = Self.isBinary(contentType) || isJSON ? .string(body.base64EncodedString()) : .string(String(decoding: body, as: UTF8.self))
            }
            return arguments
        }
        var given: [String: JSONValue] = [:]
        for (key, value) in request.uri.queryParameters { given[String(key)] = .string(String(value)) }
        if !body.isEmpty {
            if isJSON {
                guard let value = try? JSONValue.parse(body) else {
                    throw APIError(.badRequest, "The request content was malformed: the body is not JSON.")
                }
                if case .object(let fields) = value { given.merge(fields) { _, body in body } } else { given["__ow_body"] = value }
            } else if contentType == "application/x-www-form-urlencoded" {
                var components = URLComponents()
                components.percentEncodedQuery = String(decoding: body, as: UTF8.self).replacingOccurrences(of: "+", with: "%20")
                for item in components.queryItems ?? [] { given[item.name] = .string(item.value ?? "") }
            } else {
                given["__ow_body"] = Self.isBinary(contentType) ? .string(body.base64EncodedString()) : .string(String(decoding: body, as: UTF8.self))
            }
        }
        let overriding = Set(given.keys).intersection(Self.reservedWebParameters).subtracting(body.isEmpty || isJSON ? [] : ["__ow_body"])
        guard overriding.isEmpty else { throw APIError(.badRequest, "Request defines parameters that are not allowed (e.g., reserved properties).") }
        arguments.merge(given) { _, new in new }
        return arguments
    }

    /// Text-like media types travel as strings, the rest base64-encoded.
    static func isBinary(_ mediaType: String) -> Bool {
        guard !mediaType.isEmpty else { return false }
        let text = mediaType.hasPrefix("text/") || mediaType.hasSuffix("+json") || mediaType.hasSuffix("+xml")
            || ["application/json", "application/xml", "application/javascript", "application/x-www-form-urlencoded"].contains(mediaType)
        return !text
    }

    static func corsHeaders(_ request: Request) -> HTTPFields {
        var headers: HTTPFields = [
            HTTPField.Name("Access-Control-Allow-Origin")!: "*",
            HTTPField.Name("Access-Control-Allow-Methods")!: "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH",
        ]
        headers[HTTPField.Name("Access-Control-Allow-Headers")!] = request.headers[HTTPField.Name("Access-Control-Request-Headers")!]
            ?? "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent"
        return headers
    }

    static func textResponse(_ text: String, status: HTTPResponse.Status = .ok, contentType: String) -> Response {
        Response(status: status, headers: [.contentType: contentType], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// The result as the extension asks (upstream's media transcoders).
    static func transcode(_ result: JSONValue, extension ext: String) throws -> Response {
        switch ext {
        case ".json":
            guard result.objectValue != nil || result.arrayValue != nil else { throw APIError(.badRequest, "Response is not valid 'application/json'.") }
            return try JSONResponse.make(result)
        case ".html", ".svg":
            let field = ext == ".html" ? "html" : "svg"
            let media = ext == ".html" ? "text/html" : "image/svg+xml"
            let value = result.objectValue.map { $0["body"] ?? $0[field] ?? .null } ?? result
            guard case .string(let text) = value else { throw APIError(.badRequest, "Response is not valid '\(media)'.") }
            return textResponse(text, contentType: ext == ".html" ? "text/html; charset=UTF-8" : media)
        case ".text":
            let value = result.objectValue.map { $0["body"] ?? $0["text"] } ?? result
            guard let value else { throw APIError(.notFound, "Response does not include requested property.") }
            let text: String
            switch value {
            case .string(let string): text = string
            case .object, .array: text = (try? String(decoding: WhiskMessageCoding.encode(value), as: UTF8.self)) ?? ""
            case .bool(let flag): text = String(flag)
            case .int(let number): text = String(number)
            case .double(let number): text = String(number)
            case .number(let literal): text = literal
            case .null: text = "null"
            }
            return textResponse(text, contentType: "text/plain; charset=UTF-8")
        default:
            return try httpResponse(result)
        }
    }

    /// `.http`: `{statusCode, headers, body}`; a string body is sent as is (base64-decoded for a
    /// binary content type), other JSON as JSON; no body means 204 unless a status says otherwise.
    static func httpResponse(_ result: JSONValue) throws -> Response {
        let invalid = APIError(.badRequest, "Response is not valid 'message/http'.")
        guard case .object(let fields) = result else { throw invalid }
        var headers = HTTPFields()
        if let given = fields["headers"] {
            guard case .object(let pairs) = given else { throw invalid }
            for (key, value) in pairs.sorted(by: { $0.key < $1.key }) {
                guard let name = HTTPField.Name(key) else { throw invalid }
                let values: [JSONValue] = value.arrayValue ?? [value]
                for item in values {
                    switch item {
                    case .string(let text): headers.append(HTTPField(name: name, value: text))
                    case .bool(let flag): headers.append(HTTPField(name: name, value: String(flag)))
                    case .int(let number): headers.append(HTTPField(name: name, value: String(number)))
                    case .double(let number): headers.append(HTTPField(name: name, value: String(number)))
                    case .number(let literal): headers.append(HTTPField(name: name, value: literal))
                    default: throw invalid
                    }
                }
            }
        }
        var code: Int?
        switch fields["statusCode"] {
        case nil: code = nil
        case .int(let number)?: code = Int(number)
        case .double(let number)? where number.rounded() == number: code = Int(number)
        case .number(let literal)?: guard let number = Int(literal) else { throw invalid }; code = number
        case .string(let text)?: guard let number = Int(text) else { throw invalid }; code = number
        default: throw invalid
        }
        if let given = code, !(100...599).contains(given) { throw invalid }
        let contentType = headers[.contentType]
        headers[.contentType] = nil
        let mediaType = contentType?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        func status(_ fallback: HTTPResponse.Status) -> HTTPResponse.Status { code.map { HTTPResponse.Status(code: $0) } ?? fallback }
        switch fields["body"] {
        case .string(let text)? where !text.isEmpty:
            let media = mediaType ?? "text/html"
            var bytes = Data(text.utf8)
            let isJSON = media == "application/json" || media.hasSuffix("+json")
            if isBinary(media) || (isJSON && Self.looksBase64(text)) {
                guard let decoded = Data(base64Encoded: text) else { throw APIError(.badRequest, "Response type in header did not match generated content type.") }
                bytes = decoded
            }
            headers[.contentType] = contentType ?? "text/html; charset=UTF-8"
            return Response(status: status(.ok), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        case nil, .null?, .string?:
            return Response(status: status(.noContent), headers: headers)
        case let value?:
            let media = mediaType ?? "application/json"
            guard media == "application/json" || media.hasSuffix("+json") else {
                throw APIError(.badRequest, "Response type in header did not match generated content type.")
            }
            headers[.contentType] = contentType ?? "application/json"
            return Response(status: status(.ok), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try WhiskMessageCoding.encode(value))))
        }
    }

    /// Upstream's legacy check for a JSON web response sent base64-encoded.
    static func looksBase64(_ text: String) -> Bool {
        text.count % 4 == 0 && !text.isEmpty && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "+/=".contains($0)) } && Data(base64Encoded: text) != nil
    }
}
