/// One container the pool knows, in its lifecycle state.
public struct PoolEntry: Sendable, Equatable {
    public var container: ActionContainer
    public var state: ContainerState
    /// The stem-cell pool it was made for (kind, or kind and namespace); nil once claimed or
    /// when made for an activation.
    public var stemKey: String?
}

/// The pool's state and its decisions, as pure functions (OpenWhisk's `ContainerPool.schedule`
/// and `remove`): which container an activation gets, what to evict for memory, what expired,
/// which stem cells to create or drop. ``ContainerPool`` applies them and does the Docker work.
public struct PoolState: Sendable {
    /// By key: the container id, or a placeholder while it is being created.
    public private(set) var entries: [String: PoolEntry] = [:]
    /// User memory of the invoker, in MB.
    public var budget: Int

    public init(budget: Int) {
        self.budget = budget
    }

    // MARK: Decisions

    public enum Placement: Sendable, Equatable {
        /// An idle container initialised for the action.
        case warm(String)
        /// An idle stem cell of the action's kind (and namespace) with enough memory.
        case stemCell(String)
        /// A new container, after removing these idle ones to make room.
        case create(evicting: [String])
    }

    /// Where an activation of `actionKey` runs: the most recently used warm container of that
    /// action, else the smallest stem cell under `stemKey` that has `memory`, else a new one.
    public func place(actionKey: String, stemKey: String, memory: Int) -> Placement {
        let warm = entries.filter { $0.value.state == .warm && $0.value.container.actionKey == actionKey }
        if let newest = warm.max(by: { ($0.value.container.lastUsed, $0.key) < ($1.value.container.lastUsed, $1.key) }) {
            return .warm(newest.key)
        }
        let cells = entries.filter { $0.value.state == .stemCell && $0.value.stemKey == stemKey && $0.value.container.memory >= memory }
        if let smallest = cells.min(by: { ($0.value.container.memory, $0.key) < ($1.value.container.memory, $1.key) }) {
            return .stemCell(smallest.key)
        }
        return .create(evicting: victims(for: memory))
    }

    /// What an activation that found no idle container of its action does.
    public enum Queueing: Sendable, Equatable {
        /// Makes a container of its own.
        case create
        /// Waits for one of the action's containers (running, or being made); with `spare`, one
        /// more is made on the side for the queue.
        case wait(spare: Bool)
    }

    /// An activation of `actionKey` that found no idle container waits for one of the action's
    /// containers when, behind the `waiting` activations ahead of it, its expected wait is under
    /// half a cold start. A run of unknown length counts as an eighth of a cold start, so a first
    /// burst makes about one container for every four of its activations instead of one each (16
    /// cold starts at once on two cores took 3-4 s each; a no-op runs in 2 ms). A wait costing
    /// more than an eighth of a cold start, while none of the action's containers is coming, will
    /// recur in a steady load: it asks for a spare (a queue of 2 ms runs drains by itself; spares
    /// for it cost a steady pass its rate). The caller bounds the wait.
    public func queueing(actionKey: String, waiting: Int, runEstimate: Duration?, coldEstimate: Duration) -> Queueing {
        let coming = coming(actionKey: actionKey)
        let live = entries.values.filter { $0.container.actionKey == actionKey && $0.state == .running }.count + coming
        guard live > 0 else { return .create }
        let expected = (runEstimate ?? coldEstimate / 8) * (waiting + 1) / live
        guard expected < coldEstimate / 2 else { return .create }
        return .wait(spare: coming == 0 && expected > coldEstimate / 8)
    }

    /// Containers being made, or initialising, for `actionKey`.
    public func coming(actionKey: String) -> Int {
        entries.values.filter { $0.container.actionKey == actionKey && ($0.state == .creating || $0.state == .initializing) }.count
    }

    /// Idle containers to remove so that `memory` more fits the budget: warm ones least recently
    /// used first, then stem cells. Busy ones are never chosen (the controller's slots keep them
    /// within the budget); if idle ones do not suffice, as many as there are.
    public func victims(for memory: Int) -> [String] {
        var excess = usedMemory + memory - budget
        guard excess > 0 else { return [] }
        let warm = entries.filter { $0.value.state == .warm }.sorted { ($0.value.container.lastUsed, $0.key) < ($1.value.container.lastUsed, $1.key) }
        let cells = entries.filter { $0.value.state == .stemCell }.sorted { $0.key < $1.key }
        var chosen: [String] = []
        for (key, entry) in warm + cells where excess > 0 {
            chosen.append(key)
            excess -= entry.container.memory
        }
        return chosen
    }

    /// Warm containers idle since before `cutoff`.
    public func expired(before cutoff: ContinuousClock.Instant) -> [String] {
        entries.filter { $0.value.state == .warm && $0.value.container.lastUsed < cutoff }.map(\.key).sorted()
    }

    /// Stem cells to create (per stem key) so each wanted key has its count, counting those being
    /// created; and idle stem cells under keys no longer wanted, to drop.
    public func stemCellPlan(wanted: [String: Int]) -> (create: [String: Int], drop: [String]) {
        var have: [String: Int] = [:]
        var drop: [String] = []
        for (key, entry) in entries {
            guard let stemKey = entry.stemKey, entry.state == .stemCell || entry.state == .creating else { continue }
            if wanted[stemKey] == nil {
                if entry.state == .stemCell { drop.append(key) }
            } else {
                have[stemKey, default: 0] += 1
            }
        }
        var create: [String: Int] = [:]
        for (stemKey, count) in wanted where count > have[stemKey, default: 0] {
            create[stemKey] = count - have[stemKey, default: 0]
        }
        return (create, drop.sorted())
    }

    /// Memory held by every container the pool knows (also those being created or removed), in MB.
    public var usedMemory: Int { entries.values.map(\.container.memory).reduce(0, +) }

    public func count(_ state: ContainerState) -> Int { entries.values.filter { $0.state == state }.count }

    public func keys(in state: ContainerState) -> [String] { entries.filter { $0.value.state == state }.map(\.key).sorted() }

    /// The Docker ids of the containers the pool knows (not those still being created).
    public var containerIDs: Set<String> {
        Set(entries.filter { $0.value.state != .creating }.map(\.key))
    }

    // MARK: Changes

    /// A container being created, under a placeholder key.
    public mutating func addCreating(_ container: ActionContainer, key: String, stemKey: String?) {
        entries[key] = PoolEntry(container: container, state: .creating, stemKey: stemKey)
    }

    /// A created container moves from its placeholder to its Docker id.
    public mutating func rekey(_ key: String, to container: ActionContainer) {
        guard var entry = entries.removeValue(forKey: key) else { return }
        entry.container = container
        entries[container.id] = entry
    }

    /// Applies `event` to the container under `key`.
    /// - Returns: the new state, or nil when the pool does not know `key` or the event cannot
    ///   happen in its state (the entry is left as it was).
    @discardableResult
    public mutating func apply(_ event: ContainerEvent, to key: String) -> ContainerState? {
        guard var entry = entries[key], let next = ContainerLifecycle.next(entry.state, on: event) else { return nil }
        if entry.state == .stemCell && next == .initializing { entry.stemKey = nil }
        entry.state = next
        entries[key] = entry
        return next
    }

    /// Updates what the pool keeps of a container (log cursor, overlay address, last use, action).
    public mutating func update(_ container: ActionContainer, key: String) {
        entries[key]?.container = container
    }

    /// Forgets a container that Docker no longer has.
    public mutating func removed(_ key: String) {
        entries[key] = nil
    }
}
