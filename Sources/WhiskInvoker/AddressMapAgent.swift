import Foundation
import Logging
import Synchronization
import WhiskKafka
import WhiskMessages
import WhiskMetrics

/// The invoker's side of the address map: its own instances (announced on heartbeats) and the
/// global map it receives from the controller (written into each namespace's `map.json`).
final class AddressMapAgent: Sendable {
    static let topic = "addressmap"

    let configuration: InvokerConfiguration
    let files: AddressMapFiles
    let trigger = HeartbeatTrigger()
    private let local: Mutex<LocalAddressMap>
    private let replicas = Mutex([String: NamespaceMapReplica]())
    /// Whether a snapshot arrived yet (the answer to "*"); until then every ping asks for all of
    /// them, since a delta alone says nothing about quiet namespaces.
    private let synced = Atomic<Bool>(false)
    /// Which activation runs in which container, and containers that died while running.
    private let running = Mutex((active: [String: ActivationId](), died: Set<String>()))
    private let logger: Logger
    /// Epoch milliseconds when this agent started.
    private let started = ActivationRunner.nowMillis
    /// Told of each `namespaceActive` publication (the pool's stem cells).
    private let namespaceActive = Mutex<(@Sendable (String) -> Void)?>(nil)

    init(configuration: InvokerConfiguration, logger: Logger) {
        self.configuration = configuration
        self.files = AddressMapFiles(writer: AddressMapFileWriter(root: configuration.addressMapDirectory),
                                     written: { arrived in
                                         // An entry's start at its invoker → in this invoker's map file.
                                         let now = ActivationRunner.nowMillis
                                         for entry in arrived { WhiskMetrics.recordPublicationLag(milliseconds: now - entry.since) }
                                     }, failed: { [logger] namespace, error in
                                         logger.error("cannot write map file", metadata: ["namespace": "\(namespace)", "error": "\(error)"])
                                     })
        self.local = Mutex(LocalAddressMap(incarnation: UUID().uuidString.lowercased()))
        self.logger = logger
    }

    /// An instance of this invoker appeared: announced on the next ping, and in its namespace's
    /// file here at once (peers on this invoker need not wait for the controller's round trip).
    func add(_ entry: AddressEntry) {
        local.withLock { $0.add(entry) }
        trigger.kick()
        ownChanged(namespace: entry.namespace, arrived: [entry])
    }

    func remove(_ key: InstanceKey, activationId: ActivationId) {
        guard local.withLock({ $0.remove(key, activationId: activationId) }) else { return }
        trigger.kick()
        ownChanged(namespace: key.namespace, arrived: [])
    }

    func remove(activations: Set<ActivationId>) {
        let gone = local.withLock { $0.remove(activations: activations) }
        guard !gone.isEmpty else { return }
        trigger.kick()
        for namespace in Set(gone.map(\.namespace)) { ownChanged(namespace: namespace, arrived: []) }
    }

    private func ownChanged(namespace: String, arrived: [AddressEntry]) {
        files.changed(namespace: namespace, arrived: arrived) { [self] in self.mapFile(namespace: namespace) }
    }

    /// Calls `handler` with the namespace of every `namespaceActive` publication.
    func onNamespaceActive(_ handler: @escaping @Sendable (String) -> Void) {
        namespaceActive.withLock { $0 = handler }
    }

    func track(containerID: String, activationId: ActivationId) {
        running.withLock { $0.active[containerID] = activationId }
    }

    func untrack(containerID: String) {
        running.withLock {
            $0.active[containerID] = nil
            $0.died.remove(containerID)
        }
    }

    /// A container died (Docker event): its activation's entries go at once.
    func containerDied(_ containerID: String) {
        let activation: ActivationId? = running.withLock {
            guard let activation = $0.active[containerID] else { return nil }
            $0.died.insert(containerID)
            return activation
        }
        if let activation { remove(activations: [activation]) }
    }

    func diedDuringRun(containerID: String) -> Bool {
        running.withLock { $0.died.contains(containerID) }
    }

    /// Namespaces whose replica needs a snapshot (`*` for all, before any snapshot arrived); the
    /// heartbeat asks the controller for them in the ping's `addressMapResync` field.
    func resyncRequest() -> [String] {
        guard synced.load(ordering: .acquiring) else { return ["*"] }
        return replicas.withLock { $0.filter(\.value.stale).map(\.key).sorted() }
    }

    /// The field to piggyback on the next ping, if anything changed.
    func nextUpdate() -> AddressMapUpdate? {
        local.withLock { $0.nextUpdate() }
    }

    /// Applies one message of the controller's `addressmap` topic.
    func handle(_ data: Data) {
        let publication: AddressMapPublication
        do {
            publication = try WhiskMessageCoding.decode(AddressMapPublication.self, from: data, maxBytes: 64 * 1024 * 1024)
        } catch {
            logger.warning("unreadable address map publication skipped", metadata: ["error": "\(error)"])
            return
        }
        switch publication {
        case .snapshotRequest(let invoker):
            guard invoker == configuration.instance else { return }
            local.withLock { $0.requestSnapshot() }
            trigger.kick()
        case .namespaceActive(let namespace):
            namespaceActive.withLock { $0 }?(namespace)
        case .delta(let namespace, _, _, _), .snapshot(let namespace, _, _), .snapshotPart(let namespace, _, _, _, _):
            let me = configuration.instance
            if publication.isSnapshot { synced.store(true, ordering: .releasing) }
            let (changed, becameStale, entryCount, arrived): (Bool, Bool, Int, [AddressEntry]) = replicas.withLock { replicas in
                // Taken out of the dictionary while it changes: a second reference to its entries
                // would make the change copy all of them (10,000 for every delta of a large map).
                var replica = replicas.removeValue(forKey: namespace) ?? NamespaceMapReplica()
                defer { replicas[namespace] = replica }  // also unchanged: it may hold parts or early deltas
                let wasStale = replica.stale
                // Entries new to this replica, for the publication lag (those older than this
                // invoker are history, not news): a delta's own, looked up before and after it; a
                // snapshot's, against the whole map (rare).
                let changed: Bool
                var arrived: [AddressEntry] = []
                if case .delta(_, _, let added, let removed) = publication {
                    let previous = added.map { replica.entries[$0.instanceID] }
                    // This invoker's own entries are in its files already (``mapFile(namespace:)``):
                    // a delta that adds, replaces or removes only those changes nothing there.
                    let touched = added + previous.compactMap { $0 } + removed.compactMap { replica.entries[$0] }
                    let touchesOthers = touched.contains { $0.invoker != me }
                    changed = replica.apply(publication) && touchesOthers
                    for (entry, before) in zip(added, previous) where changed && before != entry && entry.invoker != me && replica.entries[entry.instanceID] == entry {
                        arrived.append(entry)
                    }
                } else {
                    let before = replica.entries
                    changed = replica.apply(publication)
                    if changed { arrived = replica.entries.values.filter { before[$0.instanceID] != $0 && $0.invoker != me } }
                }
                arrived.removeAll { $0.since < started }
                return (changed, replica.stale && !wasStale, replicas.values.reduce(replica.entries.count) { $0 + $1.entries.count }, arrived)
            }
            if becameStale { trigger.kick() }  // ask for the snapshot now, not at the next ping
            if changed {
                // Written off the consumer's (cooperative) thread, spaced by the writes' cost,
                // from the map as it is then.
                files.changed(namespace: namespace, arrived: arrived) { [self] in self.mapFile(namespace: namespace) }
                WhiskMetrics.setAddressMapEntries(entryCount)
            }
        }
    }

    /// The namespace's `map.json` content now: the controller's map with this invoker's own
    /// instances as this invoker knows them (they are in the file as soon as they start and gone
    /// as soon as they end; the controller's copy of them lags a heartbeat and a publication
    /// behind). Entries copied under the locks, the file (which sorts them) built outside them.
    func mapFile(namespace: String) -> AddressMapFile? {
        let me = configuration.instance
        let own = local.withLock { $0.entries.values.filter { $0.namespace == namespace } }
        let replica = replicas.withLock { replicas in replicas[namespace].map { ($0.version, $0.entries) } }
        guard replica != nil || !own.isEmpty else { return nil }
        var entries = (replica?.1 ?? [:]).filter { $0.value.invoker != me }
        for entry in own { entries[entry.instanceID] = entry }
        return AddressMapFile(namespace: namespace, version: replica?.0 ?? 0, entries: entries.values)
    }

    /// Consumes the controller's publications until cancelled.
    func consume(kafka: KafkaClientConfiguration) async {
        var consumerConfiguration = KafkaConsumerConfiguration(
            client: kafka, groupID: configuration.topic("addressmap-invoker\(configuration.instance)"), topics: [configuration.topic(Self.topic)]
        )
        // Every invoker reads every publication, from the end and without a group (a join takes
        // seconds on some brokers): what came before is covered by the snapshots it asks for.
        consumerConfiguration.assignment = .init(partitions: [0], start: .end)
        consumerConfiguration.traffic = .control
        let consumer: KafkaConsumer
        do {
            consumer = try KafkaConsumer(configuration: consumerConfiguration, logger: logger)
        } catch {
            logger.error("cannot consume the address map topic", metadata: ["error": "\(error)"])
            return
        }
        while !Task.isCancelled {
            do {
                guard let message = try await consumer.next() else { break }
                handle(message.value)
                try await consumer.commit(message)
            } catch {
                logger.error("address map consumer error; continuing", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        await consumer.close()
    }
}
