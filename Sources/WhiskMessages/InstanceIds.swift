/// A controller's identity; its `asString` names the `completed{asString}` topic.
public struct ControllerInstanceId: Hashable, Sendable, Codable {
    public var asString: String

    public init?(_ asString: String) {
        guard Self.isValid(asString) else { return nil }
        self.asString = asString
    }

    static func isValid(_ string: String) -> Bool {
        !string.isEmpty && string.count <= 128 && string.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
    }

    /// The topic on which invokers acknowledge this controller's activations.
    public var completionTopic: String { "completed\(asString)" }

    enum CodingKeys: String, CodingKey { case asString, instanceType }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let value = try container.decode(String.self, forKey: .asString)
        guard Self.isValid(value) else {
            throw container.invalid(.asString, "'\(value)' is not a controller id ([a-zA-Z0-9._-], at most 128)")
        }
        if let type = try container.decodeIfPresent(String.self, forKey: .instanceType), type != "controller" {
            throw container.invalid(.instanceType, "expected \"controller\", found \"\(type)\"")
        }
        asString = value
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(asString, forKey: .asString)
        try container.encode("controller", forKey: .instanceType)
    }
}

/// An invoker's identity and capacity, as sent in pings and acknowledgements.
public struct InvokerInstanceId: Hashable, Sendable, Codable, CustomStringConvertible {
    public var instance: Int
    public var userMemory: ByteSize
    public var busyMemory: ByteSize?
    public var tags: [String]
    public var dedicatedNamespaces: [String]
    public var uniqueName: String?
    public var displayedName: String?

    public init(instance: Int, userMemory: ByteSize, uniqueName: String? = nil, displayedName: String? = nil,
                tags: [String] = [], dedicatedNamespaces: [String] = [], busyMemory: ByteSize? = nil) {
        self.instance = instance
        self.userMemory = userMemory
        self.uniqueName = uniqueName
        self.displayedName = displayedName
        self.tags = tags
        self.dedicatedNamespaces = dedicatedNamespaces
        self.busyMemory = busyMemory
    }

    /// The topic this invoker consumes.
    public var topic: String { "invoker\(instance)" }

    /// OpenWhisk's textual form, e.g. `invoker0/0`.
    public var description: String {
        ["invoker\(instance)", uniqueName, displayedName].compactMap { $0 }.joined(separator: "/")
    }

    enum CodingKeys: String, CodingKey {
        case instance, userMemory, busyMemory, instanceType, tags, dedicatedNamespaces, uniqueName, displayedName
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        instance = try container.decode(Int.self, forKey: .instance)
        guard instance >= 0 else { throw container.invalid(.instance, "an invoker instance is not negative") }
        let type = try container.decode(String.self, forKey: .instanceType)
        guard type == "invoker" else { throw container.invalid(.instanceType, "expected \"invoker\", found \"\(type)\"") }
        userMemory = try container.decode(ByteSize.self, forKey: .userMemory)
        busyMemory = try container.decodeIfPresent(ByteSize.self, forKey: .busyMemory)
        tags = try container.decode([String].self, forKey: .tags)
        dedicatedNamespaces = try container.decode([String].self, forKey: .dedicatedNamespaces)
        uniqueName = try container.decodeIfPresent(String.self, forKey: .uniqueName)
        displayedName = try container.decodeIfPresent(String.self, forKey: .displayedName)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(instance, forKey: .instance)
        try container.encode(userMemory, forKey: .userMemory)
        try container.encodeIfPresent(busyMemory, forKey: .busyMemory)
        try container.encode("invoker", forKey: .instanceType)
        try container.encode(tags, forKey: .tags)
        try container.encode(dedicatedNamespaces, forKey: .dedicatedNamespaces)
        try container.encodeIfPresent(uniqueName, forKey: .uniqueName)
        try container.encodeIfPresent(displayedName, forKey: .displayedName)
    }
}
