/// A key/value pair of OpenWhisk's `Parameters` arrays (annotations, default parameters).
public struct Parameter: Hashable, Sendable, Codable {
    public var key: String
    public var value: JSONValue
    public var `init`: Bool?
    public var encryption: String?

    public init(key: String, value: JSONValue, init isInit: Bool? = nil, encryption: String? = nil) {
        self.key = key
        self.value = value
        self.`init` = isInit
        self.encryption = encryption
    }
}

extension Array where Element == Parameter {
    public subscript(key: String) -> JSONValue? {
        first { $0.key == key }?.value
    }

    /// Upstream's `Parameters.isTruthy`: true, a non-zero number, a non-empty string, an array
    /// or object; `valueForNonExistent` when `key` is absent.
    public func isTruthy(_ key: String, valueForNonExistent: Bool = false) -> Bool {
        guard let value = self[key] else { return valueForNonExistent }
        switch value {
        case .null: return false
        case .bool(let flag): return flag
        case .int(let number): return number != 0
        case .double(let number): return number != 0
        case .number(let literal): return (Double(literal) ?? 0) != 0
        case .string(let text): return !text.isEmpty
        case .array, .object: return true
        }
    }

    /// Sets `key` to `value`, replacing an annotation of that key.
    public mutating func set(_ key: String, _ value: JSONValue) {
        if let index = firstIndex(where: { $0.key == key }) { self[index].value = value } else { append(Parameter(key: key, value: value)) }
    }
}

/// Annotations upstream gives meaning to.
public enum Annotations {
    /// Whether `/run` gets the invoker's API key (`__OW_API_KEY`); absent counts as true, and
    /// new actions are created with false unless they say otherwise.
    public static let provideApiKey = "provide-api-key"
    /// The action's kind, added to every created or updated action.
    public static let exec = "exec"
}

/// The outcome of an activation: status code 0 success, 1 application error, 2 action developer
/// error, 3 whisk internal error.
public struct ActivationResponse: Hashable, Sendable, Codable {
    public enum Status: Int, Sendable, Codable, CaseIterable {
        case success = 0
        case applicationError = 1
        case developerError = 2
        case whiskError = 3

        /// The text the REST API shows in `response.status`.
        public var text: String {
            switch self {
            case .success: "success"
            case .applicationError: "application error"
            case .developerError: "action developer error"
            case .whiskError: "whisk internal error"
            }
        }
    }

    public var statusCode: Int
    public var result: JSONValue?
    public var size: Int?

    public init(statusCode: Int, result: JSONValue?, size: Int? = nil) {
        self.statusCode = statusCode
        self.result = result
        self.size = size
    }

    public static func success(_ result: JSONValue?, size: Int? = nil) -> ActivationResponse {
        ActivationResponse(statusCode: Status.success.rawValue, result: result, size: size)
    }

    /// An error response; errors always carry `{"error": message}`.
    public static func error(_ status: Status, _ message: JSONValue) -> ActivationResponse {
        ActivationResponse(statusCode: status.rawValue, result: ["error": message])
    }

    public var status: Status { Status(rawValue: statusCode) ?? .whiskError }
    public var isSuccess: Bool { statusCode == 0 }
    public var isWhiskError: Bool { statusCode == Status.whiskError.rawValue }
}

/// An activation record, stored by the controller and carried in acknowledgements.
public struct WhiskActivation: Hashable, Sendable, Codable {
    public var namespace: EntityPath
    public var name: EntityName
    public var subject: Subject
    public var activationId: ActivationId
    /// Epoch milliseconds.
    public var start: Int64
    public var end: Int64
    public var cause: ActivationId?
    public var response: ActivationResponse
    public var logs: [String]
    public var version: SemVer
    public var publish: Bool
    public var annotations: [Parameter]
    public var duration: Int64?

    public init(namespace: EntityPath, name: EntityName, subject: Subject, activationId: ActivationId, start: Int64, end: Int64,
                cause: ActivationId? = nil, response: ActivationResponse, logs: [String] = [], version: SemVer = SemVer(),
                publish: Bool = false, annotations: [Parameter] = [], duration: Int64? = nil) {
        self.namespace = namespace
        self.name = name
        self.subject = subject
        self.activationId = activationId
        self.start = start
        self.end = end
        self.cause = cause
        self.response = response
        self.logs = logs
        self.version = version
        self.publish = publish
        self.annotations = annotations
        self.duration = duration
    }
}
