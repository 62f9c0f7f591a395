import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import WhiskDaemonOptions
import WhiskInvoker
import WhiskKafka
import WhiskMessages
import WhiskMetrics

/// Starts an invoker with an instance id.
@main
struct InvokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "whisk-invoker", abstract: "A WhiskMesh invoker (drop-in for OpenWhisk's).")

    @Option(help: "Instance id N: consumes invoker<N>.") var id = Int(ProcessInfo.processInfo.environment["WHISK_INVOKER_ID"] ?? "0") ?? 0
    @OptionGroup var kafkaOptions: KafkaOptions
    @Option(help: "Controller base URL, for action code.") var controller = "http://127.0.0.1:3233"
    @Option(help: "Memory for action containers, e.g. 2048 MB.") var userMemory = "2048 MB"
    @Option(help: "Prefix for every topic name (tests).") var topicPrefix = ProcessInfo.processInfo.environment["WHISK_TOPIC_PREFIX"] ?? ""
    @Option(help: "Seconds before an idle container is removed.") var idleTimeout = 600.0
    @Option(help: "Seconds between the pool's maintenance passes (expiry, stem cells sized to recent bursts).") var maintenanceInterval = 5.0
    @Option(help: "At most one heartbeat with address-map changes per this many milliseconds (a burst's changes go as one delta).")
    var addressMapBatchWindow = 25
    @Option(help: "Stem cells kept per kind (and per recently active namespace); default: the runtime manifest's.") var prewarm: Int?
    @Option(help: "The runtime manifest (upstream's runtimes.json shape): each kind's image and stem cells. Default: Python only.") var runtimesManifest: String?
    @Option(help: "Extra container labels, key=value,...") var containerLabels = ProcessInfo.processInfo.environment["WHISK_CONTAINER_LABELS"] ?? ""
    @Option(help: "Folder for the namespaces' map.json files (default .local/addressmap/invoker<N>).") var addressMapDirectory: String?
    @Option(help: "The same folder as the Docker host sees it, when the invoker runs in a container.") var addressMapHostDirectory: String?
    @Option(help: "Address pool for namespace overlays.") var overlayPool = "10.128.0.0/9"
    @Option(help: "Prefix length of each namespace's overlay subnet.") var overlayPrefix = 20
    @Option(help: "Name prefix of namespace overlays.") var overlayNamePrefix = ProcessInfo.processInfo.environment["WHISK_OVERLAY_NAME_PREFIX"] ?? "whiskmesh-ns-"
    @Option(help: "The local bridge network over which the invoker reaches its containers; shared by the invokers of a Docker host.")
    var actionNetwork = "whiskmesh-actions"
    @Option(help: "Concurrent overlay attaches.") var maxAttaches = 16
    @Option(help: "Concurrent container creations.") var maxCreates = 10
    @Option(help: "At most this many stem cells per recently active namespace (without the overlay: per kind), sized to its largest recent burst of cold starts.")
    var prewarmBurstLimit = 8
    @Option(help: "Seconds without an activation waiting for a container or starting cold before the stem cells sized to a burst are made.")
    var prewarmBurstQuiet = 1.0
    @Flag(inversion: .prefixedNo, help: "Let an activation without an instance ID wait for a busy container of its action when runs are short, instead of a cold start each.")
    var waitForBusyContainers = true
    @Flag(inversion: .prefixedNo, help: "Attach containers to namespace overlays and publish address maps.") var overlay = true
    @Option(help: "Seconds SIGTERM lets running activations finish before their containers are removed.") var shutdownGrace = 30.0
    @Option(help: "Seconds after its acceptance at which an activation is checked against the store before it runs (the controller may have recorded it as given up).") var recheckAfter = 20.0
    @Option(help: "A file the pool rewrites after every change with its containers' ids and states (for tests and debugging).") var poolStateFile: String?
    @Option(help: "Port of the invoker's Prometheus endpoint, GET /metrics (off unless given).") var metricsPort: Int?
    @Option(help: "Address the metrics endpoint listens on.") var metricsHost = "127.0.0.1"
    @Option(help: "Log level.") var logLevel = "info"

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "whisk.invoker")
        guard let token = ProcessInfo.processInfo.environment["WHISK_INTERNAL_TOKEN"], !token.isEmpty else {
            throw ValidationError("WHISK_INTERNAL_TOKEN must be set: the shared secret of the controller's internal endpoints")
        }
        guard let memory = ByteSize(userMemory) else { throw ValidationError("'\(userMemory)' is not a size such as 2048 MB") }
        var configuration = InvokerConfiguration(
            instance: id,
            kafka: kafkaOptions.clientConfiguration(clientID: "invoker\(id)"),
            internalToken: token
        )
        configuration.userMemory = memory.inBytes  // upstream's invoker writes its memory in bytes
        configuration.controllerURL = controller
        configuration.topicPrefix = topicPrefix
        configuration.idleTimeout = .milliseconds(Int(idleTimeout * 1000))
        guard maintenanceInterval > 0 else { throw ValidationError("--maintenance-interval must be positive") }
        configuration.maintenanceInterval = .milliseconds(Int(maintenanceInterval * 1000))
        guard (0...1000).contains(addressMapBatchWindow) else { throw ValidationError("--address-map-batch-window must be 0-1000 ms") }
        configuration.addressMapBatchWindow = .milliseconds(addressMapBatchWindow)
        guard shutdownGrace >= 0 else { throw ValidationError("--shutdown-grace must not be negative") }
        configuration.shutdownGrace = .milliseconds(Int(shutdownGrace * 1000))
        guard recheckAfter >= 0 else { throw ValidationError("--recheck-after must not be negative") }
        configuration.recheckAfter = .milliseconds(Int(recheckAfter * 1000))
        configuration.poolStateFile = poolStateFile
        let runtimes = try runtimesManifest.map { try RuntimeManifest.load(path: $0) } ?? .builtIn
        configuration.runtimeImages = runtimes.images
        configuration.prewarmCount = prewarm.map { count in runtimes.stemCells.mapValues { _ in count } } ?? runtimes.stemCells
        configuration.prewarmPerNamespace = prewarm ?? 1
        configuration.overlayEnabled = overlay
        configuration.overlaySubnetPool = overlayPool
        configuration.overlayPrefixLength = overlayPrefix
        configuration.overlayNamePrefix = overlayNamePrefix
        guard !actionNetwork.isEmpty else { throw ValidationError("--action-network must not be empty") }
        configuration.actionNetwork = actionNetwork
        configuration.maxConcurrentAttaches = maxAttaches
        configuration.maxConcurrentCreates = maxCreates
        configuration.prewarmBurstLimit = prewarmBurstLimit
        guard prewarmBurstQuiet >= 0 else { throw ValidationError("--prewarm-burst-quiet must not be negative") }
        configuration.prewarmBurstQuiet = .milliseconds(Int(prewarmBurstQuiet * 1000))
        configuration.waitForBusyContainers = waitForBusyContainers
        let directory = addressMapDirectory ?? FileManager.default.currentDirectoryPath + "/.local/addressmap/invoker\(id)"
        configuration.addressMapDirectory = directory.hasPrefix("/") ? directory : FileManager.default.currentDirectoryPath + "/" + directory
        configuration.addressMapHostDirectory = addressMapHostDirectory
        for pair in containerLabels.split(separator: ",") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ValidationError("container label '\(pair)' is not key=value") }
            configuration.extraLabels[parts[0]] = parts[1]
        }
        var services: [any Service] = []
        if let metricsPort {
            let router = Router()
            WhiskMetrics.addRoute(to: router, registry: WhiskMetrics.bootstrapPrometheus())
            services.append(Application(router: router, configuration: .init(address: .hostname(metricsHost, port: metricsPort), serverName: "whiskmesh-invoker"),
                                        logger: logger))
        }
        let invoker = try Invoker(configuration: configuration, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [invoker] + services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        // librdkafka's threads must be gone before the process exits (see `RDKafkaClient`).
        try await KafkaLibrary.runDaemon("invoker", logger: logger) {
            try await group.run()
        }
    }
}
