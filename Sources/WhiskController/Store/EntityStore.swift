import WhiskMessages

/// A namespace and the `uuid:key` credentials that authenticate as it.
public struct NamespaceIdentity: Sendable, Hashable, Codable {
    public var name: String
    public var uuid: String
    public var key: String

    public init(name: String, uuid: String, key: String) {
        self.name = name
        self.uuid = uuid
        self.key = key
    }

    public var authKey: String { "\(uuid):\(key)" }

    /// The `user` of ActivationMessages sent on this namespace's behalf.
    public var identity: Identity {
        // A valid EntityName is checked when the namespace is created.
        Identity(
            subject: Subject(namespace: name),
            namespace: Identity.Namespace(name: EntityName(name) ?? EntityName("guest")!, uuid: uuid),
            authkey: ["api_key": .string(authKey)]
        )
    }
}

/// An action's limits: timeout in ms, memory and logs in MB.
public struct ActionLimits: Sendable, Hashable, Codable {
    public var timeout: Int
    public var memory: Int
    public var logs: Int
    public var concurrency: Int

    public init(timeout: Int = 60_000, memory: Int = 256, logs: Int = 10, concurrency: Int = 1) {
        self.timeout = timeout
        self.memory = memory
        self.logs = logs
        self.concurrency = concurrency
    }

    public var json: JSONValue {
        ["timeout": .int(Int64(timeout)), "memory": .int(Int64(memory)), "logs": .int(Int64(logs)), "concurrency": .int(Int64(concurrency))]
    }

    /// What an action may ask for (upstream's system defaults; concurrency 1 only).
    public static let timeoutRange = 100...300_000
    public static let memoryRange = 128...2048
    public static let logsRange = 0...10
    public static let concurrencyRange = 1...1
}

/// What an action runs: code of a kind, or a sequence of other actions.
public struct ActionExec: Sendable, Hashable, Codable {
    public var kind: String
    public var code: String?
    public var binary: Bool?
    public var main: String?
    public var image: String?
    /// Fully qualified names, for kind `sequence`.
    public var components: [String]?

    public init(kind: String, code: String? = nil, binary: Bool? = nil, main: String? = nil, image: String? = nil, components: [String]? = nil) {
        self.kind = kind
        self.code = code
        self.binary = binary
        self.main = main
        self.image = image
        self.components = components
    }

    public var isSequence: Bool { kind == "sequence" }
}

/// An action as the REST API shows it (OpenWhisk's WhiskAction document).
public struct ActionDocument: Sendable, Hashable, Codable {
    public var namespace: String
    public var name: String
    public var version: SemVer
    public var publish: Bool
    public var exec: ActionExec
    public var parameters: [Parameter]
    public var annotations: [Parameter]
    public var limits: ActionLimits
    /// Epoch milliseconds of the last update.
    public var updated: Int64
    /// Changes on every update; invokers cache code by it.
    public var rev: String

    enum CodingKeys: String, CodingKey {
        case namespace, name, version, publish, exec, parameters, annotations, limits, updated
        case rev = "_rev"
    }

    public init(namespace: String, name: String, version: SemVer, publish: Bool, exec: ActionExec, parameters: [Parameter],
                annotations: [Parameter], limits: ActionLimits, updated: Int64, rev: String) {
        self.namespace = namespace
        self.name = name
        self.version = version
        self.publish = publish
        self.exec = exec
        self.parameters = parameters
        self.annotations = annotations
        self.limits = limits
        self.updated = updated
        self.rev = rev
    }

    public var fullyQualifiedName: String { "\(namespace)/\(name)" }
}

/// What a package binding refers to: another (usually shared) package.
public struct PackageBinding: Sendable, Hashable, Codable {
    public var namespace: String
    public var name: String

    public init(namespace: String, name: String) {
        self.namespace = namespace
        self.name = name
    }

    public var fullyQualifiedName: String { "\(namespace)/\(name)" }
}

/// A package as the REST API shows it (OpenWhisk's WhiskPackage document): a folder of actions
/// with parameters they inherit, or a binding to another package (`binding` set).
public struct PackageDocument: Sendable, Hashable, Codable {
    public var namespace: String
    public var name: String
    public var version: SemVer
    public var publish: Bool
    public var binding: PackageBinding?
    public var parameters: [Parameter]
    public var annotations: [Parameter]
    public var updated: Int64
    public var rev: String

    enum CodingKeys: String, CodingKey {
        case namespace, name, version, publish, binding, parameters, annotations, updated
        case rev = "_rev"
    }

    public init(namespace: String, name: String, version: SemVer = SemVer(), publish: Bool = false, binding: PackageBinding? = nil,
                parameters: [Parameter] = [], annotations: [Parameter] = [], updated: Int64 = 0, rev: String = "") {
        self.namespace = namespace
        self.name = name
        self.version = version
        self.publish = publish
        self.binding = binding
        self.parameters = parameters
        self.annotations = annotations
        self.updated = updated
        self.rev = rev
    }

    /// Upstream writes no binding as `{}`.
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        namespace = try container.decode(String.self, forKey: .namespace)
        name = try container.decode(String.self, forKey: .name)
        version = try container.decode(SemVer.self, forKey: .version)
        publish = try container.decode(Bool.self, forKey: .publish)
        binding = try? container.decodeIfPresent(PackageBinding.self, forKey: .binding)
        parameters = try container.decodeIfPresent([Parameter].self, forKey: .parameters) ?? []
        annotations = try container.decodeIfPresent([Parameter].self, forKey: .annotations) ?? []
        updated = try container.decodeIfPresent(Int64.self, forKey: .updated) ?? 0
        rev = try container.decodeIfPresent(String.self, forKey: .rev) ?? ""
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(namespace, forKey: .namespace)
        try container.encode(name, forKey: .name)
        try container.encode(version, forKey: .version)
        try container.encode(publish, forKey: .publish)
        if let binding { try container.encode(binding, forKey: .binding) } else { try container.encode([String: String](), forKey: .binding) }
        try container.encode(parameters, forKey: .parameters)
        try container.encode(annotations, forKey: .annotations)
        try container.encode(updated, forKey: .updated)
        try container.encode(rev, forKey: .rev)
    }

    public var fullyQualifiedName: String { "\(namespace)/\(name)" }
}

/// A trigger (OpenWhisk's WhiskTrigger): a named event source whose firing activates the
/// actions of its active rules. `rules` is filled in from the rules when it is shown.
public struct TriggerDocument: Sendable, Hashable, Codable {
    public var namespace: String
    public var name: String
    public var version: SemVer
    public var publish: Bool
    public var parameters: [Parameter]
    public var annotations: [Parameter]
    public var limits: JSONValue
    public var updated: Int64
    public var rev: String

    enum CodingKeys: String, CodingKey {
        case namespace, name, version, publish, parameters, annotations, limits, updated
        case rev = "_rev"
    }

    public init(namespace: String, name: String, version: SemVer = SemVer(), publish: Bool = false, parameters: [Parameter] = [],
                annotations: [Parameter] = [], limits: JSONValue = [:], updated: Int64 = 0, rev: String = "") {
        self.namespace = namespace
        self.name = name
        self.version = version
        self.publish = publish
        self.parameters = parameters
        self.annotations = annotations
        self.limits = limits
        self.updated = updated
        self.rev = rev
    }

    public var fullyQualifiedName: String { "\(namespace)/\(name)" }
}

/// A rule (OpenWhisk's WhiskRule): when its trigger fires and it is active, its action runs.
public struct RuleDocument: Sendable, Hashable, Codable {
    public enum Status: String, Sendable, Codable { case active, inactive }

    public var namespace: String
    public var name: String
    public var version: SemVer
    public var publish: Bool
    public var status: Status
    public var trigger: FullyQualifiedEntityName
    public var action: FullyQualifiedEntityName
    public var annotations: [Parameter]
    public var updated: Int64
    public var rev: String

    enum CodingKeys: String, CodingKey {
        case namespace, name, version, publish, status, trigger, action, annotations, updated
        case rev = "_rev"
    }

    public init(namespace: String, name: String, version: SemVer = SemVer(), publish: Bool = false, status: Status = .active,
                trigger: FullyQualifiedEntityName, action: FullyQualifiedEntityName, annotations: [Parameter] = [], updated: Int64 = 0, rev: String = "") {
        self.namespace = namespace
        self.name = name
        self.version = version
        self.publish = publish
        self.status = status
        self.trigger = trigger
        self.action = action
        self.annotations = annotations
        self.updated = updated
        self.rev = rev
    }

    public var fullyQualifiedName: String { "\(namespace)/\(name)" }
}

/// A store for namespaces, actions and activations.
///
/// The controller talks only to this protocol, so a networked store can replace the embedded one.
public protocol EntityStore: Sendable {
    func identity(uuid: String, key: String) async throws -> NamespaceIdentity?
    func namespace(named name: String) async throws -> NamespaceIdentity?
    /// Creates a namespace with fresh credentials, or with `identity`'s when given.
    func createNamespace(_ name: String, identity: NamespaceIdentity?) async throws -> NamespaceIdentity
    func namespaces() async throws -> [String]

    /// Stores `action`; without `overwrite` an existing action is a conflict.
    func putAction(_ action: ActionDocument, overwrite: Bool) async throws -> ActionDocument
    func action(namespace: String, name: String) async throws -> ActionDocument?
    func actions(namespace: String, limit: Int, skip: Int) async throws -> [ActionDocument]
    func deleteAction(namespace: String, name: String) async throws -> ActionDocument?

    /// Stores `package`; without `overwrite` an existing package is a conflict.
    func putPackage(_ package: PackageDocument, overwrite: Bool) async throws -> PackageDocument
    func package(namespace: String, name: String) async throws -> PackageDocument?
    func packages(namespace: String, limit: Int, skip: Int, publicOnly: Bool) async throws -> [PackageDocument]
    /// Deletes the package and, with `withActions`, the actions in it, in one transaction.
    func deletePackage(namespace: String, name: String, withActions: Bool) async throws -> PackageDocument?

    /// Stores `trigger`; without `overwrite` an existing one is a conflict.
    func putTrigger(_ trigger: TriggerDocument, overwrite: Bool) async throws -> TriggerDocument
    func trigger(namespace: String, name: String) async throws -> TriggerDocument?
    func triggers(namespace: String, limit: Int, skip: Int) async throws -> [TriggerDocument]
    /// Deletes the trigger; its rules stay, inactive.
    func deleteTrigger(namespace: String, name: String) async throws -> TriggerDocument?

    /// Stores `rule`; without `overwrite` an existing one is a conflict.
    func putRule(_ rule: RuleDocument, overwrite: Bool) async throws -> RuleDocument
    func rule(namespace: String, name: String) async throws -> RuleDocument?
    func rules(namespace: String, limit: Int, skip: Int) async throws -> [RuleDocument]
    /// The rules whose trigger is `trigger` (`ns/name`).
    func rules(trigger: String) async throws -> [RuleDocument]
    func deleteRule(namespace: String, name: String) async throws -> RuleDocument?

    /// Stores activations' records, in order and in one transaction (a busy controller's acks,
    /// a batch at a time), and forgets them as pending. The first record of an activation stays,
    /// except that a `provisional` one (written by the controller when it gave up waiting) yields
    /// to a real record that arrives later.
    func storeActivations(_ records: [(activation: WhiskActivation, provisional: Bool)]) async throws
    /// The same, calling `whenOrdered` as soon as every read that starts after the call sees the
    /// records (possibly before they are written): a blocking caller can be answered then
    /// without the write on its path, and still find the record if it asks for it next.
    /// Called at most once, and possibly when the write then fails (the error is still thrown).
    func storeActivations(_ records: [(activation: WhiskActivation, provisional: Bool)], whenOrdered: @escaping @Sendable () -> Void) async throws
    func activation(namespace: String, id: ActivationId) async throws -> WhiskActivation?
    func activations(_ query: ActivationQuery) async throws -> [WhiskActivation]

    /// Remembers an accepted activation until its record is stored, across controller restarts
    /// (a no-op when the record is there already).
    func addPending(_ pending: PendingActivation) async throws
    /// Forgets a pending activation that was not accepted after all.
    func forgetPending(_ activationId: ActivationId) async throws
    /// The accepted activations of `controller` that have no record yet and whose deadline
    /// (epoch milliseconds) is at or before `dueBy`.
    func pendingActivations(controller: String, dueBy: Int64) async throws -> [PendingActivation]
}

extension EntityStore {
    /// Calls `whenOrdered` once the records are stored: right for any store.
    public func storeActivations(_ records: [(activation: WhiskActivation, provisional: Bool)], whenOrdered: @escaping @Sendable () -> Void) async throws {
        try await storeActivations(records)
        whenOrdered()
    }

    public func storeActivation(_ activation: WhiskActivation) async throws {
        try await storeActivation(activation, provisional: false)
    }

    public func storeActivation(_ activation: WhiskActivation, provisional: Bool) async throws {
        try await storeActivations([(activation, provisional)])
    }
}

/// An accepted activation whose record has not been stored yet.
public struct PendingActivation: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable {
        /// Published to an invoker's topic.
        case action
        /// Run by the controller itself, component after component.
        case sequence
    }
    public var activationId: ActivationId
    public var kind: Kind
    /// The caller's namespace (where the record goes).
    public var namespace: String
    /// The action's fully qualified name, `namespace/name`.
    public var action: String
    public var version: SemVer
    /// The invoker it was published to (actions only).
    public var invoker: Int?
    /// The controller that accepted it.
    public var controller: String
    /// The sequence it is a component of.
    public var cause: ActivationId?
    /// Epoch milliseconds.
    public var accepted: Int64
    /// Epoch milliseconds after which the controller may give up waiting (see ``PendingVerdict``);
    /// `Int64.max` for sequences, which the controller's own task ends.
    public var deadline: Int64

    public init(activationId: ActivationId, kind: Kind, namespace: String, action: String, version: SemVer, invoker: Int?,
                controller: String, cause: ActivationId? = nil, accepted: Int64, deadline: Int64) {
        self.cause = cause
        self.activationId = activationId
        self.kind = kind
        self.namespace = namespace
        self.action = action
        self.version = version
        self.invoker = invoker
        self.controller = controller
        self.accepted = accepted
        self.deadline = deadline
    }
}

/// Filters of `GET /namespaces/{ns}/activations`.
public struct ActivationQuery: Sendable {
    public var namespace: String
    public var name: String?
    public var limit: Int = 30
    public var skip: Int = 0
    /// Epoch milliseconds, inclusive.
    public var since: Int64?
    public var upto: Int64?

    public init(namespace: String, name: String? = nil, limit: Int = 30, skip: Int = 0, since: Int64? = nil, upto: Int64? = nil) {
        self.namespace = namespace
        self.name = name
        self.limit = limit
        self.skip = skip
        self.since = since
        self.upto = upto
    }
}

/// A store failure the API maps to a status code.
public struct StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable { case conflict, notFound, invalid }
    public var kind: Kind
    public var message: String
    public var description: String { message }

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}
