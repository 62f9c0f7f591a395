import Foundation
import Synchronization
import Logging
import ServiceLifecycle
import WhiskDocker
import WhiskHTTP
import WhiskKafka
import WhiskMessages
import WhiskMetrics

/// The invoker: consumes `invoker{N}`, runs activations in containers, acknowledges on
/// `completed{C}` and pings on `health` every second.
public final class Invoker: Service, Sendable {
    public let configuration: InvokerConfiguration
    let logger: Logger
    let docker: DockerClient
    let http: CurlHTTPClient
    let pool: ContainerPool
    let runner: ActivationRunner
    let codeSource: any ActionCodeSource
    /// What of `invokerN` may be committed: only what finished, in offset order.
    let watermark = Mutex(KafkaCommitWatermark())
    /// The watermark's position last handed to librdkafka (committed every `commitInterval`,
    /// and when the invoker stops).
    let committedPosition = Mutex<Int64?>(nil)
    let drainOver = CancelFlag()
    let producer: KafkaProducer
    let overlays: OverlayNetworks?
    let agent: AddressMapAgent?
    let actionNetwork: ActionNetwork

    public init(configuration: InvokerConfiguration, codeSource: (any ActionCodeSource)? = nil, logger: Logger) throws {
        var logger = logger
        logger[metadataKey: "invoker"] = "\(configuration.instance)"
        self.configuration = configuration
        self.logger = logger
        var dockerConfiguration = DockerClient.Configuration()
        dockerConfiguration.socketPath = configuration.dockerSocket
        self.docker = DockerClient(configuration: dockerConfiguration, logger: logger)
        self.http = CurlHTTPClient()
        let overlays = configuration.overlayEnabled ? OverlayNetworks(docker: docker, configuration: configuration, logger: logger) : nil
        let agent = configuration.overlayEnabled ? AddressMapAgent(configuration: configuration, logger: logger) : nil
        self.overlays = overlays
        self.agent = agent
        let containerLogs = ContainerLogs(docker: docker, logger: logger)
        let http = self.http
        let actionNetwork = ActionNetwork(docker: docker, name: configuration.actionNetwork, logger: logger)
        self.actionNetwork = actionNetwork
        self.pool = ContainerPool(docker: docker, logs: containerLogs, configuration: configuration, overlays: overlays, mapFiles: agent?.files,
                                  actionNetwork: actionNetwork,
                                  closeConnections: { address in
                                      // Any answer will do (the proxies know only POST): the request takes the
                                      // idle kept-alive connection and closes it after.
                                      _ = try? await http.perform(HTTPRequest(method: "GET", url: "http://\(address):8080/", timeout: .milliseconds(500),
                                                                              connectTimeout: .milliseconds(200), closesConnection: true))
                                  },
                                  logger: logger)
        let pool = self.pool
        agent?.onNamespaceActive { namespace in Task { await pool.noteActive(namespace: namespace) } }
        var producerConfiguration = KafkaProducerConfiguration(client: configuration.kafka)
        producerConfiguration.partition = 0  // the platform's topics have one partition (see KafkaProducerConfiguration)
        self.producer = try KafkaProducer(configuration: producerConfiguration, logger: logger)
        let source = codeSource ?? ControllerCodeSource(baseURL: configuration.controllerURL, token: configuration.internalToken, http: http)
        self.codeSource = source
        self.runner = ActivationRunner(configuration: configuration, pool: pool, docker: docker, containerLogs: containerLogs, http: http, codeSource: source,
                                       overlays: overlays, agent: agent, drainOver: drainOver, logger: logger)
    }

    public func run() async throws {
        do {
            try await runUntilShutdown()
        } catch {
            // Started work that failed (the broker or Docker unreachable): what was made goes.
            await producer.close()
            await docker.shutdown()
            await http.shutdown()
            throw error
        }
    }

    private func runUntilShutdown() async throws {
        try await prepare()
        let consumer = try activationConsumer()
        let topic = configuration.topic(configuration.instanceId.topic)
        // What is on the topic now may include activations an earlier run started and did not
        // commit (it crashed): those are checked against the store before they run again.
        let replayEnd: Int64?
        do {
            replayEnd = try await consumer.highWatermark(topic: topic, partition: 0)
        } catch {
            logger.warning("cannot read the topic's end; redelivered activations are not checked", metadata: ["error": "\(error)"])
            replayEnd = nil
        }
        logger.info("invoker ready", metadata: ["topic": "\(topic)"])
        await withDiscardingTaskGroup { group in
            group.addTask { await self.heartbeat() }
            group.addTask { await self.maintainPool() }
            group.addTask { await self.watchContainerDeaths() }
            group.addTask { await self.endDrainAfterGrace() }
            if let agent = self.agent {
                group.addTask { await agent.consume(kafka: self.configuration.kafka) }
            }
            group.addTask {
                while (try? await Task.sleep(for: self.configuration.commitInterval)) != nil {
                    self.commitFinished(consumer, topic: topic)
                }
            }
            // Activations run in their own group, which drains before shutdown completes.
            await withDiscardingTaskGroup { activations in
                await withGracefulShutdownHandler {
                    await self.consume(consumer) { record, message in
                        self.watermark.withLock { $0.start(record.offset) }
                        activations.addTask {
                            if let message {
                                await self.handle(message, mayHaveRun: replayEnd.map { record.offset < $0 } ?? false)
                            }
                            self.finished(record)
                        }
                    }
                } onGracefulShutdown: {
                    consumer.stopConsuming()
                }
            }
            group.cancelAll()
        }
        commitFinished(consumer, topic: topic)
        await consumer.close()
        await pool.removeAll()
        await producer.close()
        await agent?.files.removeAll()
        await docker.shutdown()
        await http.shutdown()
        logger.info("invoker stopped")
    }

    /// A shutdown drains running activations for `shutdownGrace`; then their containers go, so
    /// each ends now with a record that says so, and is acknowledged. Cancelled (nothing to do)
    /// once every activation finished.
    func endDrainAfterGrace() async {
        do {
            try await gracefulShutdown()
            try await Task.sleep(for: configuration.shutdownGrace)
        } catch {
            return
        }
        drainOver.set()
        logger.warning("drain period over: removing the containers of the activations still running",
                       metadata: ["grace": "\(configuration.shutdownGrace)"])
        await pool.removeAll()
    }

    /// Removes leftovers of an earlier run, makes sure the action network and topics exist.
    func prepare() async throws {
        for leftover in try await docker.listContainers(labels: configuration.ownContainerFilters) {
            do {
                try await docker.removeContainer(leftover.id)
            } catch let error as DockerError where error.isConflict {
                // Already being removed.
            }
        }
        // Their containers are gone, so nothing mounts the maps they left.
        await agent?.files.removeLeftovers()
        try await actionNetwork.ensure()
        let admin = try KafkaAdmin(configuration: configuration.kafka, logger: logger)
        try await admin.createTopic(configuration.topic(configuration.instanceId.topic), configs: KafkaAdmin.TopicRole.invoker.configs)
        for topic in ["health", AddressMapAgent.topic] {
            try await admin.createTopic(configuration.topic(topic), configs: KafkaAdmin.TopicRole.control.configs)
        }
        await admin.close()
        await pool.maintain()
    }

    func activationConsumer() throws -> KafkaConsumer {
        var consumerConfiguration = KafkaConsumerConfiguration(
            client: configuration.kafka, groupID: configuration.topic(configuration.instanceId.topic), topics: [configuration.topic(configuration.instanceId.topic)]
        )
        // Invoker N is its topic's only reader by design, so it reads partition 0 directly and
        // resumes after the offset committed for its group: no group join, which takes 3-6 s on
        // Tansu and, when an invoker stopped in the middle of it, stalled the topic for minutes.
        consumerConfiguration.assignment = .init(partitions: [0], start: .committed)
        return try KafkaConsumer(configuration: consumerConfiguration, logger: logger)
    }

    /// Reads activation messages until shutdown and hands each to `start` (nil for a malformed
    /// one, which is logged and skipped). Nothing is committed here: see ``finished(_:)``.
    func consume(_ consumer: KafkaConsumer, start: (KafkaConsumerMessage, ActivationMessage?) -> Void) async {
        while !Task.isCancelled {
            do {
                // What one fetch brought, in one hop from the consumer's thread.
                let batch = try await consumer.nextBatch(limit: 64)
                guard let last = batch.last else { return }
                if let lag = consumer.lag(after: last) { WhiskMetrics.setConsumerLag(topic: last.topic, lag) }
                for record in batch {
                    do {
                        start(record, try WhiskMessageCoding.decode(ActivationMessage.self, from: record.value))
                    } catch {
                        logger.error("malformed activation message skipped", metadata: ["offset": "\(record.offset)", "error": "\(error)"])
                        start(record, nil)
                    }
                }
            } catch {
                logger.error("consumer error; continuing", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Moves the watermark: the position up to where every activation read has finished (run
    /// and acknowledged, or skipped), which ``commitFinished(_:topic:)`` commits.
    func finished(_ record: KafkaConsumerMessage) {
        watermark.withLock { _ = $0.finish(record.offset) }
    }

    /// Commits the watermark's position unless it was committed already, so an invoker that dies
    /// re-reads what it had not finished and at most `commitInterval` of what it had
    /// (at-least-once; the re-read ones are checked against the store). A failed commit is tried
    /// again at the next call. Called by one task at a time (the ticker, then the shutdown).
    func commitFinished(_ consumer: KafkaConsumer, topic: String) {
        guard let position = watermark.withLock({ $0.committed }), position != committedPosition.withLock({ $0 }) else { return }
        do {
            try consumer.commit(topic: topic, partition: 0, nextOffset: position)
            committedPosition.withLock { $0 = position }
        } catch {
            logger.error("cannot commit", metadata: ["offset": "\(position)", "error": "\(error)"])
        }
    }

    /// Runs an activation and sends its acknowledgement. One that an earlier run of this invoker
    /// may have run (`mayHaveRun`), or that waited longer than `recheckAfter` (the controller may
    /// have given up on it), and that already has its record is not run.
    func handle(_ message: ActivationMessage, mayHaveRun: Bool = false) async {
        let age = ActivationRunner.nowMillis - message.transid.start
        if mayHaveRun || age > Int64(configuration.recheckAfter.milliseconds) {
            do {
                if try await codeSource.hasRecord(namespace: message.user.namespace.name.rawValue, activationId: message.activationId) {
                    logger.notice("activation already has its record: not run", metadata: ["activationId": "\(message.activationId)", "redelivered": "\(mayHaveRun)"])
                    return
                }
            } catch {
                logger.warning("cannot tell whether an activation already has its record; running it", metadata: ["activationId": "\(message.activationId)", "error": "\(error)"])
            }
        }
        let activation = await runner.run(message)
        WhiskMetrics.recordActivation(activation)
        let ack = AcknowledgementMessage.combined(
            transid: message.transid, response: .activation(activation),
            isSystemError: activation.response.isWhiskError, instance: configuration.instanceId
        )
        let topic = configuration.topic(message.rootControllerIndex.completionTopic)
        do {
            try await producer.send(topic: topic, value: try WhiskMessageCoding.encode(ack))
        } catch let error as KafkaError where error.code == .messageTooLarge {
            // Upstream shrinks the ack to the bare id because its invoker has stored the record in
            // CouchDB already; here the ack *is* how the record reaches the store, so a bare id
            // would lose it. Send it whole but without logs, and without the result if need be.
            var slim = activation
            slim.logs = ["Logs were dropped: the activation record exceeded Kafka's maximum message size."]
            let withoutLogs = AcknowledgementMessage.combined(transid: message.transid, response: .activation(slim),
                                                              isSystemError: activation.response.isWhiskError, instance: configuration.instanceId)
            do {
                try await producer.send(topic: topic, value: try WhiskMessageCoding.encode(withoutLogs))
            } catch {
                slim.response = .error(.developerError, "The activation record exceeded Kafka's maximum message size.")
                let minimal = AcknowledgementMessage.combined(transid: message.transid, response: .activation(slim),
                                                              isSystemError: false, instance: configuration.instanceId)
                do {
                    try await producer.send(topic: topic, value: try WhiskMessageCoding.encode(minimal))
                } catch {
                    logger.error("cannot send acknowledgement", metadata: ["activationId": "\(message.activationId)", "error": "\(error)"])
                }
            }
        } catch {
            logger.error("cannot send acknowledgement", metadata: ["activationId": "\(message.activationId)", "error": "\(error)"])
        }
    }

    /// A ping every second, and at once (coalesced over a few ms) when the local address map
    /// changed; its changes ride in the ping's `addressMap` field. An error in one tick never
    /// stops the heartbeat; an update lost with it makes the controller ask for a snapshot.
    func heartbeat() async {
        var lastPing = ContinuousClock.now
        while !Task.isCancelled {
            lastPing = .now
            var ping = PingMessage(name: configuration.instanceId, isEnabled: true)
            if let update = agent?.nextUpdate(), let field = try? JSONValue.parse(WhiskMessageCoding.encode(update)) {
                ping.extensions[AddressMapUpdate.pingField] = field
            }
            if let resync = agent?.resyncRequest(), !resync.isEmpty {
                ping.extensions[AddressMapUpdate.resyncField] = .array(resync.map { .string($0) })
            }
            do {
                try await producer.send(topic: configuration.topic("health"), value: try WhiskMessageCoding.encode(ping))
            } catch {
                logger.warning("heartbeat failed; retrying", metadata: ["error": "\(error)"])
            }
            if let agent {
                await agent.trigger.wait(upTo: configuration.heartbeatInterval)
                // At most one ping per batch window: a change after a quiet spell goes at once,
                // the changes of a burst travel together (each ping is a delta the controller
                // publishes and every invoker reads and writes to its map file).
                try? await Task.sleep(until: lastPing + configuration.addressMapBatchWindow, clock: .continuous)
            } else {
                try? await Task.sleep(for: configuration.heartbeatInterval)
            }
        }
    }

    func maintainPool() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.maintenanceInterval)
            await pool.maintain()
        }
    }

    /// Containers that die outside the invoker's control leave the pool at once.
    func watchContainerDeaths() async {
        while !Task.isCancelled {
            do {
                for try await event in docker.containerEvents(actions: ["die"], labels: configuration.ownContainerFilters) {
                    agent?.containerDied(event.containerID)
                    await pool.forget(containerID: event.containerID)
                }
            } catch {
                logger.warning("Docker event stream ended; reconnecting", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}
