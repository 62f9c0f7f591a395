import Foundation
import Logging
import WhiskDocker

/// One action container the invoker owns.
public struct ActionContainer: Sendable, Hashable {
    public var id: String
    public var name: String
    /// Address on the invoker's action network, where `/init` and `/run` go.
    public var address: String
    public var kind: String
    public var memory: Int
    /// The action it was initialised with (`namespace/name@rev`), nil for a stem cell.
    public var actionKey: String?
    /// Timestamp (RFC 3339, Docker's) of the last log line already collected.
    public var logCursor: String?
    public var lastUsed: ContinuousClock.Instant
}

/// Containers by state: warm (initialised, idle, per action), prewarmed stem cells (per kind)
/// and busy. Creation is bounded; idle containers are reaped. Docker calls happen outside the
/// actor's state changes, so a slow create never blocks reuse.
public actor ContainerPool {
    private let docker: DockerClient
    private let configuration: InvokerConfiguration
    private let logger: Logger
    private var warm: [String: [ActionContainer]] = [:]
    private var prewarmed: [String: [ActionContainer]] = [:]
    private var busy: [String: ActionContainer] = [:]
    private var creating = 0
    private var createWaiters: [CheckedContinuation<Void, Never>] = []
    private var sequence = 0

    public init(docker: DockerClient, configuration: InvokerConfiguration, logger: Logger) {
        self.docker = docker
        self.configuration = configuration
        self.logger = logger
    }

    /// A container for `actionKey`: warm if one is idle, else a stem cell, else a new one.
    /// - Returns: the container and whether it still needs `/init`.
    public func acquire(actionKey: String, kind: String, memory: Int, namespace: String, action: String) async throws -> (ActionContainer, needsInit: Bool) {
        if var container = warm[actionKey]?.popLast() {
            container.lastUsed = .now
            busy[container.id] = container
            return (container, false)
        }
        if var container = prewarmed[kind]?.popLast(), container.memory >= memory {
            container.actionKey = actionKey
            busy[container.id] = container
            return (container, true)
        }
        var container = try await create(kind: kind, memory: memory, namespace: namespace, action: action)
        container.actionKey = actionKey
        busy[container.id] = container
        return (container, true)
    }

    /// Returns a container after its activation: back to the warm pool, or destroyed.
    public func release(_ container: ActionContainer, reusable: Bool) async {
        busy[container.id] = nil
        guard reusable, let key = container.actionKey else {
            await destroy(container)
            return
        }
        var container = container
        container.lastUsed = .now
        warm[key, default: []].append(container)
    }

    /// Forgets a container Docker reported dead.
    public func forget(containerID: String) {
        busy[containerID] = nil
        for key in warm.keys { warm[key]?.removeAll { $0.id == containerID } }
        for key in prewarmed.keys { prewarmed[key]?.removeAll { $0.id == containerID } }
    }

    /// Removes idle containers past the idle timeout and tops up the stem cells.
    public func maintain() async {
        let cutoff = ContinuousClock.now - configuration.idleTimeout
        var expired: [ActionContainer] = []
        for key in warm.keys {
            let (old, keep) = (warm[key] ?? []).partitioned { $0.lastUsed < cutoff }
            warm[key] = keep.isEmpty ? nil : keep
            expired += old
        }
        for container in expired { await destroy(container) }
        for (kind, wanted) in configuration.prewarmCount {
            let missing = wanted - (prewarmed[kind]?.count ?? 0)
            guard missing > 0 else { continue }
            for _ in 0..<missing {
                do {
                    let container = try await create(kind: kind, memory: 256, namespace: "prewarm", action: kind)
                    prewarmed[kind, default: []].append(container)
                } catch {
                    logger.error("cannot create a stem cell", metadata: ["kind": "\(kind)", "error": "\(error)"])
                    break
                }
            }
        }
    }

    /// Removes every container of the pool (shutdown).
    public func removeAll() async {
        let all = warm.values.flatMap { $0 } + prewarmed.values.flatMap { $0 } + Array(busy.values)
        warm = [:]
        prewarmed = [:]
        busy = [:]
        for container in all { await destroy(container) }
    }

    public var counts: (warm: Int, prewarmed: Int, busy: Int) {
        (warm.values.map(\.count).reduce(0, +), prewarmed.values.map(\.count).reduce(0, +), busy.count)
    }

    public func destroy(_ container: ActionContainer) async {
        do {
            try await docker.removeContainer(container.id)
        } catch {
            logger.warning("cannot remove container", metadata: ["container": "\(container.name)", "error": "\(error)"])
        }
    }

    // MARK: Creation

    private func create(kind: String, memory: Int, namespace: String, action: String) async throws -> ActionContainer {
        guard let image = configuration.runtimeImages[kind] else {
            throw InvokerError("no runtime image for kind '\(kind)'")
        }
        while creating >= configuration.maxConcurrentCreates {
            await withCheckedContinuation { createWaiters.append($0) }
        }
        creating += 1
        await makeRoom(for: memory)
        defer {
            creating -= 1
            if !createWaiters.isEmpty { createWaiters.removeFirst().resume() }
        }
        sequence += 1
        let name = Self.containerName(invoker: configuration.instance, sequence: sequence, namespace: namespace, action: action)
        var spec = ContainerSpec(image: image, name: name)
        spec.labels = configuration.containerLabels.merging(["org.whiskmesh.kind": kind]) { $1 }
        spec.memoryBytes = Int64(memory) * 1024 * 1024
        spec.network = configuration.actionNetwork
        let id = try await docker.createContainer(spec)
        do {
            try await docker.startContainer(id)
            let inspect = try await docker.inspectContainer(id)
            guard let address = inspect.ipAddress(onNetwork: configuration.actionNetwork) else {
                throw InvokerError("container \(name) has no address on \(configuration.actionNetwork)")
            }
            return ActionContainer(id: id, name: name, address: address, kind: kind, memory: memory, actionKey: nil, logCursor: nil, lastUsed: .now)
        } catch {
            // A container that failed to start is never leaked.
            try? await docker.removeContainer(id)
            throw error
        }
    }

    /// Memory held by the pool's containers, in MB.
    var usedMemory: Int {
        (warm.values.flatMap { $0 } + prewarmed.values.flatMap { $0 } + Array(busy.values)).map(\.memory).reduce(0, +)
    }

    /// Keeps the pool within the invoker's user memory: idle warm containers go first, least
    /// recently used first, then stem cells. Busy ones are never touched; the controller's slot
    /// accounting keeps their sum within the budget.
    private func makeRoom(for memory: Int) async {
        let budget = Int(configuration.userMemory.megabytes)
        var victims: [ActionContainer] = []
        var idle = warm.values.flatMap { $0 }.sorted { $0.lastUsed < $1.lastUsed }
        var stemCells = prewarmed.values.flatMap { $0 }
        while usedMemory - victims.map(\.memory).reduce(0, +) + memory > budget {
            if !idle.isEmpty {
                victims.append(idle.removeFirst())
            } else if !stemCells.isEmpty {
                victims.append(stemCells.removeFirst())
            } else {
                break
            }
        }
        guard !victims.isEmpty else { return }
        let ids = Set(victims.map(\.id))
        for key in warm.keys { warm[key]?.removeAll { ids.contains($0.id) } }
        for key in prewarmed.keys { prewarmed[key]?.removeAll { ids.contains($0.id) } }
        logger.info("evicting idle containers for memory", metadata: ["count": "\(victims.count)"])
        for victim in victims { await destroy(victim) }
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
