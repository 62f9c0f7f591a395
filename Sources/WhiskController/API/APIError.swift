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
    var extended: ExtendedActivation { ExtendedActivation(record: self) }

    /// `response` as `GET .../activations/{id}/result` shows it.
    var extendedResponse: ExtendedActivation.Response { ExtendedActivation.Response(self.response) }
}

/// A record as the REST API shows it, encoded straight from the record (it was encoded, decoded
/// into a generic value, changed and encoded again: a tenth of the controller's CPU at 400
/// activations/s).
struct ExtendedActivation: Encodable {
    struct Response: Encodable {
        var result: JSONValue?
        var size: Int?
        var success: Bool
        var status: String

        init(_ response: ActivationResponse) {
            result = response.result
            size = response.size
            success = response.isSuccess
            status = response.status.text
        }
    }

    let record: WhiskActivation

    enum CodingKeys: String, CodingKey {
        case namespace, name, subject, activationId, start, end, cause, response, logs, version, publish, annotations, duration
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(record.namespace, forKey: .namespace)
        try container.encode(record.name, forKey: .name)
        try container.encode(record.subject, forKey: .subject)
        try container.encode(record.activationId, forKey: .activationId)
        try container.encode(record.start, forKey: .start)
        try container.encode(record.end, forKey: .end)
        try container.encodeIfPresent(record.cause, forKey: .cause)
        try container.encode(Response(record.response), forKey: .response)
        try container.encode(record.logs, forKey: .logs)
        try container.encode(record.version, forKey: .version)
        try container.encode(record.publish, forKey: .publish)
        try container.encode(record.annotations, forKey: .annotations)
        try container.encode(record.duration ?? (record.end - record.start), forKey: .duration)
    }
}

extension HTTPField.Name {
    /// The transaction id of a request, as OpenWhisk sends it.
    static let requestID = HTTPField.Name("X-Request-ID")!
    static let activationID = HTTPField.Name("x-openwhisk-activation-id")!
    /// The shared secret of the internal endpoints.
    static let internalToken = HTTPField.Name("X-Whisk-Internal-Token")!
}
