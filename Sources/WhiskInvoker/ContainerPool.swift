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
    /// The namespace whose map folder is mounted (overlay mode), nil for a generic stem cell.
    public var namespace: String?
    /// Address on the namespace's overlay, once attached.
    public var overlayIP: String?
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
    private let overlays: OverlayNetworks?
    private let writer: AddressMapFileWriter?
    /// Namespaces by the time of their last activation, for namespace stem cells.
    private var recentNamespaces: [String: ContinuousClock.Instant] = [:]

    public init(docker: DockerClient, configuration: InvokerConfiguration, overlays: OverlayNetworks? = nil,
                writer: AddressMapFileWriter? = nil, logger: Logger) {
        self.docker = docker
        self.configuration = configuration
        self.overlays = overlays
        self.writer = writer
        self.logger = logger
    }

    /// Stem-cell pools are per kind, and in overlay mode per kind and namespace.
    private func stemKey(kind: String, namespace: String) -> String {
        overlays == nil ? kind : "\(kind)|\(namespace)"
    }

    /// A container for `actionKey`: warm if one is idle, else a stem cell, else a new one.
    /// - Returns: the container and whether it still needs `/init`.
    public func acquire(actionKey: String, kind: String, memory: Int, namespace: String, action: String) async throws -> (ActionContainer, needsInit: Bool) {
        if var container = warm[actionKey]?.popLast() {
            container.lastUsed = .now
            busy[container.id] = container
            return (container, false)
        }
        recentNamespaces[namespace] = .now
        let stem = stemKey(kind: kind, namespace: namespace)
        if var container = prewarmed[stem]?.popLast(), container.memory >= memory {
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
        if let overlays {
            // Stem cells for recently active namespaces: map mounted and overlay attached ahead of time.
            let window = ContinuousClock.now - configuration.prewarmNamespaceWindow
            recentNamespaces = recentNamespaces.filter { $0.value > window }
            let namespaces = recentNamespaces.sorted { $0.value > $1.value }.prefix(configuration.prewarmNamespaces).map(\.key)
            let active = Set(namespaces.map { stemKey(kind: "python:3", namespace: $0) })
            for (key, cells) in prewarmed where !active.contains(key) {
                prewarmed[key] = nil
                for cell in cells { await destroy(cell) }
            }
            for namespace in namespaces {
                for (kind, _) in configuration.prewarmCount where configuration.prewarmPerNamespace > 0 {
                    let key = stemKey(kind: kind, namespace: namespace)
                    let missing = configuration.prewarmPerNamespace - (prewarmed[key]?.count ?? 0)
                    for _ in 0..<max(0, missing) {
                        do {
                            var container = try await create(kind: kind, memory: 256, namespace: namespace, action: "prewarm")
                            container.overlayIP = try await overlays.attach(containerID: container.id, namespace: namespace)
                            prewarmed[key, default: []].append(container)
                        } catch {
                            logger.error("cannot create a namespace stem cell", metadata: ["namespace": "\(namespace)", "error": "\(error)"])
                            break
                        }
                    }
                }
            }
            return
        }
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
        var mountedNamespace: String?
        if overlays != nil, let writer {
            // The namespace's map folder, read-only: the folder, not the file, so renames show.
            try writer.prepare(namespace: namespace)
            let hostRoot = configuration.addressMapHostDirectory ?? configuration.addressMapDirectory
            spec.binds = ["\(hostRoot)/\(AddressMapFileWriter.folderName(namespace: namespace)):\(InvokerConfiguration.addressMapMountPoint):ro"]
            spec.labels["org.whiskmesh.namespace"] = namespace
            mountedNamespace = namespace
        }
        let id = try await docker.createContainer(spec)
        do {
            try await docker.startContainer(id)
            let inspect = try await docker.inspectContainer(id)
            guard let address = inspect.ipAddress(onNetwork: configuration.actionNetwork) else {
                throw InvokerError("container \(name) has no address on \(configuration.actionNetwork)")
            }
            return ActionContainer(id: id, name: name, address: address, kind: kind, memory: memory, namespace: mountedNamespace, overlayIP: nil,
                                   actionKey: nil, logCursor: nil, lastUsed: .now)
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
