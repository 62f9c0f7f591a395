import Foundation

/// A function instance's name in its namespace: 1-128 characters of `[A-Za-z0-9._-]`.
/// Given as a string or an integer (`7` and `"7"` are the same ID, never mangled).
public struct InstanceID: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public let rawValue: String

    public init?(_ string: String) {
        guard !string.isEmpty, string.utf8.count <= 128,
              string.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 46 || $0 == 95 || $0 == 45 }) else {
            return nil
        }
        rawValue = string
    }

    /// The `instanceID` parameter of an invoke: a string, or an integral number.
    public init?(parameter: JSONValue) {
        switch parameter {
        case .string(let string): self.init(string)
        case .int(let value): self.init(String(value))
        case .double(let value) where value.rounded() == value && abs(value) < 1e15: self.init(String(Int64(value)))
        default: return nil
        }
    }

    public static let rule = "1-128 characters of [A-Za-z0-9._-], as a string or an integer"
    public var description: String { rawValue }
    public static func < (lhs: InstanceID, rhs: InstanceID) -> Bool { lhs.rawValue < rhs.rawValue }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        let string = try container.decode(String.self)
        guard let id = InstanceID(string) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(string)' is not an instance ID (\(Self.rule))")
        }
        self = id
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// Where an instance lives: the key of every address map.
public struct InstanceKey: Hashable, Sendable, Codable, Comparable {
    public var namespace: String
    public var instanceID: InstanceID

    public init(namespace: String, instanceID: InstanceID) {
        self.namespace = namespace
        self.instanceID = instanceID
    }

    public static func < (lhs: InstanceKey, rhs: InstanceKey) -> Bool {
        (lhs.namespace, lhs.instanceID) < (rhs.namespace, rhs.instanceID)
    }
}

/// One live instance: its overlay address and the activation that owns the ID.
public struct AddressEntry: Hashable, Sendable, Codable {
    public var namespace: String
    public var instanceID: InstanceID
    public var ip: String
    public var invoker: Int
    public var activationId: ActivationId
    /// Epoch milliseconds when the entry was added.
    public var since: Int64

    public init(namespace: String, instanceID: InstanceID, ip: String, invoker: Int, activationId: ActivationId, since: Int64) {
        self.namespace = namespace
        self.instanceID = instanceID
        self.ip = ip
        self.invoker = invoker
        self.activationId = activationId
        self.since = since
    }

    public var key: InstanceKey { InstanceKey(namespace: namespace, instanceID: instanceID) }
}

/// The address-map field an invoker piggybacks on its PingMessage (extension key `addressMap`):
/// a delta or a full snapshot, numbered per invoker incarnation.
public struct AddressMapUpdate: Hashable, Sendable, Codable {
    public static let pingField = "addressMap"
    /// Ping field in which an invoker asks for snapshots: namespace names, or "*" for all.
    public static let resyncField = "addressMapResync"

    /// Random per invoker process: a restarted invoker is a new incarnation.
    public var incarnation: String
    /// 1, 2, 3, … within the incarnation; a gap makes the controller ask for a snapshot.
    public var seq: UInt64
    /// When true, `added` is the invoker's whole map and `removed` is empty.
    public var snapshot: Bool
    public var added: [AddressEntry]
    public var removed: [InstanceKey]

    public init(incarnation: String, seq: UInt64, snapshot: Bool, added: [AddressEntry], removed: [InstanceKey]) {
        self.incarnation = incarnation
        self.seq = seq
        self.snapshot = snapshot
        self.added = added
        self.removed = removed
    }
}

/// What the controller publishes on the `addressmap` topic for the invokers.
public enum AddressMapPublication: Hashable, Sendable, Codable {
    /// One namespace's changes from `version - 1` to `version`.
    case delta(namespace: String, version: UInt64, added: [AddressEntry], removed: [InstanceID])
    /// One namespace's whole map at `version`.
    case snapshot(namespace: String, version: UInt64, entries: [AddressEntry])
    /// Part `part` (0-based) of `parts` of a map too large for one message; together they are
    /// the namespace's whole map at `version`.
    case snapshotPart(namespace: String, version: UInt64, part: Int, parts: Int, entries: [AddressEntry])
    /// The controller needs invoker `invoker`'s full map in its next heartbeat.
    case snapshotRequest(invoker: Int)
    /// The controller is sending activations of `namespace` (to any invoker; repeated while it
    /// does, at most once a minute): every invoker treats it as recently active and keeps stem
    /// cells on its overlay, so a cold start on an invoker the namespace has not used yet finds one.
    case namespaceActive(namespace: String)

    enum CodingKeys: String, CodingKey { case type, namespace, version, added, removed, entries, invoker, part, parts }

    /// Entries per snapshot message: ~200 bytes each keeps a message far below Kafka's 1 MB default.
    public static let snapshotPartSize = 2_000

    /// Whether this is (part of) a namespace's whole map.
    public var isSnapshot: Bool {
        switch self {
        case .snapshot, .snapshotPart: true
        case .delta, .snapshotRequest, .namespaceActive: false
        }
    }

    /// A namespace's whole map as one `snapshot`, or as `snapshotPart`s when it is large.
    public static func snapshot(namespace: String, version: UInt64, entries: [AddressEntry], partSize: Int = snapshotPartSize) -> [AddressMapPublication] {
        guard entries.count > partSize else { return [.snapshot(namespace: namespace, version: version, entries: entries)] }
        let parts = (entries.count + partSize - 1) / partSize
        return (0..<parts).map { part in
            .snapshotPart(namespace: namespace, version: version, part: part, parts: parts,
                          entries: Array(entries[(part * partSize)..<min(entries.count, (part + 1) * partSize)]))
        }
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(String.self, forKey: .type) {
        case "delta":
            self = .delta(namespace: try container.decode(String.self, forKey: .namespace), version: try container.decode(UInt64.self, forKey: .version),
                          added: try container.decode([AddressEntry].self, forKey: .added), removed: try container.decode([InstanceID].self, forKey: .removed))
        case "snapshot":
            self = .snapshot(namespace: try container.decode(String.self, forKey: .namespace), version: try container.decode(UInt64.self, forKey: .version),
                             entries: try container.decode([AddressEntry].self, forKey: .entries))
        case "snapshotPart":
            let parts = try container.decode(Int.self, forKey: .parts)
            let part = try container.decode(Int.self, forKey: .part)
            guard parts >= 1, parts <= 100_000 else { throw container.invalid(.parts, "parts must be 1...100000") }
            guard (0..<parts).contains(part) else { throw container.invalid(.part, "part must be 0..<parts") }
            self = .snapshotPart(namespace: try container.decode(String.self, forKey: .namespace), version: try container.decode(UInt64.self, forKey: .version),
                                 part: part, parts: parts, entries: try container.decode([AddressEntry].self, forKey: .entries))
        case "snapshotRequest":
            self = .snapshotRequest(invoker: try container.decode(Int.self, forKey: .invoker))
        case "namespaceActive":
            let namespace = try container.decode(String.self, forKey: .namespace)
            guard EntityName.isValid(namespace) else { throw container.invalid(.namespace, "not a valid namespace name") }
            self = .namespaceActive(namespace: namespace)
        case let other:
            throw container.invalid(.type, "unknown address map publication '\(other)'")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .delta(let namespace, let version, let added, let removed):
            try container.encode("delta", forKey: .type)
            try container.encode(namespace, forKey: .namespace)
            try container.encode(version, forKey: .version)
            try container.encode(added, forKey: .added)
            try container.encode(removed, forKey: .removed)
        case .snapshot(let namespace, let version, let entries):
            try container.encode("snapshot", forKey: .type)
            try container.encode(namespace, forKey: .namespace)
            try container.encode(version, forKey: .version)
            try container.encode(entries, forKey: .entries)
        case .snapshotPart(let namespace, let version, let part, let parts, let entries):
            try container.encode("snapshotPart", forKey: .type)
            try container.encode(namespace, forKey: .namespace)
            try container.encode(version, forKey: .version)
            try container.encode(part, forKey: .part)
            try container.encode(parts, forKey: .parts)
            try container.encode(entries, forKey: .entries)
        case .snapshotRequest(let invoker):
            try container.encode("snapshotRequest", forKey: .type)
            try container.encode(invoker, forKey: .invoker)
        case .namespaceActive(let namespace):
            try container.encode("namespaceActive", forKey: .type)
            try container.encode(namespace, forKey: .namespace)
        }
    }
}

/// `map.json` as functions read it: the public contract, schema `whiskmesh.addressmap/v1`.
public struct AddressMapFile: Hashable, Sendable, Codable {
    public static let schemaV1 = "whiskmesh.addressmap/v1"

    public struct Instance: Hashable, Sendable, Codable {
        public var id: String
        public var ip: String
        public var invoker: Int
        public var activationId: String
    }

    public var schema: String
    public var namespace: String
    public var version: UInt64
    public var instances: [Instance]

    public init(namespace: String, version: UInt64, entries: some Sequence<AddressEntry>) {
        schema = Self.schemaV1
        self.namespace = namespace
        self.version = version
        instances = entries.sorted { $0.instanceID < $1.instanceID }.map {
            Instance(id: $0.instanceID.rawValue, ip: $0.ip, invoker: $0.invoker, activationId: $0.activationId.rawValue)
        }
    }
}
