import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import WhiskMessages

/// An API failure rendered as OpenWhisk renders errors: `{"error": "...", "code": "<transaction id>"}`.
public struct APIError: Error, HTTPResponseError, Sendable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var message: String
    public var file: String
    public var line: Int

    public init(_ status: HTTPResponse.Status, _ message: String, file: String = #fileID, line: Int = #line) {
        self.status = status
        self.message = message
        self.file = file
        self.line = line
    }

    public var description: String { "\(status.code) \(message)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let code = request.headers[.requestID] ?? TransactionId.generate().id
        return try JSONResponse.make(status: status, ["error": .string(message), "code": .string(code)])
    }
}

/// JSON responses with the content type OpenWhisk sends.
enum JSONResponse {
    static func make(status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:], _ value: JSONValue) throws -> Response {
        try make(status: status, headers: extra, encodable: value)
    }

    static func make<T: Encodable>(status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:], encodable value: T) throws -> Response {
        let data = try WhiskMessageCoding.encode(value)
        var headers: HTTPFields = [.contentType: "application/json"]
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}

extension WhiskActivation {
    /// The record as the REST API shows it: `response.statusCode` becomes `success` and `status`.
    var extendedJSON: JSONValue {
        guard case .object(var object) = (try? JSONDecoder().decode(JSONValue.self, from: WhiskMessageCoding.encode(self))) ?? .null else {
            return .null
        }
        var response: [String: JSONValue] = [:]
        if let result = self.response.result { response["result"] = result }
        if let size = self.response.size { response["size"] = .int(Int64(size)) }
        response["success"] = .bool(self.response.isSuccess)
        response["status"] = .string(self.response.status.text)
        object["response"] = .object(response)
        object["duration"] = .int(duration ?? (end - start))
        return .object(object)
    }

    /// `response` as `GET .../activations/{id}/result` shows it.
    var extendedResponse: JSONValue { extendedJSON["response"] ?? .null }
}

extension HTTPField.Name {
    /// The transaction id of a request, as OpenWhisk sends it.
    static let requestID = HTTPField.Name("X-Request-ID")!
    static let activationID = HTTPField.Name("x-openwhisk-activation-id")!
    /// The shared secret of the internal endpoints.
    static let internalToken = HTTPField.Name("X-Whisk-Internal-Token")!
}
