import CoreMetrics
import Hummingbird
import NIOCore
import Prometheus
import Synchronization
import WhiskMessages

/// The platform's metrics: recorded through swift-metrics (a no-op until an executable
/// bootstraps it), exposed by controller and invokers at `/metrics` in Prometheus's text format.
///
/// Names follow upstream's user-events metrics where they overlap (`openwhisk_action_*` there):
/// - `whisk_activations_total{kind,status}`: ended activations;
/// - `whisk_activation_wait_seconds`, `_init_seconds`, `_run_seconds{kind}`: from the record
///   (`waitTime`, `initTime`, `duration`), and on the controller `_end_to_end_seconds{kind}`
///   (accepted → record handled);
/// - `whisk_containers{state}` (invoker): warm, prewarmed (stem cells), busy;
/// - `whisk_addressmap_entries`: entries of the global map this process holds;
///   `whisk_addressmap_publication_lag_seconds` (invoker): an entry's start at its invoker →
///   its map file written here;
/// - `whisk_kafka_consumer_lag{topic}`: messages behind the partition's end after each read.
public enum WhiskMetrics {
    /// Bootstraps swift-metrics with a Prometheus registry (once per process) and returns it.
    public static func bootstrapPrometheus() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
            .seconds(10), .seconds(30), .seconds(60), .seconds(300),
        ]
        MetricsSystem.bootstrap(factory)
        return registry
    }

    /// Adds `GET /metrics` to `router`.
    public static func addRoute<Context: RequestContext>(to router: Router<Context>, registry: PrometheusCollectorRegistry) {
        router.get("/metrics") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
    }

    /// Metric handles, made once per name and labels: making one asks the registry under its lock
    /// and builds the label list, several times per activation on controller and invoker. (A
    /// handle made before ``bootstrapPrometheus()`` stays a no-op: the executables bootstrap first.)
    private static let counters = Mutex<[String: CoreMetrics.Counter]>([:])
    private static let timers = Mutex<[String: CoreMetrics.Timer]>([:])
    private static let gauges = Mutex<[String: CoreMetrics.Gauge]>([:])

    /// The handle of `label` and `dimensions` in `cache`, made by `make` the first time.
    private static func handle<Handle>(_ cache: borrowing Mutex<[String: Handle]>, _ label: String, _ dimensions: [(String, String)],
                                       make: (String, [(String, String)]) -> Handle) -> Handle {
        cache.withLock { handles in
            let key = dimensions.reduce(label) { "\($0)|\($1.0)=\($1.1)" }
            if let handle = handles[key] { return handle }
            let handle = make(label, dimensions)
            handles[key] = handle
            return handle
        }
    }

    static func counter(_ label: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Counter {
        handle(counters, label, dimensions) { CoreMetrics.Counter(label: $0, dimensions: $1) }
    }

    static func timer(_ label: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Timer {
        handle(timers, label, dimensions) { CoreMetrics.Timer(label: $0, dimensions: $1) }
    }

    static func gauge(_ label: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Gauge {
        handle(gauges, label, dimensions) { CoreMetrics.Gauge(label: $0, dimensions: $1) }
    }

    /// Records an ended activation from its record.
    public static func recordActivation(_ activation: WhiskActivation) {
        let kind = activation.annotations["kind"]?.stringValue ?? "unknown"
        counter("whisk_activations_total", [("kind", kind), ("status", statusLabel(activation.response.status))]).increment()
        if let wait = activation.annotations["waitTime"]?.int64Value {
            timer("whisk_activation_wait_seconds", [("kind", kind)]).recordMilliseconds(wait)
        }
        if let initTime = activation.annotations["initTime"]?.int64Value {
            timer("whisk_activation_init_seconds", [("kind", kind)]).recordMilliseconds(initTime)
        }
        timer("whisk_activation_run_seconds", [("kind", kind)]).recordMilliseconds(activation.duration ?? max(activation.end - activation.start, 0))
    }

    /// Records the controller's view of an activation: accepted (its transaction's start) → ended.
    public static func recordEndToEnd(milliseconds: Int64, kind: String) {
        timer("whisk_activation_end_to_end_seconds", [("kind", kind)]).recordMilliseconds(max(milliseconds, 0))
    }

    public static func setContainers(warm: Int, prewarmed: Int, busy: Int) {
        gauge("whisk_containers", [("state", "warm")]).record(warm)
        gauge("whisk_containers", [("state", "prewarmed")]).record(prewarmed)
        gauge("whisk_containers", [("state", "busy")]).record(busy)
    }

    public static func setAddressMapEntries(_ count: Int) {
        gauge("whisk_addressmap_entries").record(count)
    }

    public static func recordPublicationLag(milliseconds: Int64) {
        timer("whisk_addressmap_publication_lag_seconds").recordMilliseconds(max(milliseconds, 0))
    }

    public static func setConsumerLag(topic: String, _ lag: Int64) {
        gauge("whisk_kafka_consumer_lag", [("topic", topic)]).record(max(lag, 0))
    }

    static func statusLabel(_ status: ActivationResponse.Status) -> String {
        switch status {
        case .success: "success"
        case .applicationError: "application_error"
        case .developerError: "developer_error"
        case .whiskError: "whisk_error"
        }
    }
}
