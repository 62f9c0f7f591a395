import Foundation

/// What ``DockerClient/createContainer(_:)`` creates.
public struct ContainerSpec: Sendable {
    public var name: String?
    public var image: String
    public var command: [String]?
    public var entrypoint: [String]?
    public var environment: [String: String] = [:]
    public var labels: [String: String] = [:]
    /// `host-path:container-path[:ro]` entries.
    public var binds: [String] = []
    public var memoryBytes: Int64?
    public var cpuShares: Int?
    /// The one network the container starts on (API 1.41 allows one at create).
    public var network: String?
    public var user: String?
    public var exposedPorts: [String] = []

    public init(image: String, name: String? = nil) {
        self.image = image
        self.name = name
    }
}

struct CreateContainerBody: Encodable {
    struct HostConfig: Encodable {
        var binds: [String]?
        var memory: Int64?
        var cpuShares: Int?
        var networkMode: String?
        enum CodingKeys: String, CodingKey {
            case binds = "Binds", memory = "Memory", cpuShares = "CpuShares", networkMode = "NetworkMode"
        }
    }
    struct NetworkingConfig: Encodable {
        var endpointsConfig: [String: [String: String]]
        enum CodingKeys: String, CodingKey { case endpointsConfig = "EndpointsConfig" }
    }
    var image: String
    var cmd: [String]?
    var entrypoint: [String]?
    var env: [String]
    var labels: [String: String]
    var user: String?
    var exposedPorts: [String: [String: String]]?
    var hostConfig: HostConfig
    var networkingConfig: NetworkingConfig?

    enum CodingKeys: String, CodingKey {
        case image = "Image", cmd = "Cmd", entrypoint = "Entrypoint", env = "Env", labels = "Labels", user = "User"
        case exposedPorts = "ExposedPorts", hostConfig = "HostConfig", networkingConfig = "NetworkingConfig"
    }

    init(_ spec: ContainerSpec) {
        image = spec.image
        cmd = spec.command
        entrypoint = spec.entrypoint
        env = spec.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        labels = spec.labels
        user = spec.user
        exposedPorts = spec.exposedPorts.isEmpty ? nil : Dictionary(uniqueKeysWithValues: spec.exposedPorts.map { ($0, [:]) })
        hostConfig = HostConfig(binds: spec.binds.isEmpty ? nil : spec.binds, memory: spec.memoryBytes, cpuShares: spec.cpuShares, networkMode: spec.network)
        networkingConfig = spec.network.map { NetworkingConfig(endpointsConfig: [$0: [:]]) }
    }
}

struct IdResponse: Decodable {
    var id: String
    enum CodingKeys: String, CodingKey { case id = "Id" }
}

/// A container as `inspect` reports it.
public struct ContainerInspect: Sendable, Decodable {
    public struct State: Sendable, Decodable {
        public var status: String
        public var running: Bool
        public var paused: Bool
        public var exitCode: Int
        public var oomKilled: Bool
        enum CodingKeys: String, CodingKey {
            case status = "Status", running = "Running", paused = "Paused", exitCode = "ExitCode", oomKilled = "OOMKilled"
        }
    }
    public struct Endpoint: Sendable, Decodable {
        public var ipAddress: String
        public var networkID: String
        enum CodingKeys: String, CodingKey { case ipAddress = "IPAddress", networkID = "NetworkID" }
    }
    struct NetworkSettings: Sendable, Decodable {
        var networks: [String: Endpoint]?
        enum CodingKeys: String, CodingKey { case networks = "Networks" }
    }
    struct Config: Sendable, Decodable {
        var labels: [String: String]?
        var image: String
        enum CodingKeys: String, CodingKey { case labels = "Labels", image = "Image" }
    }

    public var id: String
    public var name: String
    public var state: State
    var networkSettings: NetworkSettings
    var config: Config

    enum CodingKeys: String, CodingKey {
        case id = "Id", name = "Name", state = "State", networkSettings = "NetworkSettings", config = "Config"
    }

    public var labels: [String: String] { config.labels ?? [:] }
    /// Every network the container is on, by network name.
    public var networks: [String: Endpoint] { networkSettings.networks ?? [:] }
    /// The container's address on the network named `network` (never by position).
    public func ipAddress(onNetwork network: String) -> String? {
        guard let address = networks[network]?.ipAddress, !address.isEmpty else { return nil }
        return address
    }
}

/// One entry of a container listing.
public struct ContainerSummary: Sendable, Decodable {
    public var id: String
    public var names: [String]
    public var labels: [String: String]
    public var state: String
    enum CodingKeys: String, CodingKey { case id = "Id", names = "Names", labels = "Labels", state = "State" }
}

/// What ``DockerClient/createNetwork(_:)`` creates.
public struct NetworkSpec: Sendable {
    public var name: String
    public var driver: String = "overlay"
    public var attachable: Bool = true
    public var labels: [String: String] = [:]
    /// CIDR, e.g. `10.128.0.0/16`; Docker's default overlay /24 holds only ~250 containers.
    public var subnet: String?
    /// Driver options, e.g. `com.docker.network.bridge.enable_icc: false`.
    public var options: [String: String] = [:]
    public var `internal`: Bool = false
    /// Refuse a name another network has (best effort: Docker's check is not atomic).
    public var checkDuplicate = true

    public init(name: String, driver: String = "overlay") {
        self.name = name
        self.driver = driver
    }
}

struct CreateNetworkBody: Encodable {
    struct IPAM: Encodable {
        struct Config: Encodable {
            var subnet: String
            enum CodingKeys: String, CodingKey { case subnet = "Subnet" }
        }
        var config: [Config]
        enum CodingKeys: String, CodingKey { case config = "Config" }
    }
    var name: String
    var driver: String
    var attachable: Bool
    var checkDuplicate = true
    var labels: [String: String]
    var options: [String: String]
    var isInternal: Bool
    var ipam: IPAM?
    enum CodingKeys: String, CodingKey {
        case name = "Name", driver = "Driver", attachable = "Attachable", checkDuplicate = "CheckDuplicate"
        case labels = "Labels", options = "Options", isInternal = "Internal", ipam = "IPAM"
    }

    init(_ spec: NetworkSpec) {
        name = spec.name
        driver = spec.driver
        attachable = spec.attachable
        labels = spec.labels
        options = spec.options
        isInternal = spec.internal
        checkDuplicate = spec.checkDuplicate
        ipam = spec.subnet.map { IPAM(config: [IPAM.Config(subnet: $0)]) }
    }
}

/// A network as `inspect` and `list` report it.
public struct NetworkInspect: Sendable, Decodable {
    public struct IPAM: Sendable, Decodable {
        public struct Config: Sendable, Decodable {
            public var subnet: String?
            enum CodingKeys: String, CodingKey { case subnet = "Subnet" }
        }
        public var config: [Config]?
        enum CodingKeys: String, CodingKey { case config = "Config" }
    }
    public var id: String
    public var name: String
    public var driver: String
    public var scope: String
    public var attachable: Bool
    public var labels: [String: String]
    public var ipam: IPAM?
    public var options: [String: String]
    /// No route out of the network: Docker drops what its members send elsewhere.
    public var isInternal: Bool
    /// Containers with an endpoint on it (on this host); filled by `inspect`, not by `list`.
    public var containerCount: Int

    private struct Endpoint: Decodable {}

    enum CodingKeys: String, CodingKey {
        case id = "Id", name = "Name", driver = "Driver", scope = "Scope", attachable = "Attachable", labels = "Labels", ipam = "IPAM", options = "Options"
        case isInternal = "Internal", containers = "Containers"
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        name = try container.decode(String.self, forKey: .name)
        driver = try container.decode(String.self, forKey: .driver)
        scope = try container.decodeIfPresent(String.self, forKey: .scope) ?? ""
        attachable = try container.decodeIfPresent(Bool.self, forKey: .attachable) ?? false
        labels = try container.decodeIfPresent([String: String].self, forKey: .labels) ?? [:]
        ipam = try container.decodeIfPresent(IPAM.self, forKey: .ipam)
        options = try container.decodeIfPresent([String: String].self, forKey: .options) ?? [:]
        isInternal = try container.decodeIfPresent(Bool.self, forKey: .isInternal) ?? false
        containerCount = try container.decodeIfPresent([String: Endpoint].self, forKey: .containers)?.count ?? 0
    }

    public var subnets: [String] { ipam?.config?.compactMap(\.subnet) ?? [] }
}

/// An image as `list` and `inspect` report it.
public struct ImageSummary: Sendable, Decodable {
    public var id: String
    public var repoTags: [String]
    public var labels: [String: String]
    public var size: Int64

    enum CodingKeys: String, CodingKey { case id = "Id", repoTags = "RepoTags", labels = "Labels", size = "Size" }
    enum InspectKeys: String, CodingKey { case config = "Config" }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        repoTags = try container.decodeIfPresent([String].self, forKey: .repoTags) ?? []
        size = try container.decodeIfPresent(Int64.self, forKey: .size) ?? 0
        if let labels = try? container.decodeIfPresent([String: String].self, forKey: .labels) {
            self.labels = labels
        } else {
            // inspect keeps labels under Config.Labels
            struct Config: Decodable {
                var labels: [String: String]?
                enum CodingKeys: String, CodingKey { case labels = "Labels" }
            }
            let outer = try decoder.container(keyedBy: InspectKeys.self)
            labels = (try? outer.decodeIfPresent(Config.self, forKey: .config))??.labels ?? [:]
        }
    }
}

/// A container event from Docker's event stream.
public struct DockerEvent: Sendable, Decodable {
    public struct Actor: Sendable, Decodable {
        public var id: String
        public var attributes: [String: String]
        enum CodingKeys: String, CodingKey { case id = "ID", attributes = "Attributes" }
        public init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            id = try container.decodeIfPresent(String.self, forKey: .id) ?? ""
            attributes = try container.decodeIfPresent([String: String].self, forKey: .attributes) ?? [:]
        }
    }
    public var type: String
    /// `die`, `destroy`, `start`, `kill`, `oom`, …
    public var action: String
    public var actor: Actor
    /// Nanoseconds since the epoch.
    public var timeNano: Int64

    enum CodingKeys: String, CodingKey { case type = "Type", action = "Action", actor = "Actor", timeNano }

    public var containerID: String { actor.id }
}

/// Which stream a log line came from.
public enum LogStream: UInt8, Sendable {
    case stdin = 0, stdout = 1, stderr = 2
}

public struct LogLine: Sendable, Equatable {
    public var stream: LogStream
    public var text: String

    public init(stream: LogStream, text: String) {
        self.stream = stream
        self.text = text
    }
}
