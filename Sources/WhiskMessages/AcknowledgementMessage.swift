/// The `response` of an acknowledgement: the whole record, or only its id ("shrunk").
public enum ActivationResponsePayload: Hashable, Sendable, Codable {
    case activation(WhiskActivation)
    case activationId(ActivationId)

    public var activationId: ActivationId {
        switch self {
        case .activation(let activation): activation.activationId
        case .activationId(let id): id
        }
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let id = try? container.decode(ActivationId.self) {
            self = .activationId(id)
        } else {
            self = .activation(try container.decode(WhiskActivation.self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .activation(let activation): try container.encode(activation)
        case .activationId(let id): try container.encode(id)
        }
    }
}

/// What an invoker sends on `completed{C}`. The kind is decided by the fields present:
/// `instance` and `response` → combined; `instance` only → completion; else → result.
public enum AcknowledgementMessage: Hashable, Sendable, Codable {
    /// The result is available and the invoker's slot is free.
    case combined(transid: TransactionId, response: ActivationResponsePayload, isSystemError: Bool, instance: InvokerInstanceId)
    /// The slot is free (after log collection); no result.
    case completion(transid: TransactionId, activationId: ActivationId, isSystemError: Bool, instance: InvokerInstanceId)
    /// The result for a blocking caller; the slot is not yet free.
    case result(transid: TransactionId, response: ActivationResponsePayload)

    enum CodingKeys: String, CodingKey { case transid, response, activationId, isSystemError, instance }

    public var transid: TransactionId {
        switch self {
        case .combined(let transid, _, _, _), .completion(let transid, _, _, _), .result(let transid, _): transid
        }
    }

    public var activationId: ActivationId {
        switch self {
        case .combined(_, let response, _, _), .result(_, let response): response.activationId
        case .completion(_, let id, _, _): id
        }
    }

    /// The invoker whose slot this message frees, if it frees one.
    public var releasedInvoker: InvokerInstanceId? {
        switch self {
        case .combined(_, _, _, let instance), .completion(_, _, _, let instance): instance
        case .result: nil
        }
    }

    /// The activation record, when the message carries it whole.
    public var activation: WhiskActivation? {
        switch self {
        case .combined(_, .activation(let activation), _, _), .result(_, .activation(let activation)): activation
        default: nil
        }
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let transid = try container.decode(TransactionId.self, forKey: .transid)
        let instance = try container.decodeIfPresent(InvokerInstanceId.self, forKey: .instance)
        let response = try container.decodeIfPresent(ActivationResponsePayload.self, forKey: .response)
        switch (instance, response) {
        case (let instance?, let response?):
            let isSystemError = try container.decodeIfPresent(Bool.self, forKey: .isSystemError) ?? false
            self = .combined(transid: transid, response: response, isSystemError: isSystemError, instance: instance)
        case (let instance?, nil):
            self = .completion(
                transid: transid,
                activationId: try container.decode(ActivationId.self, forKey: .activationId),
                isSystemError: try container.decodeIfPresent(Bool.self, forKey: .isSystemError) ?? false,
                instance: instance
            )
        case (nil, let response?):
            self = .result(transid: transid, response: response)
        case (nil, nil):
            throw DecodingError.keyNotFound(CodingKeys.response, .init(codingPath: [], debugDescription: "an acknowledgement carries 'response' or 'instance'"))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .combined(let transid, let response, let isSystemError, let instance):
            try container.encode(transid, forKey: .transid)
            try container.encode(response, forKey: .response)
            try container.encode(isSystemError, forKey: .isSystemError)
            try container.encode(instance, forKey: .instance)
        case .completion(let transid, let activationId, let isSystemError, let instance):
            try container.encode(transid, forKey: .transid)
            try container.encode(activationId, forKey: .activationId)
            try container.encode(isSystemError, forKey: .isSystemError)
            try container.encode(instance, forKey: .instance)
        case .result(let transid, let response):
            try container.encode(transid, forKey: .transid)
            try container.encode(response, forKey: .response)
        }
    }
}

/// The heartbeat an invoker sends on `health` every second.
///
/// A stock controller reads only `name` and `isEnabled`; WhiskMesh's extensions travel in other
/// top-level fields, which ``extensions`` keeps so that nothing read is lost on re-encoding.
public struct PingMessage: Hashable, Sendable, Codable {
    public var name: InvokerInstanceId
    public var isEnabled: Bool?
    /// Top-level fields other than `name` and `isEnabled`.
    public var extensions: [String: JSONValue]

    public init(name: InvokerInstanceId, isEnabled: Bool? = true, extensions: [String: JSONValue] = [:]) {
        self.name = name
        self.isEnabled = isEnabled
        self.extensions = extensions
    }

    /// Absent means enabled.
    public var enabled: Bool { isEnabled ?? true }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        name = try container.decode(InvokerInstanceId.self, forKey: AnyKey("name"))
        isEnabled = try container.decodeIfPresent(Bool.self, forKey: AnyKey("isEnabled"))
        var extensions: [String: JSONValue] = [:]
        for key in container.allKeys where key.stringValue != "name" && key.stringValue != "isEnabled" {
            extensions[key.stringValue] = try container.decode(JSONValue.self, forKey: key)
        }
        self.extensions = extensions
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: AnyKey.self)
        try container.encode(name, forKey: AnyKey("name"))
        try container.encodeIfPresent(isEnabled, forKey: AnyKey("isEnabled"))
        for (key, value) in extensions where key != "name" && key != "isEnabled" {
            try container.encode(value, forKey: AnyKey(key))
        }
    }
}
