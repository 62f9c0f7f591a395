import WhiskMessages

/// Chooses an invoker like OpenWhisk's ShardingContainerPoolBalancer: a home invoker from a hash
/// of namespace and action, then steps of a size coprime to the invoker count over the usable
/// invokers with a free memory slot. Pure state; the controller keeps it behind a lock.
public struct ShardingBalancer: Sendable {
    /// Free memory per invoker instance, in MB (may go negative when forced).
    public private(set) var freeMemory: [Int: Int] = [:]
    private var capacity: [Int: Int] = [:]
    /// Where each running activation holds memory, to release on completion.
    private var holdings: [ActivationId: (instance: Int, memory: Int)] = [:]

    public init() {}

    /// Learns or updates an invoker's capacity from its pings.
    public mutating func updateCapacity(instance: Int, userMemory: ByteSize) {
        let total = Int(userMemory.megabytes)
        let old = capacity[instance] ?? 0
        capacity[instance] = total
        freeMemory[instance, default: 0] += total - old
    }

    /// Picks an invoker for an activation needing `memory` MB and reserves that memory.
    ///
    /// - Parameters:
    ///   - usable: the instance numbers that may take work now.
    ///   - preferring: an invoker to take if it is usable and has the memory free (the stages of
    ///     one peer-to-peer sequence, placed together); otherwise the choice is the usual one.
    /// - Returns: nil when no invoker is usable.
    public mutating func schedule(activationId: ActivationId, namespace: String, action: String, memory: Int, usable: Set<Int>,
                                  preferring: Int? = nil) -> Int? {
        let instances = capacity.keys.sorted()
        guard !instances.isEmpty, !usable.isDisjoint(with: instances) else { return nil }
        if let preferring, usable.contains(preferring), capacity[preferring] != nil, freeMemory[preferring, default: 0] >= memory {
            freeMemory[preferring, default: 0] -= memory
            holdings[activationId] = (preferring, memory)
            return preferring
        }
        let count = instances.count
        let hash = Self.hash("\(namespace)/\(action)")
        let steps = Self.stepSizes(count)
        let step = steps[Int(hash % UInt64(steps.count))]
        let home = Int(hash % UInt64(count))
        var chosen: Int?
        for attempt in 0..<count {
            let instance = instances[(home + attempt * step) % count]
            if usable.contains(instance), freeMemory[instance, default: 0] >= memory {
                chosen = instance
                break
            }
        }
        if chosen == nil {
            // Every usable invoker is full: OpenWhisk forces the activation onto one of them,
            // chosen by the same hash so that warm containers are likely reused.
            let candidates = instances.filter(usable.contains)
            chosen = candidates[Int(hash % UInt64(candidates.count))]
        }
        guard let chosen else { return nil }
        freeMemory[chosen, default: 0] -= memory
        holdings[activationId] = (chosen, memory)
        return chosen
    }

    /// Releases what `activationId` reserved; a second release is a no-op.
    @discardableResult
    public mutating func release(activationId: ActivationId) -> Int? {
        guard let holding = holdings.removeValue(forKey: activationId) else { return nil }
        freeMemory[holding.instance, default: 0] += holding.memory
        return holding.instance
    }

    public var runningCount: Int { holdings.count }

    /// Step sizes: the numbers 1...count coprime to count.
    static func stepSizes(_ count: Int) -> [Int] {
        func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
        let steps = (1...max(count, 1)).filter { gcd($0, count) == 1 }
        return steps.isEmpty ? [1] : steps
    }

    static func hash(_ string: String) -> UInt64 { StableHash.fnv1a(string) }
}
