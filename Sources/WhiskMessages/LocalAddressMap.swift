import Foundation

/// An invoker's own instances and what it has told the controller about them; pure state.
///
/// Changes are tracked per key (dirty set) and published as the net difference since the last
/// update, so removing and re-adding an ID inside one heartbeat window is never lost.
public struct LocalAddressMap: Sendable {
    public let incarnation: String
    public private(set) var entries: [InstanceKey: AddressEntry] = [:]
    private var published: [InstanceKey: AddressEntry] = [:]
    private var dirty: Set<InstanceKey> = []
    private var seq: UInt64 = 0
    private var snapshotDue = true

    public init(incarnation: String) {
        self.incarnation = incarnation
    }

    public mutating func add(_ entry: AddressEntry) {
        entries[entry.key] = entry
        dirty.insert(entry.key)
    }

    /// Removes the entry of `key` if `activationId` still owns it.
    @discardableResult
    public mutating func remove(_ key: InstanceKey, activationId: ActivationId) -> Bool {
        guard entries[key]?.activationId == activationId else { return false }
        entries[key] = nil
        dirty.insert(key)
        return true
    }

    /// Removes every entry whose activation is in `activations` (their container died).
    public mutating func remove(activations: Set<ActivationId>) -> [AddressEntry] {
        let gone = entries.values.filter { activations.contains($0.activationId) }
        for entry in gone { _ = remove(entry.key, activationId: entry.activationId) }
        return gone
    }

    /// The controller asked for everything.
    public mutating func requestSnapshot() { snapshotDue = true }

    public var hasChanges: Bool { snapshotDue || !dirty.isEmpty }

    /// The next update to piggyback, or nil when nothing changed since the last one.
    public mutating func nextUpdate() -> AddressMapUpdate? {
        if snapshotDue {
            snapshotDue = false
            dirty = []
            published = entries
            seq += 1
            return AddressMapUpdate(incarnation: incarnation, seq: seq, snapshot: true, added: entries.values.sorted { $0.key < $1.key }, removed: [])
        }
        guard !dirty.isEmpty else { return nil }
        var added: [AddressEntry] = []
        var removed: [InstanceKey] = []
        for key in dirty.sorted() {
            switch (published[key], entries[key]) {
            case (let old, let new?) where old != new: added.append(new)
            case (_?, nil): removed.append(key)
            default: break
            }
        }
        for key in dirty { published[key] = entries[key] }
        dirty = []
        guard !added.isEmpty || !removed.isEmpty else { return nil }
        seq += 1
        return AddressMapUpdate(incarnation: incarnation, seq: seq, snapshot: false, added: added, removed: removed)
    }
}

/// The controller's global map, fed by invokers' updates; pure state.
///
/// Updates apply in order per invoker incarnation; a duplicate or old update is ignored, a gap or
/// an unknown incarnation asks for a snapshot. Every namespace has a version that grows by one
/// with each published change.
public struct GlobalAddressMap: Sendable {
    struct InvokerState: Sendable {
        var incarnation: String
        var seq: UInt64
        var keys: Set<InstanceKey>
    }

    private var invokers: [Int: InvokerState] = [:]
    public private(set) var namespaces: [String: [InstanceID: AddressEntry]] = [:]
    public private(set) var versions: [String: UInt64] = [:]
    /// Where every namespace's version starts. A controller passes a value above anything an
    /// earlier controller can have published (its start time × 1000), so invokers' replicas
    /// take a restarted controller's map as newer instead of ignoring it as old.
    public let baseVersion: UInt64

    public init(baseVersion: UInt64 = 0) {
        self.baseVersion = baseVersion
    }

    /// A base version for a controller starting now: epoch milliseconds × 1000 (below 2^53, so
    /// JSON readers in any language keep it exact).
    public static func baseVersion(now: Date = Date()) -> UInt64 {
        UInt64(max(0, now.timeIntervalSince1970 * 1000)) * 1000
    }

    /// One namespace's net change.
    public struct Change: Sendable, Equatable {
        public var namespace: String
        public var version: UInt64
        public var added: [AddressEntry]
        public var removed: [InstanceID]
    }

    public struct Outcome: Sendable, Equatable {
        public var changes: [Change] = []
        /// Ask this invoker for a snapshot: the update could not be applied.
        public var needsSnapshot = false
    }

    public mutating func apply(_ update: AddressMapUpdate, from invoker: Int) -> Outcome {
        if update.snapshot {
            let previous = invokers[invoker]?.keys ?? []
            let incoming = Dictionary(update.added.map { ($0.key, $0) }, uniquingKeysWith: { _, last in last })
            invokers[invoker] = InvokerState(incarnation: update.incarnation, seq: update.seq, keys: Set(incoming.keys))
            return Outcome(changes: record(invoker: invoker, added: Array(incoming.values), removed: Array(previous.subtracting(incoming.keys))))
        }
        guard var state = invokers[invoker], state.incarnation == update.incarnation else {
            return Outcome(needsSnapshot: true)
        }
        if update.seq <= state.seq { return Outcome() }  // duplicate or reordered old update
        guard update.seq == state.seq + 1 else { return Outcome(needsSnapshot: true) }
        state.seq = update.seq
        for entry in update.added { state.keys.insert(entry.key) }
        for key in update.removed { state.keys.remove(key) }
        invokers[invoker] = state
        return Outcome(changes: record(invoker: invoker, added: update.added, removed: update.removed))
    }

    /// Drops everything an invoker announced (it went offline).
    public mutating func drop(invoker: Int) -> [Change] {
        guard let state = invokers.removeValue(forKey: invoker) else { return [] }
        return record(invoker: invoker, added: [], removed: Array(state.keys))
    }

    public var knownInvokers: Set<Int> { Set(invokers.keys) }

    public func entries(namespace: String) -> [AddressEntry] {
        (namespaces[namespace] ?? [:]).values.sorted { $0.instanceID < $1.instanceID }
    }

    public func version(namespace: String) -> UInt64 { versions[namespace] ?? baseVersion }

    /// Applies adds and removes of one invoker; an entry is only removed by the invoker that owns it.
    private mutating func record(invoker: Int, added: [AddressEntry], removed: [InstanceKey]) -> [Change] {
        var perNamespace: [String: (added: [AddressEntry], removed: [InstanceID])] = [:]
        for key in removed {
            guard let current = namespaces[key.namespace]?[key.instanceID], current.invoker == invoker else { continue }
            namespaces[key.namespace]?[key.instanceID] = nil
            perNamespace[key.namespace, default: ([], [])].removed.append(key.instanceID)
        }
        for entry in added {
            guard namespaces[entry.namespace]?[entry.instanceID] != entry else { continue }
            namespaces[entry.namespace, default: [:]][entry.instanceID] = entry
            perNamespace[entry.namespace, default: ([], [])].added.append(entry)
            perNamespace[entry.namespace]?.removed.removeAll { $0 == entry.instanceID }
        }
        var changes: [Change] = []
        for (namespace, change) in perNamespace.sorted(by: { $0.key < $1.key }) where !change.added.isEmpty || !change.removed.isEmpty {
            let version = (versions[namespace] ?? baseVersion) + 1
            versions[namespace] = version
            if namespaces[namespace]?.isEmpty == true { namespaces[namespace] = nil }
            changes.append(Change(namespace: namespace, version: version, added: change.added, removed: change.removed))
        }
        return changes
    }
}

/// An invoker's copy of one namespace's map, fed by the controller's publications; pure state.
///
/// Deltas ahead of the replica's version (one was lost, or arrived after a later one) wait in a
/// bounded buffer and are applied once a snapshot closes the gap; snapshot parts are collected
/// until the whole map of their version is there.
public struct NamespaceMapReplica: Sendable, Equatable {
    public private(set) var version: UInt64 = 0
    public private(set) var entries: [InstanceID: AddressEntry] = [:]
    /// Whether a delta was skipped for a gap; a snapshot repairs it.
    public private(set) var stale = false

    struct Delta: Sendable, Equatable {
        var added: [AddressEntry]
        var removed: [InstanceID]
    }
    struct PartialSnapshot: Sendable, Equatable {
        var version: UInt64
        var parts: Int
        var received: [Int: [AddressEntry]] = [:]
    }
    private var ahead: [UInt64: Delta] = [:]
    private var partial: PartialSnapshot?
    /// Deltas kept while waiting for a snapshot; more are dropped (the snapshot covers them).
    public static let aheadLimit = 1_024

    public init() {}

    /// Applies a publication; returns whether the map changed.
    public mutating func apply(_ publication: AddressMapPublication) -> Bool {
        switch publication {
        case .snapshot(_, let version, let newEntries):
            return install(version: version, entries: newEntries)
        case .snapshotPart(_, let version, let part, let parts, let newEntries):
            guard version >= self.version else { return false }
            var collecting = partial ?? PartialSnapshot(version: version, parts: parts)
            if collecting.version > version { return false }  // a late part of an older snapshot
            if collecting.version < version || collecting.parts != parts {
                collecting = PartialSnapshot(version: version, parts: parts)
            }
            collecting.received[part] = newEntries
            guard collecting.received.count == parts else {
                partial = collecting
                return false
            }
            partial = nil
            return install(version: version, entries: (0..<parts).flatMap { collecting.received[$0] ?? [] })
        case .delta(_, let version, let added, let removed):
            guard version == self.version + 1 else {
                if version > self.version + 1 {
                    stale = true
                    if ahead.count < Self.aheadLimit { ahead[version] = Delta(added: added, removed: removed) }
                }
                return false
            }
            apply(Delta(added: added, removed: removed))
            self.version = version
            replayAhead()
            return true
        case .snapshotRequest, .namespaceActive:
            return false
        }
    }

    private mutating func install(version: UInt64, entries newEntries: [AddressEntry]) -> Bool {
        guard version >= self.version else { return false }
        let map = Dictionary(newEntries.map { ($0.instanceID, $0) }, uniquingKeysWith: { _, last in last })
        var changed = map != entries || version != self.version
        self.version = version
        entries = map
        stale = false
        if let partial, partial.version <= version { self.partial = nil }
        let before = self.version
        replayAhead()
        changed = changed || self.version != before
        return changed
    }

    private mutating func apply(_ delta: Delta) {
        for id in delta.removed { entries[id] = nil }
        for entry in delta.added { entries[entry.instanceID] = entry }
    }

    /// Applies buffered deltas that now follow on, and forgets those already covered.
    private mutating func replayAhead() {
        while let next = ahead.removeValue(forKey: version + 1) {
            apply(next)
            version += 1
        }
        ahead = ahead.filter { $0.key > version }
        stale = !ahead.isEmpty
    }
}
