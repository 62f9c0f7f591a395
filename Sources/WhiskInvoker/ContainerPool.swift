import Foundation
import Logging
import WhiskDocker
import WhiskMetrics

/// One action container the invoker owns.
public struct ActionContainer: Sendable, Hashable {
    public var id: String
    public var name: String
    /// Address on the invoker's action network, where `/init` and `/run` go.
    public var address: String
    public var kind: String
    public var memory: Int
    /// The namespace whose map folder is mounted (overlay mode), nil for a generic stem cell.
    public var namespace: String?
    /// Address on the namespace's overlay, once attached.
    public var overlayIP: String?
    /// The action it was initialised with (`namespace/name@rev`), nil for a stem cell.
    public var actionKey: String?
    public var lastUsed: ContinuousClock.Instant
}

/// The invoker's action containers. Every container's life is a ``ContainerState`` and every
/// choice (reuse, eviction, expiry, stem cells) a ``PoolState`` decision; this actor applies
/// them and does the Docker work, outside its state changes, so a slow create never blocks reuse.
/// A container that enters `removing` is removed from Docker, then forgotten.
public actor ContainerPool {
    private let docker: DockerClient
    private let logs: ContainerLogs
    private let configuration: InvokerConfiguration
    private let logger: Logger
    private var state: PoolState
    private var creating = 0
    private var createWaiters: [CheckedContinuation<Void, Never>] = []
    private var sequence = 0
    private var removals: Set<String> = []
    private let overlays: OverlayNetworks?
    private let mapFiles: AddressMapFiles?
    private let actionNetwork: ActionNetwork?
    private let closeConnections: @Sendable (_ address: String) async -> Void
    /// Namespaces by the time of their last activation, for namespace stem cells.
    private var recentNamespaces: [String: ContinuousClock.Instant] = [:]
    /// Activations waiting for a container of their action (by action key), first come first served.
    private var actionWaiters: [String: [ActionWaiter]] = [:]
    private var nextWaiter = 0
    /// How long a run of each action keeps its container (claim to release), smoothed.
    private var runEstimates: [String: Duration] = [:]
    /// How long a cold start takes (create, start, `/init`), smoothed; a guess until measured.
    private var coldEstimate: Duration
    /// When each container made for an activation began to be made, until it is initialised
    /// (a run's start is its entry's `lastUsed`: set when it is claimed or initialised).
    private var coldStarted: [String: ContinuousClock.Instant] = [:]
    /// By stem key (kind, and namespace in overlay mode): the times of the latest cold starts (those
    /// within one burst window of the last), and the most of them seen within one burst window,
    /// which sizes that key's stem cells.
    private var recentColdStarts: [String: [ContinuousClock.Instant]] = [:]
    private var burstPeaks: [String: Int] = [:]
    /// The last time an activation waited for a container, claimed a stem cell or started cold
    /// (or such a container finished its `/init`): the stem cells sized to bursts wait until this
    /// is `prewarmBurstQuiet` old, and ``deferredTopUp`` makes them then.
    private var lastContention: ContinuousClock.Instant?
    private var deferredTopUp: Task<Void, Never>?
    /// Actions with a spare container on the way (see ``makeSpare``).
    private var sparesInFlight: Set<String> = []
    /// Set by ``removeAll()``: no container is made after it (a replacement stem cell on its way
    /// would outlive the shutdown).
    private var closed = false
    /// Containers being made outside any activation (replacement stem cells, spares), by number:
    /// ``removeAll()`` waits for them, so that none is created after the pool was emptied.
    private var sideTasks: [Int: Task<Void, Never>] = [:]
    private var sideTaskCount = 0

    private struct ActionWaiter {
        var id: Int
        var continuation: CheckedContinuation<Bool, Never>
    }
    private static let placeholderPrefix = "creating-"

    /// `closeConnections(address)` closes the invoker's kept-alive connections to a container's
    /// `address`; the pool calls it before it removes a container that served activations.
    init(docker: DockerClient, logs: ContainerLogs, configuration: InvokerConfiguration, overlays: OverlayNetworks? = nil,
         mapFiles: AddressMapFiles? = nil, actionNetwork: ActionNetwork? = nil,
         closeConnections: @escaping @Sendable (_ address: String) async -> Void = { _ in }, logger: Logger) {
        self.docker = docker
        self.logs = logs
        self.configuration = configuration
        self.overlays = overlays
        self.mapFiles = mapFiles
        self.actionNetwork = actionNetwork
        self.closeConnections = closeConnections
        self.logger = logger
        self.state = PoolState(budget: Int(configuration.userMemory.megabytes))
        self.coldEstimate = configuration.coldStartGuess
    }

    /// Stem-cell pools are per kind, and in overlay mode per kind and namespace.
    private func stemKey(kind: String, namespace: String) -> String {
        overlays == nil ? kind : "\(kind)|\(namespace)"
    }

    /// A container for `actionKey`: warm if one is idle, else a stem cell with enough memory,
    /// else — when `mayWait` and ``PoolState/queueing(actionKey:waiting:runEstimate:coldEstimate:)``
    /// says a busy one of the action frees sooner — the next of the action's containers released,
    /// else a new one (evicting idle ones for memory). A wait is bounded (twice a cold start, at
    /// least 1 s, renewed while containers of the action are still being made), then a container
    /// is made anyway: activations that wait for each other (a group that meets at a barrier)
    /// cannot hold each other up longer than that. Activations with an instance ID are such
    /// groups, so the runner never lets them wait.
    /// - Returns: the container and whether it still needs `/init` (then report ``initialized(_:)``).
    public func acquire(actionKey: String, kind: String, image: String? = nil, memory: Int, namespace: String, action: String,
                        mayWait: Bool = false) async throws -> (ActionContainer, needsInit: Bool) {
        defer { publishSnapshot() }
        let stem = stemKey(kind: kind, namespace: namespace)
        // Newly recent: its first stem cell (of this kind: the burst's other cold starts come
        // first) now, not at the next maintenance pass.
        markRecent(namespace, kinds: [kind])
        var holdsCreateSlot = false
        defer { if holdsCreateSlot { freeCreateSlot() } }
        var waitUntil: ContinuousClock.Instant? = mayWait ? .now + waitBound : nil
        while true {
            switch state.place(actionKey: actionKey, stemKey: stem, memory: memory) {
            case .warm(let key):
                return (claim(key, actionKey: actionKey), false)
            case .stemCell(let key):
                countColdStart(stemKey: stem)
                lastContention = .now
                let container = claim(key, actionKey: actionKey)
                replenish(stem)
                return (container, true)
            case .create(let victims):
                if let until = waitUntil, !holdsCreateSlot,
                   case .wait(let spare) = state.queueing(actionKey: actionKey, waiting: actionWaiters[actionKey]?.count ?? 0,
                                                          runEstimate: runEstimates[actionKey], coldEstimate: coldEstimate) {
                    lastContention = .now
                    // One spare at a time per action; none for a blackbox image (stem cells run the kind's).
                    if spare, image == nil, !sparesInFlight.contains(actionKey) {
                        sparesInFlight.insert(actionKey)
                        onTheSide { await self.makeSpare(for: actionKey, kind: kind, memory: memory, namespace: namespace, stemKey: stem) }
                    }
                    if await !waitForRelease(of: actionKey, until: until) {
                        // Time is up. Containers still coming will serve the queue; busy ones
                        // that never came back may be waiting for us.
                        waitUntil = state.coming(actionKey: actionKey) > 0 ? .now + waitBound : nil
                    }
                    continue
                }
                guard holdsCreateSlot else {
                    // Decided again once a creation slot is free: the pool may have changed meanwhile.
                    await waitForCreateSlot()
                    holdsCreateSlot = true
                    continue
                }
                await evict(victims)
                let began = ContinuousClock.now
                lastContention = began
                var container = try await create(kind: kind, image: image, memory: memory, namespace: namespace, action: action, stemKey: nil,
                                                 attach: false, actionKey: actionKey)
                coldStarted[container.id] = began
                countColdStart(stemKey: stem)
                container.actionKey = actionKey
                state.update(container, key: container.id)
                return (container, true)
            }
        }
    }

    /// The controller announced `namespace` active (it may be invoking it on other invokers):
    /// the namespace is recent here too, and newly recent, its stem cells are made now, so its
    /// first cold start on this invoker finds one attached to its overlay.
    public func noteActive(namespace: String) {
        markRecent(namespace, kinds: configuration.prewarmCount.keys.sorted())
    }

    /// `namespace` is recent (overlay mode): if it was not, a stem cell of each of `kinds` is
    /// made for it at once.
    private func markRecent(_ namespace: String, kinds: [String]) {
        guard overlays != nil, recentNamespaces.updateValue(.now, forKey: namespace) == nil, configuration.prewarmPerNamespace > 0 else { return }
        for kind in kinds { replenish(stemKey(kind: kind, namespace: namespace)) }
    }

    private func claim(_ key: String, actionKey: String) -> ActionContainer {
        state.apply(.claimed, to: key)
        var container = state.entries[key]!.container
        container.actionKey = actionKey
        container.lastUsed = .now
        state.update(container, key: key)
        return container
    }

    /// `/init` (and the overlay attach) succeeded: the container runs its activation.
    public func initialized(_ container: ActionContainer) {
        defer { publishSnapshot() }
        if let began = coldStarted.removeValue(forKey: container.id) { coldEstimate = Self.smoothed(coldEstimate, .now - began) }
        lastContention = .now  // a cold start (or a stem cell's /init) of the burst ended just now
        var container = container
        container.lastUsed = .now  // its run begins
        state.update(container, key: container.id)
        transition(container.id, .initialized)
    }

    /// Ends a container's part in an activation: `.finished` or `.failed(_:)`.
    public func release(_ container: ActionContainer, _ event: ContainerEvent) async {
        defer { publishSnapshot() }
        let began = state.entries[container.id]?.container.lastUsed  // when its run began
        var container = container
        container.lastUsed = .now
        if let current = state.entries[container.id], current.state != .removing {
            state.update(container, key: container.id)
        }
        let next = transition(container.id, event)
        coldStarted[container.id] = nil
        if let actionKey = container.actionKey {
            if next == .warm {
                if let began { runEstimates[actionKey] = Self.smoothed(runEstimates[actionKey], .now - began) }
                wakeWaiters(of: actionKey, all: false)
            } else {
                // One container fewer for its waiters: each decides again whether to make one.
                wakeWaiters(of: actionKey, all: true)
            }
        }
        // A run that timed out or broke off took its connection with it (libcurl closes the
        // connection of a transfer it aborts): nothing to close, and a wedged container would
        // hold the removal for the closing request's whole timeout.
        let connectionGone = event == .failed(.timeout) || event == .failed(.run)
        if next == .removing { await remove([container.id], keptConnection: !connectionGone) }
    }

    /// Docker reported the container dead.
    public func forget(containerID: String) async {
        defer { publishSnapshot() }
        let actionKey = state.entries[containerID]?.container.actionKey
        if transition(containerID, .died) == .removing {
            if let actionKey { wakeWaiters(of: actionKey, all: true) }
            await remove([containerID], alive: false)
        }
    }

    // MARK: Waiting for a container of the action

    /// A stem cell (attached to the namespace's overlay in overlay mode) made because activations
    /// of `actionKey` queue: once ready, the first of them takes it and only initialises it. The
    /// queued activation does not wait for it: it goes on waiting for whichever comes first.
    private func makeSpare(for actionKey: String, kind: String, memory: Int, namespace: String, stemKey: String) async {
        defer { sparesInFlight.remove(actionKey) }
        await waitForCreateSlot()
        defer { freeCreateSlot() }
        guard state.victims(for: memory).isEmpty, !closed else { return }  // a spare never pushes out another container
        do {
            try await createStemCell(kind: kind, memory: memory, namespace: overlays == nil ? nil : namespace, stemKey: stemKey)
            wakeWaiters(of: actionKey, all: false)
        } catch {
            logger.warning("cannot make a spare container", metadata: ["action": "\(actionKey)", "error": "\(error)"])
        }
    }

    /// A stem cell under `stemKey`: for `namespace` (overlay mode: attached to its overlay, its map
    /// mounted), or for any namespace when nil.
    private func createStemCell(kind: String, memory: Int, namespace: String?, stemKey: String) async throws {
        if let namespace {
            _ = try await create(kind: kind, memory: memory, namespace: namespace, action: "prewarm", stemKey: stemKey, attach: true)
        } else {
            _ = try await create(kind: kind, memory: memory, namespace: "prewarm", action: kind, stemKey: stemKey, attach: false)
        }
    }

    /// One more cold start under `stemKey`: its burst grows, and with it the stem cells wanted.
    private func countColdStart(stemKey: String) {
        let now = ContinuousClock.now
        var times = (recentColdStarts[stemKey] ?? []).filter { now - $0 < configuration.burstWindow }
        times.append(now)
        recentColdStarts[stemKey] = times
        burstPeaks[stemKey] = max(burstPeaks[stemKey] ?? 0, times.count)
        // The burst wants more stem cells than the key's own: made once it is quiet.
        let own = baseStemCells(stemKey)
        if own > 0, !closed, min(times.count, configuration.prewarmBurstLimit) > own {
            scheduleTopUp(at: now + configuration.prewarmBurstQuiet)
        }
    }

    /// The stem cells a key keeps whatever its bursts: a namespace's `prewarmPerNamespace` (overlay
    /// mode), a kind's `prewarmCount`. None means none sized to bursts either.
    private func baseStemCells(_ stemKey: String) -> Int {
        overlays != nil ? configuration.prewarmPerNamespace : configuration.prewarmCount[stemKey] ?? 0
    }

    /// Whether `key`'s last cold start is within `prewarmNamespaceWindow` (without the overlay, a
    /// kind's burst sizes its stem cells only that long).
    private func burstIsRecent(_ key: String) -> Bool {
        recentColdStarts[key]?.last.map { ContinuousClock.now - $0 < configuration.prewarmNamespaceWindow } ?? false
    }

    /// How many stem cells `key` wants: its own, or as many as its largest recent burst of cold
    /// starts had (at most `prewarmBurstLimit`) once the invoker is `quiet`.
    private func burstSized(_ key: String, own: Int, quiet: Bool, wanted: inout StemCellWants, quietSince: ContinuousClock.Instant?) -> Int {
        let sized = max(own, min(burstPeaks[key] ?? 0, configuration.prewarmBurstLimit))
        // Made while the burst's load still runs, they would take its CPU: only the key's own
        // ones until the invoker has been quiet for a while.
        if !quiet, sized > own { wanted.burstSizedAt = quietSince }
        return quiet ? sized : own
    }

    /// How long an activation waits for a container of its action before it makes one.
    private var waitBound: Duration { max(coldEstimate * 2, .seconds(1)) }

    /// Waits until a container of `actionKey` is released or lost, or until `until`.
    /// - Returns: false when the time ran out.
    private func waitForRelease(of actionKey: String, until: ContinuousClock.Instant) async -> Bool {
        nextWaiter += 1
        let id = nextWaiter
        let timer = Task {
            try? await Task.sleep(until: until, clock: .continuous)
            self.expireWaiter(id, of: actionKey)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { continuation in
            actionWaiters[actionKey, default: []].append(ActionWaiter(id: id, continuation: continuation))
        }
    }

    private func expireWaiter(_ id: Int, of actionKey: String) {
        guard let index = actionWaiters[actionKey]?.firstIndex(where: { $0.id == id }) else { return }
        let waiter = actionWaiters[actionKey]!.remove(at: index)
        if actionWaiters[actionKey]!.isEmpty { actionWaiters[actionKey] = nil }
        waiter.continuation.resume(returning: false)
    }

    /// Wakes the first waiter of `actionKey` (a container of it is idle now), or all of them.
    private func wakeWaiters(of actionKey: String, all: Bool) {
        guard var waiters = actionWaiters[actionKey], !waiters.isEmpty else { return }
        let woken = all ? waiters : [waiters.removeFirst()]
        actionWaiters[actionKey] = all || waiters.isEmpty ? nil : waiters
        for waiter in woken { waiter.continuation.resume(returning: true) }
    }

    /// An exponentially weighted average: recent runs count most, one outlier does not decide.
    static func smoothed(_ average: Duration?, _ sample: Duration) -> Duration {
        guard let average else { return sample }
        return average * 0.7 + sample * 0.3
    }

    /// Applies `event`; an event the lifecycle does not allow is logged and changes nothing.
    @discardableResult
    private func transition(_ key: String, _ event: ContainerEvent) -> ContainerState? {
        guard let entry = state.entries[key] else { return nil }
        guard let next = state.apply(event, to: key) else {
            logger.error("container event not allowed in its state", metadata: ["container": "\(entry.container.name)", "state": "\(entry.state)", "event": "\(event)"])
            return nil
        }
        return next
    }

    /// Removes idle containers past the idle timeout, retries failed removals and tops up (or
    /// drops) the stem cells.
    public func maintain() async {
        defer { publishSnapshot() }
        for key in state.expired(before: .now - configuration.idleTimeout) { transition(key, .expired) }
        // The expired ones, and any whose removal Docker refused earlier.
        await remove(state.keys(in: .removing))

        let wanted = wantedStemCells()
        // Run times of actions the pool no longer holds a container of are forgotten (one per
        // revision ever run would pile up).
        let held = Set(state.entries.values.compactMap(\.container.actionKey))
        runEstimates = runEstimates.filter { held.contains($0.key) }
        // A namespace that is no longer recent forgets its bursts; without the overlay, a kind
        // forgets them once its last cold start is older than the window.
        recentColdStarts = recentColdStarts.filter { wanted.count[$0.key] != nil && (overlays != nil || burstIsRecent($0.key)) }
        burstPeaks = burstPeaks.filter { recentColdStarts[$0.key] != nil }
        let drop = state.stemCellPlan(wanted: wanted.count).drop
        for key in drop { transition(key, .expired) }
        await remove(drop)
        await topUp()
    }

    /// The stem cells the pool wants, by stem key, with each key's kind and (overlay mode) namespace.
    private struct StemCellWants {
        var count: [String: Int] = [:]
        var kind: [String: String] = [:]
        var namespace: [String: String] = [:]
        /// Stem cells sized to bursts were left out of `count` until then (see `prewarmBurstQuiet`).
        var burstSizedAt: ContinuousClock.Instant?
    }

    private func wantedStemCells() -> StemCellWants {
        var wanted = StemCellWants()
        let quietSince = lastContention.map { $0 + configuration.prewarmBurstQuiet }
        let quiet = quietSince.map { $0 <= .now } ?? true
        if overlays != nil {
            // Stem cells for recently active namespaces: map mounted and overlay attached ahead of time.
            let window = ContinuousClock.now - configuration.prewarmNamespaceWindow
            recentNamespaces = recentNamespaces.filter { $0.value > window }
            let namespaces = recentNamespaces.sorted { $0.value > $1.value }.prefix(configuration.prewarmNamespaces).map(\.key)
            for namespace in namespaces where configuration.prewarmPerNamespace > 0 {
                for kind in configuration.prewarmCount.keys {
                    let key = stemKey(kind: kind, namespace: namespace)
                    // Sized to the namespace's largest recent burst: its next one (a new
                    // revision of the job, say) starts in attached containers.
                    wanted.count[key] = burstSized(key, own: configuration.prewarmPerNamespace, quiet: quiet, wanted: &wanted, quietSince: quietSince)
                    wanted.namespace[key] = namespace
                    wanted.kind[key] = kind
                }
            }
        } else {
            // As upstream's reactive stem cells: a kind whose cold starts came in a burst keeps as
            // many as that burst had while its last cold start is within the window.
            for (kind, count) in configuration.prewarmCount where count > 0 {
                wanted.count[kind] = burstIsRecent(kind) ? burstSized(kind, own: count, quiet: quiet, wanted: &wanted, quietSince: quietSince) : count
                wanted.kind[kind] = kind
            }
        }
        return wanted
    }

    /// Makes the stem cells the pool wants and lacks, one at a time, deciding again before each
    /// (a pass and a replacement that overlap never make the same one twice, and a burst that
    /// begins meanwhile defers the rest): with `only`, at most `limit` of that key's. Stem cells
    /// never push out warm containers: they wait for room. A cancelled pass (shutdown) makes no
    /// more. Those sized to a burst and deferred are made by ``deferredTopUp`` once it is quiet.
    private func topUp(only: String? = nil, limit: Int = .max) async {
        defer { publishSnapshot() }
        var made = 0
        var failed: Set<String> = []
        let next = { () -> (key: String, wanted: StemCellWants)? in
            let wanted = self.wantedStemCells()
            if let at = wanted.burstSizedAt { self.scheduleTopUp(at: at) }
            let key = self.state.stemCellPlan(wanted: wanted.count).create.keys.filter { (only == nil || $0 == only) && !failed.contains($0) }.min()
            return key.map { ($0, wanted) }
        }
        // Asked before a creation slot is taken (a burst's cold starts need them) and again after.
        while made < limit, !Task.isCancelled, !closed, next() != nil {
            await waitForCreateSlot()
            defer { freeCreateSlot() }
            guard let (key, wanted) = next(), let kind = wanted.kind[key], state.victims(for: 256).isEmpty, !closed else { break }
            do {
                try await createStemCell(kind: kind, memory: 256, namespace: wanted.namespace[key], stemKey: key)
                made += 1
            } catch {
                logger.error("cannot create a stem cell", metadata: ["stemCells": "\(key)", "error": "\(error)"])
                failed.insert(key)
            }
        }
    }

    /// A stem cell under `stemKey` was taken (or its namespace became recent): one is made at
    /// once if the pool wants one more, as upstream's pool replaces a prewarmed container when it
    /// takes one. Left to the next maintenance pass (up to 5 s later), one fresh action in ten
    /// of a namespace invoked every few seconds found no stem cell and paid the overlay attach.
    private func replenish(_ stemKey: String) {
        guard !closed else { return }
        onTheSide { await self.topUp(only: stemKey, limit: 1) }
    }

    /// Tops the stem cells up at `instant` (when the invoker will have been quiet for
    /// `prewarmBurstQuiet`, unless a burst goes on: then the top-up defers them again). One is
    /// scheduled at a time; ``removeAll()`` cancels it.
    private func scheduleTopUp(at instant: ContinuousClock.Instant) {
        guard deferredTopUp == nil, !closed else { return }
        deferredTopUp = Task {
            try? await Task.sleep(until: instant, clock: .continuous)
            self.topUpDeferred()
        }
    }

    private func topUpDeferred() {
        deferredTopUp = nil
        guard !Task.isCancelled, !closed else { return }
        onTheSide { await self.topUp() }
    }

    /// Runs `work` beside the activations; ``removeAll()`` waits for it.
    private func onTheSide(_ work: @escaping @Sendable () async -> Void) {
        sideTaskCount += 1
        let number = sideTaskCount
        sideTasks[number] = Task {
            await work()
            self.sideTasks[number] = nil
        }
    }

    /// Removes every container of the pool (shutdown, or a drain period that ran out).
    public func removeAll() async {
        defer { publishSnapshot() }
        closed = true
        deferredTopUp?.cancel()
        deferredTopUp = nil
        // A container a side task is making joins the pool before the task ends: removed below.
        for task in Array(sideTasks.values) { await task.value }
        let keys = Array(state.entries.keys)
        for key in keys { transition(key, .shutdown) }
        await remove(keys)
    }

    public var counts: (warm: Int, prewarmed: Int, busy: Int) {
        (state.count(.warm), state.count(.stemCell), state.count(.initializing) + state.count(.running))
    }

    /// What `poolStateFile` holds: the Docker ids the pool knows, how many containers it is
    /// still creating (whose ids it may not know yet) and which of them are ready stem cells.
    public struct Snapshot: Codable, Sendable {
        public var containers: [String]
        public var creating: Int
        public var stemCells: [String]
    }

    /// Writes the pool's ``Snapshot`` to `poolStateFile`, if one is configured.
    private func publishSnapshot() {
        let counts = self.counts
        WhiskMetrics.setContainers(warm: counts.warm, prewarmed: counts.prewarmed, busy: counts.busy)
        guard let path = configuration.poolStateFile else { return }
        do {
            let data = try JSONEncoder().encode(Snapshot(containers: state.containerIDs.sorted(), creating: state.count(.creating),
                                                         stemCells: state.keys(in: .stemCell)))
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            logger.warning("cannot write the pool state file", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    /// Takes idle containers out for memory.
    private func evict(_ keys: [String]) async {
        let evicted = keys.filter { transition($0, .evicted) == .removing }
        guard !evicted.isEmpty else { return }
        logger.info("evicting idle containers for memory", metadata: ["count": "\(evicted.count)"])
        await remove(evicted)
    }

    /// Removes containers in `removing` from Docker and forgets them; one that cannot be removed
    /// stays (in `removing`) and is tried again by ``maintain()``. Placeholders of containers
    /// still being created are left to their creator, which sees the state and removes it.
    ///
    /// The invoker's kept-alive connection to a container that served activations is closed
    /// first, while the container still answers (`alive`): closed after it, its FIN went to an
    /// address nobody had, and the kernel's retransmissions kept the address's ARP entry
    /// unresolved, so the next container Docker gave that address (it hands out the lowest free
    /// one) waited for the next ARP probe, up to a second, before its `/init` connected.
    private func remove(_ keys: [String], alive: Bool = true, keptConnection: Bool = true) async {
        for key in keys where state.entries[key]?.state == .removing && !key.hasPrefix(Self.placeholderPrefix) && !removals.contains(key) {
            removals.insert(key)
            defer { removals.remove(key) }
            logs.stop(key)
            coldStarted[key] = nil
            if alive, keptConnection, let container = state.entries[key]?.container, container.actionKey != nil, !container.address.isEmpty {
                await closeConnections(container.address)
            }
            do {
                try await docker.removeContainer(key)
                state.removed(key)
            } catch let error as DockerError where error.isNotFound {
                state.removed(key)
            } catch {
                logger.warning("cannot remove container; will retry", metadata: ["container": "\(state.entries[key]?.container.name ?? key)", "error": "\(error)"])
            }
        }
    }

    // MARK: Creation

    private func waitForCreateSlot() async {
        while creating >= configuration.maxConcurrentCreates {
            await withCheckedContinuation { createWaiters.append($0) }
        }
        creating += 1
    }

    private func freeCreateSlot() {
        creating -= 1
        if !createWaiters.isEmpty { createWaiters.removeFirst().resume() }
    }

    /// Creates and starts a container (a stem cell under `stemKey`, or one for an activation),
    /// attaching a namespace stem cell to its overlay when `attach` is set. The pool knows it
    /// from the first moment, in `creating`; whatever fails, nothing is leaked.
    ///
    /// The work is not cancelled with the caller: Docker goes on making a container whose create
    /// request was cut off, and the pool would never learn its id (a shutdown that cancelled the
    /// pool's maintenance mid-create left such a container behind).
    private func create(kind: String, image: String? = nil, memory: Int, namespace: String, action: String, stemKey: String?, attach: Bool,
                        actionKey: String? = nil) async throws -> ActionContainer {
        guard let image = image ?? configuration.runtimeImages[kind] else {
            throw InvokerError("no runtime image for kind '\(kind)'")
        }
        var attempt = 0
        while true {
            attempt += 1
            // In the pool before the first suspension: the activations decided next see it coming
            // (and its memory as used). Added inside the task, a burst's later activations were
            // placed before it existed and each made a container of its own.
            sequence += 1
            let name = Self.containerName(invoker: configuration.instance, sequence: sequence, namespace: namespace, action: action)
            let placeholder = "\(Self.placeholderPrefix)\(sequence)"
            state.addCreating(ActionContainer(id: placeholder, name: name, address: "", kind: kind, memory: memory, namespace: nil, overlayIP: nil,
                                              actionKey: actionKey, lastUsed: .now), key: placeholder, stemKey: stemKey)
            do {
                return try await Task {
                    try await self.createAndStart(placeholder: placeholder, name: name, kind: kind, image: image, memory: memory, namespace: namespace,
                                                  action: action, stemKey: stemKey, attach: attach, actionKey: actionKey)
                }.value
            } catch {
                // The action network went away under us (an operator removed it while unused), or
                // another invoker on this host made a second one at the same moment: made again
                // (or the duplicate removed), then the container.
                guard attempt < 4, !closed, let actionNetwork, await actionNetwork.isMissing(error) else { throw error }
                logger.warning("the action network is gone or doubled; making it again", metadata: ["network": "\(configuration.actionNetwork)", "error": "\(error)"])
                try await actionNetwork.ensure()
                try? await Task.sleep(for: .milliseconds(50 * attempt))
            }
        }
    }

    /// Creates and starts the container that `placeholder` stands for. `image` is a blackbox
    /// action's own or the kind's runtime image; `actionKey` the action it is made for.
    private func createAndStart(placeholder: String, name: String, kind: String, image: String, memory: Int, namespace: String, action: String,
                                stemKey: String?, attach: Bool, actionKey: String?) async throws -> ActionContainer {
        var name = name
        var spec = ContainerSpec(image: image, name: name)
        spec.labels = configuration.containerLabels.merging(["org.whiskmesh.kind": kind]) { $1 }
        spec.memoryBytes = Int64(memory) * 1024 * 1024
        var mountedNamespace: String?
        let id: String
        do {
            // By id: a name two networks share (see ActionNetwork) is refused as ambiguous.
            spec.network = try await actionNetwork?.id() ?? configuration.actionNetwork
            if overlays != nil, let mapFiles {
                // The namespace's map folder, read-only: the folder, not the file, so renames show.
                try await mapFiles.prepare(namespace: namespace)
                let hostRoot = configuration.addressMapHostDirectory ?? configuration.addressMapDirectory
                spec.binds = ["\(hostRoot)/\(AddressMapFileWriter.folderName(namespace: namespace)):\(InvokerConfiguration.addressMapMountPoint):ro"]
                spec.labels["org.whiskmesh.namespace"] = namespace
                mountedNamespace = namespace
            }
            var created: String?
            for attempt in 1...5 where created == nil {
                do {
                    created = try await docker.createContainer(spec)
                } catch let error as DockerError where error.isConflict && attempt < 5 {
                    // The name is taken: another process with this instance id on the same engine
                    // (tests run several platforms on one Docker) counts the same numbers. The next one.
                    sequence += 1
                    name = Self.containerName(invoker: configuration.instance, sequence: sequence, namespace: namespace, action: action)
                    spec.name = name
                }
            }
            id = created!
        } catch {
            state.removed(placeholder)
            throw error
        }
        var container = ActionContainer(id: id, name: name, address: "", kind: kind, memory: memory, namespace: mountedNamespace, overlayIP: nil,
                                        actionKey: actionKey, lastUsed: .now)
        state.rekey(placeholder, to: container)
        do {
            try await docker.startContainer(id)
            logs.follow(id)
            let inspect = try await docker.inspectContainer(id)
            guard let address = inspect.ipAddress(onNetwork: configuration.actionNetwork) else {
                // Docker frees the address of a container that exited (an image without a proxy).
                throw InvokerError(inspect.state.running ? "container \(name) has no address on \(configuration.actionNetwork)"
                                   : "container \(name) stopped before its proxy answered (\(inspect.state.status), exit code \(inspect.state.exitCode))")
            }
            container.address = address
            if attach, let overlays {
                do {
                    container.overlayIP = try await overlays.attach(containerID: id, namespace: namespace)
                } catch {
                    transition(id, .failed(.overlayAttach))
                    throw error
                }
            }
            guard state.entries[id]?.state == .creating else {
                throw InvokerError("container \(name) was removed while it was being created (shutdown)")
            }
            state.update(container, key: id)
            transition(id, .started(forActivation: stemKey == nil))
            return container
        } catch {
            transition(id, .failed(.create))
            await remove([id])
            throw error
        }
    }

    /// OpenWhisk's pattern `wsk{invoker}_{n}_{namespace}_{action}`, sanitised for Docker.
    static func containerName(invoker: Int, sequence: Int, namespace: String, action: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
        let clean = { (text: String) in String(text.map { allowed.contains($0) ? $0 : "_" }.prefix(40)) }
        return "wsk\(invoker)_\(sequence)_\(clean(namespace))_\(clean(action))"
    }
}

extension Array {
    func partitioned(_ predicate: (Element) -> Bool) -> ([Element], [Element]) {
        var matching: [Element] = []
        var rest: [Element] = []
        for element in self {
            if predicate(element) { matching.append(element) } else { rest.append(element) }
        }
        return (matching, rest)
    }
}

/// An invoker failure with a message for the activation record.
public struct InvokerError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
