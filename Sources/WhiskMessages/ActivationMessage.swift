import Foundation

/// What a controller sends on `invoker{N}` to run an action.
public struct ActivationMessage: Hashable, Sendable, Codable {
    public var transid: TransactionId
    public var action: FullyQualifiedEntityName
    /// The action document's revision; `nil` (written as `null`) means "fetch the latest".
    public var revision: String?
    public var user: Identity
    public var activationId: ActivationId
    public var rootControllerIndex: ControllerInstanceId
    public var blocking: Bool
    /// The final parameters.
    public var content: JSONValue?
    /// Names of parameters that go to `/init`'s env rather than to `/run`.
    public var initArgs: [String]
    /// Encrypted parameters in `content` and their scheme.
    public var lockedArgs: [String: String]
    /// The enclosing sequence's activation, for sequence components.
    public var cause: ActivationId?
    public var traceContext: [String: String]?

    public init(transid: TransactionId, action: FullyQualifiedEntityName, revision: String?, user: Identity,
                activationId: ActivationId, rootControllerIndex: ControllerInstanceId, blocking: Bool,
                content: JSONValue?, initArgs: [String] = [], lockedArgs: [String: String] = [:],
                cause: ActivationId? = nil, traceContext: [String: String]? = nil) {
        self.transid = transid
        self.action = action
        self.revision = revision
        self.user = user
        self.activationId = activationId
        self.rootControllerIndex = rootControllerIndex
        self.blocking = blocking
        self.content = content
        self.initArgs = initArgs
        self.lockedArgs = lockedArgs
        self.cause = cause
        self.traceContext = traceContext
    }

    enum CodingKeys: String, CodingKey {
        case transid, action, revision, user, activationId, rootControllerIndex, blocking, content, initArgs, lockedArgs, cause, traceContext
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        transid = try container.decode(TransactionId.self, forKey: .transid)
        action = try container.decode(FullyQualifiedEntityName.self, forKey: .action)
        // Required, but may be null.
        guard container.contains(.revision) else {
            throw DecodingError.keyNotFound(CodingKeys.revision, .init(codingPath: container.codingPath, debugDescription: "revision is required (null allowed)"))
        }
        revision = try container.decodeIfPresent(String.self, forKey: .revision)
        user = try container.decode(Identity.self, forKey: .user)
        activationId = try container.decode(ActivationId.self, forKey: .activationId)
        rootControllerIndex = try container.decode(ControllerInstanceId.self, forKey: .rootControllerIndex)
        blocking = try container.decode(Bool.self, forKey: .blocking)
        content = try container.decodeIfPresent(JSONValue.self, forKey: .content)
        initArgs = try container.decode([String].self, forKey: .initArgs)
        lockedArgs = try container.decode([String: String].self, forKey: .lockedArgs)
        cause = try container.decodeIfPresent(ActivationId.self, forKey: .cause)
        traceContext = try container.decodeIfPresent([String: String].self, forKey: .traceContext)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(transid, forKey: .transid)
        try container.encode(action, forKey: .action)
        try container.encode(revision, forKey: .revision)  // explicit null, as upstream writes it
        try container.encode(user, forKey: .user)
        try container.encode(activationId, forKey: .activationId)
        try container.encode(rootControllerIndex, forKey: .rootControllerIndex)
        try container.encode(blocking, forKey: .blocking)
        try container.encodeIfPresent(content, forKey: .content)
        try container.encode(initArgs, forKey: .initArgs)
        try container.encode(lockedArgs, forKey: .lockedArgs)
        try container.encodeIfPresent(cause, forKey: .cause)
        try container.encodeIfPresent(traceContext, forKey: .traceContext)
    }
}

extension ActivationMessage {
    /// The parameters named in `initArgs`: they go to `/init`'s `env`.
    public var initEnvironment: JSONValue {
        var env: [String: JSONValue] = [:]
        for name in initArgs {
            if let value = content?[name] { env[name] = value }
        }
        return .object(env)
    }

    /// The value `/run` gets: `content` without the `initArgs` (upstream's ContainerProxy
    /// partitions the arguments the same way).
    public var runValue: JSONValue {
        guard case .object(var fields) = content ?? [:] else { return content ?? [:] }
        for name in initArgs { fields[name] = nil }
        return .object(fields)
    }
}

extension ActivationMessage {
    /// The message as ``WhiskMessageCoding/encode(_:)`` writes it, but `content`'s numbers as
    /// they were given (`1.0` stays `1.0`; Foundation's encoder would write `1`).
    public func encodedKeepingLiterals() throws -> Data {
        var bare = self
        bare.content = nil
        var data = try WhiskMessageCoding.encode(bare)
        guard let content else { return data }
        guard data.last == UInt8(ascii: "}") else { throw WhiskMessageError(.malformed, "an encoded ActivationMessage does not end its object") }
        data.removeLast()
        data.append(contentsOf: Array(#","content":"#.utf8))
        data.append(content.literalJSON)
        data.append(UInt8(ascii: "}"))
        return data
    }
}
