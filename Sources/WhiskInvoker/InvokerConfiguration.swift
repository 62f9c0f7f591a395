import WhiskKafka
import WhiskMessages

/// The invoker's settings; `whisk-invoker` fills them from flags and the environment.
public struct InvokerConfiguration: Sendable {
    public var instance: Int
    public var userMemory: ByteSize = .megabytes(2048)
    public var kafka: KafkaClientConfiguration
    /// Prepended to every topic name; empty in production (upstream names).
    public var topicPrefix = ""
    /// Where the default code source fetches action code.
    public var controllerURL = "http://127.0.0.1:3233"
    public var internalToken: String
    public var dockerSocket = "/var/run/docker.sock"
    /// Runtime image per kind.
    public var runtimeImages: [String: String] = ["python:3": "whiskmesh/python:3"]
    /// Stem cells kept ready per kind.
    public var prewarmCount: [String: Int] = ["python:3": 1]
    /// The bridge network that carries invoker→container traffic; containers on it cannot reach
    /// each other (inter-container communication off).
    public var actionNetwork = "whiskmesh-actions"
    public var idleTimeout: Duration = .seconds(600)
    /// How often the pool removes expired containers and tops its stem cells up to what it wants
    /// (a stem cell taken by an activation is replaced at once, not at the next pass).
    public var maintenanceInterval: Duration = .seconds(5)
    /// Concurrent container creations (OpenWhisk's docker parallel-runs default is 10).
    public var maxConcurrentCreates = 10
    /// An activation (without an instance ID) that finds its action's containers busy may wait for
    /// one instead of a cold start, when runs are short (see ``ContainerPool/acquire``).
    public var waitForBusyContainers = true
    /// What a cold start is taken to cost until one was measured.
    public var coldStartGuess: Duration = .seconds(1)
    /// Largest result an action may return (OpenWhisk's default 1 MiB).
    public var resultLimit = 1_048_576
    /// Extra labels on every container (tests label what they create).
    public var extraLabels: [String: String] = [:]
    public var heartbeatInterval: Duration = .seconds(1)
    /// At most one heartbeat per window carries address-map changes: a change after a quiet
    /// spell goes at once, the changes of a burst go together, hence one delta for the controller
    /// to publish and for every invoker to read and write (each such message cost the broker
    /// about a millisecond of CPU here).
    public var addressMapBatchWindow: Duration = .milliseconds(25)
    /// How long SIGTERM lets running activations finish before the invoker removes their
    /// containers, records them as ended by the shutdown and acknowledges them.
    public var shutdownGrace: Duration = .seconds(30)
    /// An activation accepted longer ago than this (its transaction id's start) is checked
    /// against the store before it runs: the controller may have given up on it and recorded why.
    public var recheckAfter: Duration = .seconds(20)
    /// How often the invoker commits the position below which every activation of `invokerN`
    /// finished. One commit per activation was a broker request each; a crash re-reads at most
    /// this much more, and what it re-reads is checked against the store before it runs.
    public var commitInterval: Duration = .milliseconds(100)
    /// When set, the pool writes the ids and states of its containers here after every change
    /// (tests compare it with Docker: no leaked and no phantom containers).
    public var poolStateFile: String?

    /// Attach every action container to its namespace's overlay and publish address maps.
    public var overlayEnabled = true
    /// Address pool for the namespaces' overlays, and the size of each one's block (a /20 holds
    /// 4,094 instances; Docker's default /24 only ~250).
    public var overlaySubnetPool = "10.128.0.0/9"
    public var overlayPrefixLength = 20
    /// Overlay names are this prefix, the namespace and a hash (tests use their own prefix).
    public var overlayNamePrefix = "whiskmesh-ns-"
    /// Concurrent `docker network connect` calls.
    public var maxConcurrentAttaches = 16
    /// Host directory with one folder per namespace holding `map.json`.
    public var addressMapDirectory = "/var/lib/whiskmesh/addressmap"
    /// The same directory as the Docker host sees it (differs when the invoker runs in a container).
    public var addressMapHostDirectory: String?
    /// Where the map's folder appears inside action containers.
    public static let addressMapMountPoint = "/var/run/whisk/addressmap"
    /// Stem cells kept ready (attached, map mounted) for each recently active namespace.
    public var prewarmPerNamespace = 1
    /// How many recently active namespaces get stem cells, and for how long after their last activation.
    public var prewarmNamespaces = 4
    public var prewarmNamespaceWindow: Duration = .seconds(300)
    /// A recently active namespace gets as many stem cells as its largest burst of cold starts
    /// (those within `burstWindow` of each other) had, up to this many (never fewer than
    /// `prewarmPerNamespace`; none when that is 0). Without the overlay the same holds for a kind
    /// (never fewer than its `prewarmCount`, none when that is 0) while its last cold start is
    /// within `prewarmNamespaceWindow`: upstream's reactive stem cells.
    public var prewarmBurstLimit = 8
    /// 2 s: cold starts further apart are each served by the namespace's own stem cell, which is
    /// replaced at once (with 10 s, a warm-up and a new action's first activation 3 s later made a
    /// "burst" of two, whose second stem cell was then made under a single client's load).
    public var burstWindow: Duration = .seconds(2)
    /// The stem cells beyond `prewarmPerNamespace` (those sized to a burst) are made only once no
    /// activation has waited for a container, or started cold, for this long: made while the
    /// burst's load still ran, they took its CPU (at 64 clients a quarter of the steady rate).
    public var prewarmBurstQuiet: Duration = .seconds(1)

    public init(instance: Int, kafka: KafkaClientConfiguration, internalToken: String) {
        self.instance = instance
        self.kafka = kafka
        self.internalToken = internalToken
    }

    public var instanceId: InvokerInstanceId {
        InvokerInstanceId(instance: instance, userMemory: userMemory, uniqueName: String(instance))
    }

    func topic(_ name: String) -> String { topicPrefix + name }

    var containerLabels: [String: String] {
        var labels = extraLabels
        labels["org.whiskmesh.managed"] = "true"
        labels["org.whiskmesh.invoker"] = String(instance)
        labels["org.whiskmesh.deployment"] = deployment
        return labels
    }

    /// Names this deployment on a shared Docker host (its topic prefix, or "default"), so that
    /// invoker N of one deployment never touches the containers of invoker N of another.
    var deployment: String { topicPrefix.isEmpty ? "default" : topicPrefix }

    /// Docker label filters that select exactly this invoker's containers.
    var ownContainerFilters: [String] {
        ["org.whiskmesh.invoker=\(instance)", "org.whiskmesh.deployment=\(deployment)"]
    }
}
