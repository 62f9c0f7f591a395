import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import WhiskController
import WhiskDaemonOptions
import WhiskKafka
import WhiskMessages
import WhiskMetrics

/// Starts the controller: REST API on --port, Kafka consumers, load balancer.
@main
struct ControllerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "whisk-controller", abstract: "The WhiskMesh controller.")

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port of the REST API.") var port = 3233
    @Option(help: "Controller id (names the completed<id> topic).") var id = "0"
    @OptionGroup var kafkaOptions: KafkaOptions
    @Option(help: "SQLite database file (':memory:' keeps everything in memory).") var database = ".local/controller.db"
    @Option(help: "Prefix for every topic name (tests).") var topicPrefix = ProcessInfo.processInfo.environment["WHISK_TOPIC_PREFIX"] ?? ""
    @Option(help: "Seconds without a ping before an invoker is offline.") var invokerTimeout = 10.0
    @Option(help: "Seconds a blocking invoke waits before answering 202.") var blockingTimeout = 60.0
    @Option(help: "Largest invoke payload in bytes.") var payloadLimit = 1_048_576
    @Option(help: "Seconds after an action's timeout at which its slot is released without a result; an activation whose invoker is offline then gets a whisk-error record.") var slotGrace = 60.0
    @Option(help: "Seconds after that deadline at which an activation without a result gets a whisk-error record even if its invoker looks healthy.") var abandonAfter = 300.0
    @Option(help: "Seconds without a ping before an invoker's address-map entries are dropped.") var addressMapTimeout = 3.0
    @Option(help: "Seconds between full address-map refreshes (invokers ask for snapshots when they need one).") var addressMapSnapshotInterval = 30.0
    @Option(help: "Log level.") var logLevel = "info"
    @Option(help: "The runtime manifest (upstream's runtimes.json shape): which kinds actions may have. Default: Python only.") var runtimesManifest: String?

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "whisk.controller")
        guard let token = ProcessInfo.processInfo.environment["WHISK_INTERNAL_TOKEN"], !token.isEmpty else {
            throw ValidationError("WHISK_INTERNAL_TOKEN must be set: the shared secret of the internal endpoints")
        }
        var configuration = ControllerConfiguration(
            kafka: kafkaOptions.clientConfiguration(clientID: "controller\(id)"),
            internalToken: token
        )
        configuration.host = host
        configuration.port = port
        configuration.controllerID = id
        configuration.topicPrefix = topicPrefix
        configuration.databasePath = database == ":memory:" ? nil : database
        configuration.invokerOfflineTimeout = .milliseconds(Int(invokerTimeout * 1000))
        configuration.blockingTimeout = .milliseconds(Int(blockingTimeout * 1000))
        configuration.payloadLimit = payloadLimit
        if let runtimesManifest { configuration.runtimes = try RuntimeManifest.load(path: runtimesManifest) }
        guard slotGrace >= 0, abandonAfter >= 0 else { throw ValidationError("--slot-grace and --abandon-after must not be negative") }
        configuration.slotGrace = .milliseconds(Int(slotGrace * 1000))
        configuration.abandonAfter = .milliseconds(Int(abandonAfter * 1000))
        configuration.addressMapTimeout = .milliseconds(Int(addressMapTimeout * 1000))
        configuration.addressMapSnapshotInterval = .milliseconds(Int(addressMapSnapshotInterval * 1000))

        let store = try SQLiteEntityStore(path: configuration.databasePath)
        let controller = try await Controller(configuration: configuration, store: store, logger: logger)
        let app = Application(
            router: ControllerAPI(controller: controller, metrics: WhiskMetrics.bootstrapPrometheus()).buildRouter(),
            configuration: .init(address: .hostname(host, port: port), serverName: "whiskmesh-controller"),
            services: [ControllerService(controller: controller)],
            logger: logger
        )
        logger.info("controller starting", metadata: ["port": "\(port)", "kafka": "\(kafkaOptions.kafka)"])
        // librdkafka's threads must be gone before the process exits (see `RDKafkaClient`).
        try await KafkaLibrary.runDaemon("controller", logger: logger) {
            try await app.runService()
        }
    }
}
