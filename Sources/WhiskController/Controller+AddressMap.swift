import Foundation
import Synchronization
import WhiskKafka
import WhiskMessages
import WhiskMetrics

/// The controller's global address map: merged from invokers' heartbeats, published to invokers.
final class AddressMapHub: Sendable {
    static let topic = "addressmap"

    private struct State {
        var map = GlobalAddressMap(baseVersion: GlobalAddressMap.baseVersion())
        /// Namespaces an invoker asked to resync (its replica saw a gap, or it just started).
        var resync: Set<String> = []
        var resyncAll = false
        var lastSnapshot: [String: ContinuousClock.Instant] = [:]
        var lastFullSnapshot = ContinuousClock.now
        var lastHeartbeat: [Int: ContinuousClock.Instant] = [:]
        /// Live instance IDs: claimed at invoke, released when the activation completes.
        var claims: [InstanceKey: ActivationId] = [:]
        var claimsByActivation: [ActivationId: InstanceKey] = [:]
        var lastSnapshotRequest: [Int: ContinuousClock.Instant] = [:]
        /// How often the heartbeat path asked each invoker the map does not know for its snapshot
        /// without an answer (an update from it) since.
        var unanswered: [Int: Int] = [:]

        /// At most one request per invoker per second: an invoker that never sends map updates
        /// (overlay off, or a stock OpenWhisk invoker) would otherwise be asked on every ping,
        /// and a burst of deltas after a gap would ask once per delta.
        mutating func snapshotRequest(for invoker: Int, at now: ContinuousClock.Instant) -> [AddressMapPublication] {
            if let last = lastSnapshotRequest[invoker], now - last < .seconds(1) { return [] }
            lastSnapshotRequest[invoker] = now
            return [.snapshotRequest(invoker: invoker)]
        }

        /// An invoker the map does not know is asked at once, then 2, 4, ... and at most 64 s after
        /// the last ask while it does not answer: one that runs without the overlay, or a stock
        /// OpenWhisk invoker, never will, and each ask is a message every invoker reads.
        mutating func askUnknown(_ invoker: Int, at now: ContinuousClock.Instant) -> [AddressMapPublication] {
            let asked = unanswered[invoker, default: 0]
            if asked > 0, let last = lastSnapshotRequest[invoker], now - last < .seconds(1 << min(asked, 6)) { return [] }
            let publications = snapshotRequest(for: invoker, at: now)
            if !publications.isEmpty { unanswered[invoker] = asked + 1 }
            return publications
        }
    }
    private let state = Mutex(State())
    /// When each namespace was last announced active (`namespaceActive`), and when the list was
    /// last pruned: a lock of its own, since every activation looks (a heartbeat's snapshot
    /// work holds `state`).
    private let announced = Mutex((last: [String: ContinuousClock.Instant](), pruned: ContinuousClock.now))

    /// Claims `key` for `activationId`; returns the activation that already owns it, if any.
    func claim(_ key: InstanceKey, for activationId: ActivationId) -> ActivationId? {
        state.withLock { state in
            if let owner = state.claims[key] { return owner }
            state.claims[key] = activationId
            state.claimsByActivation[activationId] = key
            return nil
        }
    }

    /// How often a namespace that keeps being invoked is announced again: well inside the
    /// invokers' window of recent namespaces (5 minutes by default).
    static let announceInterval: Duration = .seconds(60)

    /// `namespaceActive` for `namespace` unless it was announced within `every`: every invoker
    /// then keeps stem cells for it, not only those its activations reached.
    func announce(namespace: String, every: Duration = announceInterval, now: ContinuousClock.Instant = .now) -> [AddressMapPublication] {
        announced.withLock { announced in
            if let last = announced.last[namespace], now - last < every { return [] }
            if now - announced.pruned >= every {
                // Namespaces no longer invoked are forgotten (once per interval, not per call).
                announced.last = announced.last.filter { now - $0.value < every }
                announced.pruned = now
            }
            announced.last[namespace] = now
            return [.namespaceActive(namespace: namespace)]
        }
    }

    /// Entries of the global map, over all namespaces.
    var entryCount: Int {
        state.withLock { $0.map.namespaces.values.reduce(0) { $0 + $1.count } }
    }

    func release(activationId: ActivationId) {
        state.withLock { state in
            guard let key = state.claimsByActivation.removeValue(forKey: activationId) else { return }
            if state.claims[key] == activationId { state.claims[key] = nil }
        }
    }

    /// Applies an invoker's heartbeat update; returns what to publish.
    func apply(_ update: AddressMapUpdate, from invoker: Int) -> [AddressMapPublication] {
        state.withLock { state in
            state.lastHeartbeat[invoker] = .now
            state.unanswered[invoker] = nil
            let outcome = state.map.apply(update, from: invoker)
            var publications = outcome.changes.map { AddressMapPublication.delta(namespace: $0.namespace, version: $0.version, added: $0.added, removed: $0.removed) }
            if outcome.needsSnapshot { publications += state.snapshotRequest(for: invoker, at: .now) }
            return publications
        }
    }

    /// A heartbeat without a map update still proves the invoker alive; an invoker the map does
    /// not know yet (a restarted controller) is asked for its snapshot, less and less often while
    /// it does not answer.
    func heartbeat(from invoker: Int, now: ContinuousClock.Instant = .now) -> [AddressMapPublication] {
        state.withLock { state in
            state.lastHeartbeat[invoker] = now
            return state.map.knownInvokers.contains(invoker) ? [] : state.askUnknown(invoker, at: now)
        }
    }

    /// Drops the entries of invokers silent for longer than `timeout`.
    func expire(timeout: Duration) -> [AddressMapPublication] {
        let now = ContinuousClock.now
        return state.withLock { state in
            var publications: [AddressMapPublication] = []
            for (invoker, last) in state.lastHeartbeat where now - last > timeout {
                state.lastHeartbeat[invoker] = nil
                publications += state.map.drop(invoker: invoker).map {
                    .delta(namespace: $0.namespace, version: $0.version, added: $0.added, removed: $0.removed)
                }
            }
            return publications
        }
    }

    /// An invoker's request for snapshots (`*`: every namespace); served on the next tick.
    func requestResync(_ namespaces: [String]) {
        state.withLock { state in
            for namespace in namespaces.prefix(1_000) {
                if namespace == "*" { state.resyncAll = true } else { state.resync.insert(namespace) }
            }
        }
    }

    /// Snapshots due now: the namespaces asked for (each at most once per second), all of them
    /// when an invoker asked for everything (at most every 2 s), and all of them every `fullInterval`. Nothing while nobody asks: steady traffic is deltas only,
    /// so it does not grow with the size of the map.
    func snapshots(fullInterval: Duration, now: ContinuousClock.Instant = .now) -> [AddressMapPublication] {
        state.withLock { state in
            var due: Set<String>
            // "*" (an invoker that has no snapshot yet) is served at most every 2 s: an invoker
            // that keeps asking must not turn the whole map into steady traffic.
            let sinceFull = now - state.lastFullSnapshot
            if sinceFull >= fullInterval || (state.resyncAll && sinceFull >= .seconds(2)) {
                due = Set(state.map.versions.keys)
                state.lastFullSnapshot = now
                state.resyncAll = false
            } else {
                due = state.resync.filter { state.map.versions[$0] != nil }
            }
            due = due.filter { namespace in state.lastSnapshot[namespace].map { now - $0 >= .seconds(1) } ?? true }
            state.resync.subtract(due)
            state.resync = state.resync.filter { state.map.versions[$0] != nil }
            for namespace in due { state.lastSnapshot[namespace] = now }
            return due.sorted().flatMap {
                AddressMapPublication.snapshot(namespace: $0, version: state.map.version(namespace: $0), entries: state.map.entries(namespace: $0))
            }
        }
    }

    func file(namespace: String) -> AddressMapFile {
        state.withLock { AddressMapFile(namespace: namespace, version: $0.map.version(namespace: namespace), entries: $0.map.entries(namespace: namespace)) }
    }
}

extension Controller {
    /// Sends publications on the `addressmap` topic, in order, without waiting for the broker:
    /// a heartbeat's changes must not queue behind the previous one's round trip. Enqueues are
    /// serialised so concurrent callers never interleave a snapshot's parts; a lost or reordered
    /// delta costs only time (replicas buffer early deltas and repair gaps from snapshots).
    func publish(_ publications: [AddressMapPublication]) async {
        guard !publications.isEmpty else { return }
        WhiskMetrics.setAddressMapEntries(addressMap.entryCount)
        let logger = self.logger
        let encoded = publications.compactMap { publication -> Data? in
            do {
                return try WhiskMessageCoding.encode(publication)
            } catch {
                logger.error("cannot encode address map publication", metadata: ["error": "\(error)"])
                return nil
            }
        }
        let topic = configuration.topic(AddressMapHub.topic)
        publishing.withLock { _ in
            for value in encoded {
                do {
                    try producer.sendDetached(topic: topic, value: value) { result in
                        if case .failure(let error) = result {
                            logger.error("cannot publish address map change", metadata: ["error": "\(error)"])
                        }
                    }
                } catch {
                    logger.error("cannot publish address map change", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// Handles the address-map part of a ping.
    func handleAddressMap(of ping: PingMessage) async {
        let invoker = ping.name.instance
        if let request = ping.extensions[AddressMapUpdate.resyncField] {
            if case .array(let items) = request, items.allSatisfy({ $0.stringValue != nil }) {
                addressMap.requestResync(items.compactMap(\.stringValue))
            } else {
                logger.warning("unreadable address map resync request skipped", metadata: ["invoker": "\(invoker)"])
            }
        }
        guard let field = ping.extensions[AddressMapUpdate.pingField] else {
            await publish(addressMap.heartbeat(from: invoker))
            return
        }
        do {
            let update = try JSONValueDecoder().decode(AddressMapUpdate.self, from: field)  // read from the ping's tree, not encoded again
            await publish(addressMap.apply(update, from: invoker))
        } catch {
            logger.warning("unreadable address map update skipped", metadata: ["invoker": "\(invoker)", "error": "\(error)"])
        }
    }
}
