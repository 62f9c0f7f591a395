import Foundation
import Logging
import WhiskDocker
import WhiskMessages

/// One attachable overlay network per namespace, created on demand and shared by all invokers.
///
/// Names are deterministic, so two invokers creating the same namespace's network at once race
/// harmlessly: swarm keeps overlay names unique, and the loser uses the winner's network.
/// Attaches are bounded (Docker's attach times out after 20 s with ~100 at once) and retried on
/// Docker's "context deadline exceeded".
public actor OverlayNetworks {
    private let docker: DockerClient
    private let configuration: InvokerConfiguration
    private let logger: Logger
    private var ready: Set<String> = []
    private var attaching = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []

    public init(docker: DockerClient, configuration: InvokerConfiguration, logger: Logger) {
        self.docker = docker
        self.configuration = configuration
        self.logger = logger
    }

    /// `whiskmesh-ns-<sanitised namespace>-<hash>`: stable, valid for Docker, distinct per namespace.
    public static func networkName(namespace: String, prefix: String = "whiskmesh-ns-") -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789_.-")
        let clean = String(namespace.lowercased().map { allowed.contains($0) ? $0 : "_" }.prefix(40))
        return "\(prefix)\(clean)-\(String(fnv(namespace) & 0xffff_ffff, radix: 16))"
    }

    static func fnv(_ text: String) -> UInt64 { StableHash.fnv1a(text) }

    /// The subnet for a namespace: a block of the configured pool chosen by hash, stepping over
    /// blocks that existing WhiskMesh overlays use.
    static func subnet(namespace: String, pool: String, prefixLength: Int, taken: Set<String>) -> String? {
        let parts = pool.split(separator: "/")
        guard parts.count == 2, let poolLength = Int(parts[1]), poolLength <= prefixLength, prefixLength <= 30 else { return nil }
        let octets = parts[0].split(separator: ".").compactMap { UInt32($0) }
        guard octets.count == 4 else { return nil }
        let base = octets.reduce(0) { ($0 << 8) | $1 } & ~((1 << (32 - UInt32(poolLength))) &- 1)
        let blocks = 1 << (prefixLength - poolLength)
        let start = Int(fnv(namespace) % UInt64(blocks))
        for probe in 0..<blocks {
            let index = (start + probe) % blocks
            let address = base + (UInt32(index) << UInt32(32 - prefixLength))
            let text = "\(address >> 24).\((address >> 16) & 0xff).\((address >> 8) & 0xff).\(address & 0xff)/\(prefixLength)"
            if !taken.contains(text) { return text }
        }
        return nil
    }

    /// Makes sure the namespace's overlay exists; returns its name.
    public func ensure(namespace: String) async throws -> String {
        let name = Self.networkName(namespace: namespace, prefix: configuration.overlayNamePrefix)
        if ready.contains(name) { return name }
        // One made by an older version with a route off the overlay is replaced while unused.
        let existing = try await docker.networks(named: name, replacing: { !$0.isInternal }, because: "it is not internal")
        if existing.isEmpty {
            let taken = Set(try await docker.listNetworks(labels: ["org.whiskmesh.overlay"]).flatMap(\.subnets))
            var spec = NetworkSpec(name: name, driver: "overlay")
            spec.attachable = true
            // Internal: Docker adds no docker_gwbridge leg, so no route leads off the overlay.
            spec.internal = true
            spec.labels = configuration.containerLabels.filter { $0.key != "org.whiskmesh.invoker" && $0.key != "org.whiskmesh.deployment" }
                .merging(["org.whiskmesh.overlay": "true", "org.whiskmesh.namespace": namespace]) { $1 }
            spec.subnet = Self.subnet(namespace: namespace, pool: configuration.overlaySubnetPool, prefixLength: configuration.overlayPrefixLength, taken: taken)
            do {
                _ = try await docker.createNetwork(spec)
                logger.info("overlay network created", metadata: ["namespace": "\(namespace)", "network": "\(name)", "subnet": "\(spec.subnet ?? "default")"])
            } catch let error as DockerError where error.isConflict || error.message.contains("name conflicts") || error.message.contains("already exists") {
                // Another invoker created it first.
            }
        }
        ready.insert(name)
        return name
    }

    /// Attaches a running container to its namespace's overlay and returns its address there.
    public func attach(containerID: String, namespace: String) async throws -> String {
        let network = try await ensure(namespace: namespace)
        while attaching >= configuration.maxConcurrentAttaches {
            await withCheckedContinuation { waiters.append($0) }
        }
        attaching += 1
        defer {
            attaching -= 1
            if !waiters.isEmpty { waiters.removeFirst().resume() }
        }
        var attempt = 0
        while true {
            attempt += 1
            do {
                try await docker.connect(container: containerID, toNetwork: network)
                break
            } catch let error as DockerError where error.isDeadlineExceeded && attempt < 3 {
                logger.warning("overlay attach timed out; retrying", metadata: ["attempt": "\(attempt)", "network": "\(network)"])
            } catch let error as DockerError where error.isNotFound && attempt < 3 {
                // The network was removed behind our back: create it again.
                ready.remove(network)
                _ = try await ensure(namespace: namespace)
            }
        }
        let inspect = try await docker.inspectContainer(containerID)
        guard let address = inspect.ipAddress(onNetwork: network) else {
            throw InvokerError("container has no address on \(network) after attaching")
        }
        return address
    }
}
