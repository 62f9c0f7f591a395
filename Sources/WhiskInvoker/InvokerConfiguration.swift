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
    /// Concurrent container creations (OpenWhisk's docker parallel-runs default is 10).
    public var maxConcurrentCreates = 10
    /// Largest result an action may return (OpenWhisk's default 1 MiB).
    public var resultLimit = 1_048_576
    /// Extra labels on every container (tests label what they create).
    public var extraLabels: [String: String] = [:]
    public var heartbeatInterval: Duration = .seconds(1)

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
        return labels
    }
}
