import Foundation
import Logging
import WhiskDocker

/// The local bridge network over which the invoker reaches its containers (`/init`, `/run`),
/// shared by every invoker on the Docker host.
///
/// The network is internal: its members have no route out through the host. Without that, a
/// container could send to another namespace's overlay address via its default gateway, and the
/// host would forward it (measured: it left the machine on the host's default route).
public actor ActionNetwork {
    private let docker: DockerClient
    public nonisolated let name: String
    private let logger: Logger

    public init(docker: DockerClient, name: String, logger: Logger) {
        self.docker = docker
        self.name = name
        self.logger = logger
    }

    /// The id of the network containers are made on; made first if need be.
    public func id() async throws -> String {
        if let current { return current }
        try await ensure()
        guard let current else { throw InvokerError("network \(name) could not be made") }
        return current
    }
    private var current: String? {
        didSet { if let current { handedOut.insert(current) } }
    }
    /// Every id containers were made on: a container made on one that has gone since fails with
    /// that id in its error, also after another container's failure made the network anew.
    private var handedOut: Set<String> = []

    /// Whether Docker refused a container for want of this network: at start in swarm mode (the
    /// create succeeds whatever the network; Docker names the network by its name or by the id
    /// the container was made on), at create otherwise (by the id given). Any id this network
    /// ever had counts: containers made at once on an id that went all fail, and the first to
    /// fail makes the network anew before the others look. An error that names another network
    /// (a namespace overlay a stem cell is attached to) is not this one's.
    public func isMissing(_ error: Error) -> Bool {
        guard let error = error as? DockerError else { return false }
        let text = error.message.lowercased()
        let names = text.contains("network \(name.lowercased())") || handedOut.contains { text.contains($0.lowercased()) }
        return names && (text.contains("not found") || text.contains("no such network") || text.contains("ambiguous"))
    }

    /// Creates the network unless it exists. Docker does not keep local network names unique
    /// under concurrent creates (two invokers starting at once made two, and the first had
    /// started a container on its own before the second looked), and no container starts while
    /// two share the name. So every invoker keeps the one that has containers, else the one with
    /// the smallest id, and removes the others. A container made while there were two, or on a
    /// network removed (by this, an operator, or `scripts/stop` while this invoker had no
    /// container), fails to start; the pool calls this again and makes the container anew
    /// (``isMissing(_:)``).
    public func ensure() async throws {
        // One pass at a time: containers that fail together all ask, and passes side by side
        // could each make a network (a duplicate of this invoker's own).
        if let ensuring { return try await ensuring.value }
        let pass = Task { try await self.pass() }
        ensuring = pass
        defer { ensuring = nil }
        try await pass.value
    }
    private var ensuring: Task<Void, Error>?
    /// How many passes ``ensure()`` made (concurrent calls share one).
    public private(set) var passes = 0

    private func pass() async throws {
        passes += 1
        var existing = try await docker.networks(named: name, replacing: {
            !$0.isInternal || $0.options["com.docker.network.bridge.enable_icc"] != "false"
        }, because: "it is not internal with inter-container traffic off")
        if existing.isEmpty {
            var network = NetworkSpec(name: name, driver: "bridge")
            network.attachable = false
            network.internal = true
            network.labels = ["org.whiskmesh.managed": "true"]
            // Containers must not reach each other over the network that carries invoker traffic.
            network.options = ["com.docker.network.bridge.enable_icc": "false"]
            do {
                _ = try await docker.createNetwork(network)
                logger.info("action network created", metadata: ["network": "\(name)"])
            } catch let error as DockerError where error.isConflict {
                // Another invoker created it at the same moment.
            }
            existing = try await docker.networks(named: name)
        }
        // The one with containers (none can start on either while both exist: Docker resolves a
        // container's network by name at its start, and refuses an ambiguous one), else the
        // smallest id: every invoker that looks chooses the same.
        var members: [String: Int] = [:]
        if existing.count > 1 {
            for network in existing { members[network.id] = (try? await docker.inspectNetwork(network.id).containerCount) ?? 0 }
        }
        let sorted = existing.sorted { a, b in
            let (left, right) = (members[a.id] ?? 0, members[b.id] ?? 0)
            return left != right ? left > right : a.id < b.id
        }
        current = sorted.first?.id
        for duplicate in sorted.dropFirst() {
            do {
                try await docker.removeNetwork(duplicate.id)
                logger.info("duplicate action network removed", metadata: ["network": "\(name)", "id": "\(duplicate.id)", "kept": "\(sorted[0].id)"])
            } catch {
                // In use: its containers keep it until they go.
                logger.warning("cannot remove a duplicate action network yet", metadata: ["network": "\(name)", "id": "\(duplicate.id)", "error": "\(error)"])
            }
        }
    }
}

extension DockerClient {
    /// The networks named exactly `name` (Docker's filter matches parts of names), less those
    /// `replacing` picks: an older version's weaker network, removed so that a new one is made.
    /// One still in use cannot be, and fails the call with `reason`.
    func networks(named name: String, replacing: (NetworkInspect) -> Bool = { _ in false }, because reason: String = "") async throws -> [NetworkInspect] {
        var existing = try await listNetworks(name: name).filter { $0.name == name }
        for network in existing where replacing(network) {
            do {
                try await removeNetwork(network.id)
            } catch {
                throw InvokerError("network \(name) cannot be replaced (\(reason)): \(error)")
            }
            existing.removeAll { $0.id == network.id }
        }
        return existing
    }
}
