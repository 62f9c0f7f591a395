import WhiskKafka
import WhiskMessages

/// The controller's settings; `whisk-controller` fills them from flags and the environment.
public struct ControllerConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 3233
    /// Names the `completed{id}` topic this controller consumes.
    public var controllerID = "0"
    public var kafka: KafkaClientConfiguration
    /// Prepended to every topic name; lets tests share a broker. Empty in production (upstream names).
    public var topicPrefix = ""
    /// SQLite file; nil keeps the store in memory.
    public var databasePath: String?
    /// Largest invoke payload (OpenWhisk's default is 1 MiB).
    public var payloadLimit = 1_048_576
    /// How long a blocking invoke waits before answering 202 (OpenWhisk: 60 s).
    public var blockingTimeout: Duration = .seconds(60)
    /// No ping for this long marks an invoker offline (OpenWhisk: 10 s).
    public var invokerOfflineTimeout: Duration = .seconds(10)
    /// A reserved slot is released this long after the action's own timeout if no completion came.
    public var slotGrace: Duration = .seconds(60)
    /// An activation still without a record this long after its deadline (timeout + slot grace)
    /// gets a whisk-error record even if its invoker looks healthy; one on an offline invoker
    /// gets it at the deadline.
    public var abandonAfter: Duration = .seconds(300)
    /// Shared secret of the internal endpoints (code for invokers, namespace administration).
    public var internalToken: String
    /// The namespace that exists out of the box, with OpenWhisk's well-known guest key.
    public var guest = NamespaceIdentity(
        name: "guest", uuid: "23bc46b1-71f6-4ed5-8c54-816aa4f8c502",
        key: "123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
    )
    public var maxSequenceLength = 50
    /// An invoker silent this long has its address-map entries dropped.
    public var addressMapTimeout: Duration = .seconds(3)
    /// How often every namespace's full map is published anyway (anti-entropy); invokers ask
    /// for the snapshots they need, so this can be long.
    public var addressMapSnapshotInterval: Duration = .seconds(30)
    /// The kinds actions may have and their families' defaults.
    public var runtimes = RuntimeManifest.builtIn
    /// The manifest's kinds, sequences and blackbox images.
    public var supportedKinds: Set<String> { Set(runtimes.kinds + ["sequence", "blackbox"]) }

    public init(kafka: KafkaClientConfiguration, internalToken: String) {
        self.kafka = kafka
        self.internalToken = internalToken
    }

    func topic(_ name: String) -> String { topicPrefix + name }
}
