import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import WhiskKafka
import WhiskMessages
import WhiskMetrics

/// What an invoke produced: the finished record, or only its id (still running or waited too long).
public enum InvokeOutcome: Sendable {
    case completed(WhiskActivation)
    case accepted(ActivationId)
}

/// The controller's core: publishes activations to invokers, consumes their acks and pings,
/// tracks invoker health and memory slots, and runs sequences.
public final class Controller: Sendable {
    public let configuration: ControllerConfiguration
    public let store: any EntityStore
    let logger: Logger
    let waiters = ActivationWaiters()
    let producer: KafkaProducer
    private let health: Mutex<InvokerHealth>
    private let balancer = Mutex(ShardingBalancer())
    private let jobs: AsyncStream<@Sendable () async -> Void>
    private let jobsContinuation: AsyncStream<@Sendable () async -> Void>.Continuation
    let controllerInstance: ControllerInstanceId
    let addressMap = AddressMapHub()
    /// Held while address-map publications are handed to the producer (keeps their order).
    let publishing = Mutex(())
    private let started = ContinuousClock.now
    /// Epoch milliseconds of this controller's start: a pending sequence accepted before it was
    /// cut short by a restart (sequences run inside the controller).
    let startedMillis = Controller.nowMillis

    public init(configuration: ControllerConfiguration, store: any EntityStore, logger: Logger) async throws {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        guard let instance = ControllerInstanceId(configuration.controllerID) else {
            throw KafkaError(.configuration, "'\(configuration.controllerID)' is not a valid controller id")
        }
        self.controllerInstance = instance
        self.health = Mutex(InvokerHealth(offlineTimeout: configuration.invokerOfflineTimeout))
        var producerConfiguration = KafkaProducerConfiguration(client: configuration.kafka)
        producerConfiguration.partition = 0  // the platform's topics have one partition (see KafkaProducerConfiguration)
        self.producer = try KafkaProducer(configuration: producerConfiguration, logger: logger)
        (jobs, jobsContinuation) = AsyncStream.makeStream(of: (@Sendable () async -> Void).self)
        if try await store.namespace(named: configuration.guest.name) == nil {
            _ = try await store.createNamespace(configuration.guest.name, identity: configuration.guest)
        }
    }

    // MARK: Invoking

    /// Invokes `action` (already resolved) as `identity` with `parameters`.
    public func invoke(_ action: ActionDocument, as identity: NamespaceIdentity, parameters: [String: JSONValue], blocking: Bool,
                       waitFor timeout: Duration? = nil, cause: ActivationId? = nil, binding: EntityPath? = nil,
                       transid: TransactionId = .generate(), placement: Placement? = nil) async throws -> InvokeOutcome {
        if action.exec.isSequence {
            return try await invokeSequence(action, as: identity, parameters: parameters, blocking: blocking, transid: transid)
        }
        let activationId = ActivationId.generate()
        // An instance ID is unique per namespace while its activation is live.
        var claimed: InstanceKey?
        if let parameter = parameters["instanceID"] {
            guard let instanceID = InstanceID(parameter: parameter) else {
                throw APIError(.badRequest, "The parameter instanceID is invalid: it must be \(InstanceID.rule).")
            }
            let key = InstanceKey(namespace: identity.name, instanceID: instanceID)
            if let owner = addressMap.claim(key, for: activationId) {
                throw APIError(.conflict, "The instance ID '\(instanceID)' is already live in namespace '\(identity.name)' (activation \(owner)).")
            }
            claimed = key
        }
        var content = [String: JSONValue]()
        for parameter in action.parameters { content[parameter.key] = parameter.value }
        for (key, value) in parameters { content[key] = value }
        guard let path = EntityPath(action.namespace), let name = EntityName(action.name) else {
            throw APIError(.internalServerError, "stored action \(action.fullyQualifiedName) has an invalid name")
        }
        let message = ActivationMessage(
            transid: transid,
            action: FullyQualifiedEntityName(path: path, name: name, version: action.version, binding: binding),
            revision: action.rev,
            user: identity.identity,
            activationId: activationId,
            rootControllerIndex: controllerInstance,
            blocking: blocking,
            content: .object(content),
            initArgs: action.parameters.filter { $0.`init` == true }.map(\.key),
            cause: cause
        )
        let usable = Set(health.withLock { $0.sorted.filter { $0.state.isUsable }.map(\.id.instance) })
        let chosen = balancer.withLock { balancer -> Int? in
            let chosen = balancer.schedule(activationId: activationId, namespace: identity.name, action: action.fullyQualifiedName,
                                           memory: action.limits.memory, usable: usable, preferring: placement?.invoker)
            if let chosen { placement?.placed(on: chosen) }
            return chosen
        }
        guard let invoker = chosen else {
            if claimed != nil { addressMap.release(activationId: activationId) }
            throw APIError(.serviceUnavailable, "No invokers available.")
        }
        // Remembered until its record is stored, across controller restarts (see PendingVerdict).
        // Its deadline also releases the slot if no completion comes. The store write runs while
        // the message is published, so it adds no latency; both must succeed before the 202.
        let accepted = Self.nowMillis
        let pending = PendingActivation(
            activationId: activationId, kind: .action, namespace: identity.name, action: action.fullyQualifiedName, version: action.version,
            invoker: invoker, controller: controllerInstance.asString, cause: cause, accepted: accepted,
            deadline: accepted + Int64(action.limits.timeout) + Int64(configuration.slotGrace / .milliseconds(1))
        )
        if blocking { waiters.register(activationId) }
        async let remembered: Void = store.addPending(pending)
        do {
            try await producer.send(topic: configuration.topic("invoker\(invoker)"), value: try message.encodedKeepingLiterals())
        } catch {
            release(activationId)
            waiters.expire(activationId)
            // Not accepted: it must not be given up on later either.
            if (try? await remembered) != nil { try? await store.forgetPending(activationId) }
            logger.error("cannot publish activation", metadata: ["activationId": "\(activationId)", "error": "\(error)"])
            throw APIError(.serviceUnavailable, "The activation could not be scheduled: \(error)")
        }
        do {
            try await remembered
        } catch {
            // Published, so it runs and its record comes as usual; only a controller restart
            // before then would leave it without the give-up safety net. Accepting it is right.
            logger.error("cannot remember a pending activation", metadata: ["activationId": "\(activationId)", "error": "\(error)"])
        }
        logger.debug("activation published", metadata: ["activationId": "\(activationId)", "invoker": "\(invoker)", "action": "\(action.fullyQualifiedName)"])
        await publish(addressMap.announce(namespace: identity.name))  // nothing, but once a minute per namespace
        guard blocking else { return .accepted(activationId) }
        if let record = await waiters.wait(for: activationId, timeout: timeout ?? configuration.blockingTimeout) {
            return .completed(record)
        }
        // The result may have been stored just as the wait ran out.
        if let record = try await store.activation(namespace: identity.name, id: activationId) {
            return .completed(record)
        }
        return .accepted(activationId)
    }

    /// Releases the activation's memory slot and instance-ID claim.
    /// - Returns: whether a slot was still held.
    @discardableResult
    private func release(_ activationId: ActivationId) -> Bool {
        addressMap.release(activationId: activationId)
        return balancer.withLock { $0.release(activationId: activationId) } != nil
    }

    /// Runs `job` in the controller's own task group (the non-blocking part of sequences).
    func submit(_ job: @escaping @Sendable () async -> Void) {
        jobsContinuation.yield(job)
    }

    // MARK: Kafka input

    /// Handles messages of `completed{C}` in the order read, with one store transaction for all
    /// their records; bad input is logged and skipped.
    func handleAcknowledgements(_ messages: [Data]) async {
        var records: [(activation: WhiskActivation, provisional: Bool)] = []
        for data in messages {
            guard let ack = decoded(AcknowledgementMessage.self, data, what: "acknowledgement") else { continue }
            if let instance = ack.releasedInvoker {
                release(ack.activationId)
                let isSystemError: Bool
                switch ack {
                case .combined(_, _, let flag, _), .completion(_, _, let flag, _): isSystemError = flag
                case .result: isSystemError = false
                }
                if let transition = health.withLock({ $0.record(instance: instance.instance, systemError: isSystemError) }) {
                    logger.notice("invoker state changed", metadata: ["invoker": "\(transition.instance)", "state": "\(transition.to)"])
                }
            }
            guard let activation = ack.activation else { continue }
            // A result ahead of the record with the logs (an upstream invoker sends one when it
            // collects the logs afterwards) answers the caller first and is kept as a provisional
            // record: the completion's record replaces it, and should that never come, the record
            // still says what the caller was told.
            let ahead = if case .result = ack { true } else { false }
            if ahead { waiters.complete(activation) }
            records.append((activation, ahead))
            if !ahead {
                WhiskMetrics.recordActivation(activation)
                WhiskMetrics.recordEndToEnd(milliseconds: Self.nowMillis - ack.transid.start, kind: activation.annotations["kind"]?.stringValue ?? "unknown")
            }
        }
        guard !records.isEmpty else { return }
        // The callers are answered as soon as the write is ordered before any read they can make
        // next (the write itself was on a blocking caller's path: ~0.2 ms of one client's ~5).
        let waiters = self.waiters
        let answered = records.filter { !$0.provisional }.map(\.activation)
        do {
            try await store.storeActivations(records) { for activation in answered { waiters.complete(activation) } }
        } catch {
            // One bad record must not cost the others theirs.
            for record in records {
                do {
                    try await store.storeActivation(record.activation, provisional: record.provisional)
                } catch {
                    logger.error("cannot store activation", metadata: ["activationId": "\(record.activation.activationId)", "error": "\(error)"])
                }
            }
            for activation in answered { waiters.complete(activation) }
        }
    }

    /// A message of a topic, or nil after logging it as skipped: bad input never stops a consumer.
    private func decoded<T: Decodable>(_ type: T.Type, _ data: Data, what: String) -> T? {
        do {
            return try WhiskMessageCoding.decode(type, from: data)
        } catch {
            logger.warning("unreadable \(what) skipped", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Handles one message of `health`.
    func handlePing(_ data: Data) async {
        guard let ping = decoded(PingMessage.self, data, what: "ping") else { return }
        balancer.withLock { $0.updateCapacity(instance: ping.name.instance, userMemory: ping.name.userMemory) }
        if let transition = health.withLock({ $0.ping(ping, at: .now) }) {
            logger.notice("invoker state changed", metadata: ["invoker": "\(ping.name)", "state": "\(transition.to)"])
        }
        await handleAddressMap(of: ping)
    }

    /// Once a second: offline detection.
    func tick() {
        for transition in health.withLock({ $0.tick(at: .now) }) {
            logger.warning("invoker offline", metadata: ["invoker": "\(transition.instance)"])
        }
    }

    /// Handles accepted activations whose record is overdue: releases their slots, and gives up
    /// on those ``PendingVerdict`` says to, each with a provisional whisk-error record. Waits until
    /// invokers had time to ping a restarted controller.
    ///
    /// - Parameter everything: read every pending activation, not only those past their deadline:
    ///   the first pass after a start finds the sequences an earlier run of the controller left.
    /// - Returns: false while it is too early after the start to judge.
    func reconcilePending(everything: Bool = false) async -> Bool {
        guard ContinuousClock.now - started > configuration.invokerOfflineTimeout + .seconds(2) else { return false }
        let now = Self.nowMillis
        let due: [PendingActivation]
        do {
            due = try await store.pendingActivations(controller: controllerInstance.asString, dueBy: everything ? .max : now)
        } catch {
            logger.error("cannot read pending activations", metadata: ["error": "\(error)"])
            return true
        }
        guard !due.isEmpty else { return true }
        let states = health.withLock { health in Dictionary(health.sorted.map { ($0.id.instance, $0.state) }) { a, _ in a } }
        for pending in due {
            if pending.kind == .action, now >= pending.deadline, release(pending.activationId) {
                logger.warning("slot released without completion", metadata: ["activationId": "\(pending.activationId)"])
            }
            let verdict = PendingVerdict.decide(pending, now: now, invoker: pending.invoker.flatMap { states[$0] },
                                                controllerStarted: startedMillis, abandonAfter: Int64(configuration.abandonAfter / .milliseconds(1)))
            guard case .giveUp(let message) = verdict else { continue }
            guard let record = PendingVerdict.record(for: pending, message: message, now: now) else {
                logger.error("pending activation has an invalid name; dropped", metadata: ["activationId": "\(pending.activationId)"])
                try? await store.forgetPending(pending.activationId)
                continue
            }
            release(pending.activationId)
            WhiskMetrics.recordActivation(record)
            do {
                try await store.storeActivation(record, provisional: true)
                logger.warning("gave up waiting for an activation", metadata: ["activationId": "\(pending.activationId)", "reason": "\(message)"])
            } catch {
                logger.error("cannot store a give-up record", metadata: ["activationId": "\(pending.activationId)", "error": "\(error)"])
            }
            waiters.complete(record)
        }
        return true
    }

    /// Invoker states as `GET /invokers` shows them.
    public var invokerStates: [InvokerStatus] { health.withLock { $0.sorted } }
    public var freeMemory: [Int: Int] { balancer.withLock { $0.freeMemory } }

    // MARK: Running

    /// The controller's background work: ack and ping consumers, the ticker and sequence jobs.
    public func runBackground() async throws {
        do {
            try await consumeUntilShutdown()
        } catch {
            waiters.close()
            await producer.close()
            throw error
        }
    }

    private func consumeUntilShutdown() async throws {
        let admin = try KafkaAdmin(configuration: configuration.kafka, logger: logger)
        do {
            try await admin.createTopic(configuration.topic(controllerInstance.completionTopic), configs: KafkaAdmin.TopicRole.completed.configs)
            for topic in [configuration.topic("health"), configuration.topic(AddressMapHub.topic)] {
                try await admin.createTopic(topic, configs: KafkaAdmin.TopicRole.control.configs)
            }
        } catch {
            await admin.close()
            throw error
        }
        await admin.close()
        // Controller N is the only reader of completedN, so it reads the partition directly from
        // its group's committed offset, like invoker N: a controller restarted while its group
        // join was still under way stalled the topic on Tansu, and acks sat unread for minutes.
        let completions = try consumer(topic: configuration.topic(controllerInstance.completionTopic), group: "completed\(controllerInstance.asString)",
                                       start: .committed, traffic: .activations)
        // Pings are for every controller and only fresh ones matter: read the partition directly
        // from its end, without a group, so a restarted controller sees pings at once instead
        // of after a group join (3-6 s on Tansu), which is longer than the map may lag.
        let pings = try consumer(topic: configuration.topic("health"), group: "health\(controllerInstance.asString)", start: .end, traffic: .control)
        await cancelWhenGracefulShutdown {
          await withDiscardingTaskGroup { group in
            group.addTask { await self.consumeBatches(completions) { await self.handleAcknowledgements($0) } }
            group.addTask { await self.consume(pings) { await self.handlePing($0) } }
            group.addTask {
                // Entries of silent invokers go; snapshots answer invokers' resync requests (new
                // or lagging replicas) and, rarely, refresh everything.
                while !Task.isCancelled {
                    await self.publish(self.addressMap.expire(timeout: self.configuration.addressMapTimeout))
                    await self.publish(self.addressMap.snapshots(fullInterval: self.configuration.addressMapSnapshotInterval))
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    self.tick()
                    try? await Task.sleep(for: .seconds(1))
                }
            }
            group.addTask {
                var swept = false
                while !Task.isCancelled {
                    if await self.reconcilePending(everything: !swept) { swept = true }
                    try? await Task.sleep(for: .seconds(2))
                }
            }
            group.addTask {
                await withDiscardingTaskGroup { jobs in
                    for await job in self.jobs { jobs.addTask { await job() } }
                }
            }
          }
        }
        jobsContinuation.finish()
        waiters.close()
        await completions.close()
        await pings.close()
        await producer.close()
    }

    /// Reads partition 0 of `topic` directly (no group join); the group, which carries the topic
    /// prefix so that stacks sharing a broker never share one, only keeps committed offsets.
    private func consumer(topic: String, group: String, start: KafkaConsumerConfiguration.Assignment.Start,
                          traffic: KafkaConsumerConfiguration.Traffic) throws -> KafkaConsumer {
        var configuration = KafkaConsumerConfiguration(client: configuration.kafka, groupID: configuration.topic(group), topics: [topic])
        configuration.assignment = .init(partitions: [0], start: start)
        configuration.traffic = traffic
        return try KafkaConsumer(configuration: configuration, logger: logger)
    }

    /// Reads until cancelled, a batch of what has arrived at a time. Commits after a batch when
    /// the last commit is `ackCommitInterval` old, and when it ends: a commit per batch was a
    /// broker request per ack or two at 16 clients. A crash re-reads at most that much more;
    /// a re-read ack finds its record stored (the store keeps the first) and no waiter.
    private func consumeBatches(_ consumer: KafkaConsumer, _ handle: ([Data]) async -> Void) async {
        var uncommitted: KafkaConsumerMessage?
        var lastCommit = ContinuousClock.now
        func commitUncommitted() async throws {
            guard let message = uncommitted else { return }
            try await consumer.commit(message)
            uncommitted = nil
            lastCommit = .now
        }
        while !Task.isCancelled {
            do {
                let batch = try await consumer.nextBatch(limit: Self.ackBatchLimit)
                guard let last = batch.last else { break }
                if let lag = consumer.lag(after: last) { WhiskMetrics.setConsumerLag(topic: last.topic, lag) }
                await handle(batch.map(\.value))
                uncommitted = last
                if ContinuousClock.now - lastCommit >= Self.ackCommitInterval { try await commitUncommitted() }
            } catch {
                logger.error("consumer error; continuing", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        do {
            try await commitUncommitted()
        } catch {
            logger.error("cannot commit the last acknowledgements", metadata: ["error": "\(error)"])
        }
    }

    /// How often the acknowledgements' position is committed while they keep coming.
    static let ackCommitInterval: Duration = .milliseconds(100)

    /// Most acks handled (and stored) together.
    static let ackBatchLimit = 64

    /// Reads until cancelled; a failing message is logged and committed, never stops the loop.
    private func consume(_ consumer: KafkaConsumer, _ handle: (Data) async -> Void) async {
        while !Task.isCancelled {
            do {
                guard let message = try await consumer.next() else { return }
                await handle(message.value)
                try await consumer.commit(message)
            } catch {
                logger.error("consumer error; continuing", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }
}

/// Runs the controller's background loops inside a ServiceGroup.
public struct ControllerService: Service {
    let controller: Controller
    public init(controller: Controller) { self.controller = controller }
    public func run() async throws { try await controller.runBackground() }
}
