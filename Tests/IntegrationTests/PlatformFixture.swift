import Foundation
import Synchronization
import Testing
import WhiskDocker
import WhiskHTTP
import WhiskKafka
import WhiskInvoker
import WhiskMessages

/// A whole platform for one test: the controller and two invokers as real processes, on the real
/// broker (topics under a unique prefix) and the real Docker Engine (containers labelled for the
/// test). Everything is stopped and removed afterwards, also when the test fails.
final class Platform: @unchecked Sendable {
    // @unchecked: the processes are mutated only from the test's own task (start, kill, stop).
    static let guestAuth = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"

    let prefix = TestEnvironment.uniqueName("wm").replacingOccurrences(of: "-", with: "") + "."
    let runLabel = TestEnvironment.uniqueName("platform")
    let token = UUID().uuidString
    let port: Int
    let brokers: String
    let binDirectory: String
    let logDirectory: String
    var controller: Process?
    var invokers: [Int: Process] = [:]
    let http = CurlHTTPClient()

    var apiHost: String { "http://127.0.0.1:\(port)" }

    /// Each platform of this test process draws its namespaces' overlay subnets from a /16 of its
    /// own (10.128-207.x.x, taken in turn; the Docker client tests use 10.213): the suites run in parallel, and two platforms that
    /// both created "guest" with the same subnet at the same moment made swarm refuse the second
    /// allocation ("Pool overlaps"), whose attaches then timed out.
    static let nextOverlayBlock = Mutex(Int.random(in: 0..<80))
    let overlayPool: String = Platform.nextOverlayBlock.withLock { block in
        defer { block = (block + 1) % 80 }
        return "10.\(128 + block).0.0/16"
    }

    init() throws {
        brokers = try #require(TestEnvironment.kafkaBrokers, "WHISK_KAFKA_BROKERS is not set: run the tests through scripts/test")
        binDirectory = try #require(ProcessInfo.processInfo.environment["WHISK_BIN_DIR"], "WHISK_BIN_DIR is not set: run the tests through scripts/test")
        port = try Self.freePort()
        logDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("whiskmesh-\(runLabel)").path
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
    }

    /// The repository's runtimes.json.
    static let runtimesManifest = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("runtimes.json").path

    /// Ports this test process has handed out: the kernel may name a port again once the probe
    /// socket is closed, before the platform that got it binds it, and two suites running in
    /// parallel then shared one controller (one test's requests reached another's platform).
    static let handedOutPorts = Mutex(Set<Int>())

    /// A free loopback port that no other platform of this process was given.
    static func freePort() throws -> Int {
        for _ in 0..<100 {
            let port = try probePort()
            if handedOutPorts.withLock({ $0.insert(port).inserted }) { return port }
        }
        throw InvokerTestError("no free port that was not handed out already")
    }

    private static func probePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw InvokerTestError("no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["WHISK_INTERNAL_TOKEN"] = token
        environment["WHISK_KAFKA_BROKERS"] = brokers
        environment["WHISK_TOPIC_PREFIX"] = prefix
        // Each test platform has overlays of its own, so parallel suites never share one.
        environment["WHISK_OVERLAY_NAME_PREFIX"] = "wmtest-\(prefix.dropLast())-"
        return environment
    }

    func launch(_ executable: String, _ arguments: [String], log: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "\(binDirectory)/\(executable)")
        process.arguments = arguments
        process.environment = environment
        _ = FileManager.default.createFile(atPath: "\(logDirectory)/\(log)", contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(logDirectory)/\(log)"))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return process
    }

    /// Flags every later (re)start of the controller gets, e.g. a short `--slot-grace`.
    var controllerFlags: [String] = []

    /// The controller keeps its store in a file of the test's folder, so a restart keeps it.
    func startController(blockingTimeout: Double = 60) throws {
        controller = try launch("whisk-controller", ["--port", String(port), "--database", "\(logDirectory)/controller.db", "--invoker-timeout", "3",
                                                     "--blocking-timeout", String(blockingTimeout), "--log-level", "info",
                                                     "--runtimes-manifest", Self.runtimesManifest] + controllerFlags,
                                log: "controller.log")
    }

    func startInvoker(_ id: Int, prewarm: Int = 0, extra: [String] = []) throws {
        invokers[id] = try launch("whisk-invoker", ["--id", String(id), "--controller", apiHost, "--prewarm", String(prewarm),
                                                    "--address-map-directory", mapDirectory(invoker: id),
                                                    "--container-labels", "org.whiskmesh.test=\(runLabel)", "--pool-state-file", poolStateFile(invoker: id),
                                                    "--runtimes-manifest", Self.runtimesManifest, "--overlay-pool", overlayPool,
                                                    "--log-level", "info"] + extra,
                                  log: "invoker\(id).log")
    }

    /// Starts the controller and invokers and waits until all invokers are up.
    func start(invokerCount: Int = 2, prewarm: Int = 0, invokerFlags: [String] = []) async throws {
        try startController()
        for id in 0..<invokerCount { try startInvoker(id, prewarm: prewarm, extra: invokerFlags) }
        try await waitUntil("\(invokerCount) invokers are up", timeout: .seconds(60)) {
            let states = try? await invokerStates()
            return (0..<invokerCount).allSatisfy { states?["invoker\($0)/\($0)"] == "up" }
        }
    }

    /// Stops an invoker the way an operator does (SIGTERM: it drains and removes its containers).
    func terminate(invoker id: Int) async {
        if let process = invokers[id], process.isRunning {
            process.terminate()
            await process.expectCleanExit(within: .seconds(60)) { tail("invoker\(id).log") }  // the default grace is 30 s
        }
    }

    func kill(invoker id: Int) async {
        if let process = invokers[id], process.isRunning {
            Foundation.kill(process.processIdentifier, SIGKILL)
            await process.exit()
        }
    }

    func poolStateFile(invoker id: Int) -> String { "\(logDirectory)/pool\(id).json" }

    /// What invoker `id`'s pool last wrote to its state file, if it wrote one.
    func poolSnapshot(invoker id: Int) -> ContainerPool.Snapshot? {
        FileManager.default.contents(atPath: poolStateFile(invoker: id)).flatMap { try? JSONDecoder().decode(ContainerPool.Snapshot.self, from: $0) }
    }

    /// The pool's invariant for invoker `id`: the containers Docker has with the invoker's labels
    /// are exactly those its pool knows (none leaked, none phantom). Pools settle (stem cells
    /// being made, removals under way), so this waits up to `patience` for it.
    /// - Returns: nil when they agree, else what differs.
    func poolDiscrepancy(invoker id: Int, patience: Duration = .seconds(20)) async -> String? {
        var configuration = DockerClient.Configuration()
        configuration.socketPath = TestEnvironment.dockerSocket
        let docker = DockerClient(configuration: configuration, logger: TestEnvironment.logger)
        let deadline = ContinuousClock.now + patience
        var difference: String?
        while true {
            let inDocker = Set(((try? await docker.listContainers(labels: ["org.whiskmesh.test=\(runLabel)", "org.whiskmesh.invoker=\(id)"])) ?? []).map(\.id))
            let snapshot = poolSnapshot(invoker: id)
            let inPool = Set(snapshot?.containers ?? [])
            if let snapshot, snapshot.creating == 0, inPool == inDocker {
                difference = nil
                break
            }
            difference = "only in Docker: \(inDocker.subtracting(inPool).sorted()), only in the pool: \(inPool.subtracting(inDocker).sorted()), "
                + "being created: \(snapshot.map { String($0.creating) } ?? "no pool state file")"
            if ContinuousClock.now > deadline { break }
            try? await Task.sleep(for: .milliseconds(250))
        }
        await docker.shutdown()
        return difference
    }

    /// Checks the pool invariant of every invoker still running (after every platform test).
    func checkPoolsMatchDocker() async {
        for (id, process) in invokers.sorted(by: { $0.key < $1.key }) where process.isRunning {
            if let difference = await poolDiscrepancy(invoker: id) {
                Issue.record("invoker\(id)'s pool and Docker disagree: \(difference)")
            }
        }
    }

    func stop() async {
        await checkPoolsMatchDocker()
        var stopping: [(log: String, process: Process)] = invokers.map { ("invoker\($0.key).log", $0.value) }
        if let controller { stopping.append(("controller.log", controller)) }
        stopping.removeAll { !$0.process.isRunning }
        for (_, process) in stopping { process.terminate() }
        for (log, process) in stopping {
            // Activations may still drain: one that takes longer is SIGKILLed, as before.
            await process.expectCleanExit(within: .seconds(15), inTime: false) { tail(log) }
        }
        var configuration = DockerClient.Configuration()
        configuration.socketPath = TestEnvironment.dockerSocket
        let docker = DockerClient(configuration: configuration, logger: TestEnvironment.logger)
        for container in (try? await docker.listContainers(labels: ["org.whiskmesh.test=\(runLabel)"])) ?? [] {
            try? await docker.removeContainer(container.id)
        }
        for network in (try? await docker.listNetworks(labels: ["org.whiskmesh.test=\(runLabel)"])) ?? [] {
            try? await docker.removeNetwork(network.id)
        }
        await docker.shutdown()
        if let admin = try? KafkaAdmin(configuration: TestEnvironment.requireBrokers(), logger: TestEnvironment.logger) {
            for topic in ["invoker0", "invoker1", "health", "completed0", "addressmap"] { try? await admin.deleteTopic(prefix + topic) }
            await admin.close()
        }
        await http.shutdown()
        try? FileManager.default.removeItem(atPath: logDirectory)
    }

    /// Waits until instance `id` is in the map files of `invokers`, then until it has left them.
    func waitForInstanceToComeAndGo(_ id: String, invokers: [Int] = [0, 1]) async throws {
        try await waitUntil("instance \(id) is in the map files of invokers \(invokers)", timeout: .seconds(30)) {
            invokers.allSatisfy { self.mapFile(invoker: $0)?.instances.contains { $0.id == id } == true }
        }
        try await waitUntil("and leaves them", timeout: .seconds(30)) {
            invokers.allSatisfy { self.mapFile(invoker: $0)?.instances.contains { $0.id == id } == false }
        }
    }

    /// One process's whole log.
    func log(_ name: String) -> String {
        (try? String(contentsOfFile: "\(logDirectory)/\(name)", encoding: .utf8)) ?? ""
    }

    /// The last lines of one process's log.
    func tail(_ name: String, lines: Int = 30) -> String {
        "== \(name)\n" + log(name).split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    /// The processes' logs, for a failing test's report.
    func logs() -> String {
        ["controller.log", "invoker0.log", "invoker1.log"].map { name in
            let text = (try? String(contentsOfFile: "\(logDirectory)/\(name)", encoding: .utf8)) ?? ""
            return "== \(name)\n" + text.split(separator: "\n").suffix(30).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    func mapDirectory(invoker: Int) -> String { "\(logDirectory)/maps\(invoker)" }

    /// The map file invoker `invoker` keeps for `namespace`, as containers see it.
    func mapFile(invoker: Int, namespace: String = "guest") -> AddressMapFile? {
        let path = AddressMapFileWriter(root: mapDirectory(invoker: invoker)).folder(namespace: namespace) + "/map.json"
        return FileManager.default.contents(atPath: path).flatMap { try? JSONDecoder().decode(AddressMapFile.self, from: $0) }
    }

    /// Stops the controller (SIGTERM, or SIGKILL with `kill`) and starts it again on the same store.
    func restartController(blockingTimeout: Double = 60, kill: Bool = false) async throws {
        if let controller, controller.isRunning {
            if kill { Foundation.kill(controller.processIdentifier, SIGKILL) } else { controller.terminate() }
            await controller.exit(within: .seconds(30))
        }
        try startController(blockingTimeout: blockingTimeout)
        try await waitUntil("the controller answers again", timeout: .seconds(30)) {
            (try? await request("GET", "/ping", auth: nil))?.status == 200
        }
    }

    /// Creates a namespace through the internal endpoint; returns its `uuid:key`.
    func createNamespace(_ name: String) async throws -> String {
        let response = try await http.perform(HTTPRequest(method: "PUT", url: "\(apiHost)/internal/v1/namespaces/\(name)",
                                                          headers: ["X-Whisk-Internal-Token: \(token)", "Expect:"], body: Data(), timeout: .seconds(30)))
        let identity = try JSONDecoder().decode(JSONValue.self, from: response.body)
        return "\(identity["uuid"]?.stringValue ?? ""):\(identity["key"]?.stringValue ?? "")"
    }

    func addressMap(auth: String = Platform.guestAuth) async throws -> AddressMapFile {
        let reply = try await request("GET", "/api/v1/namespaces/_/addressmap", auth: auth)
        return try JSONDecoder().decode(AddressMapFile.self, from: try WhiskMessageCoding.encode(reply.json))
    }

    // MARK: API

    struct Reply {
        var status: Int
        var json: JSONValue
        var headers: String = ""
    }

    func request(_ method: String, _ path: String, body: Data? = nil, auth: String? = Platform.guestAuth) async throws -> Reply {
        var headers = ["Content-Type: application/json", "Expect:"]
        if let auth { headers.append("Authorization: Basic \(Data(auth.utf8).base64EncodedString())") }
        let response = try await http.perform(HTTPRequest(method: method, url: apiHost + path, headers: headers, body: body, timeout: .seconds(120)))
        let json = (try? JSONDecoder().decode(JSONValue.self, from: response.body)) ?? .string(String(decoding: response.body, as: UTF8.self))
        return Reply(status: response.status, json: json)
    }

    func request(_ method: String, _ path: String, json: JSONValue, auth: String? = Platform.guestAuth) async throws -> Reply {
        try await request(method, path, body: try WhiskMessageCoding.encode(json), auth: auth)
    }

    func invokerStates() async throws -> [String: String] {
        let reply = try await request("GET", "/invokers", auth: nil)
        return reply.json.objectValue?.compactMapValues(\.stringValue) ?? [:]
    }

    @discardableResult
    func createAction(_ name: String, code: String, timeout: Int? = nil, auth: String = Platform.guestAuth) async throws -> Reply {
        var body: [String: JSONValue] = ["exec": ["kind": "python:3", "code": .string(code)]]
        if let timeout { body["limits"] = ["timeout": .int(Int64(timeout))] }
        let reply = try await request("PUT", "/api/v1/namespaces/_/actions/\(name)", json: .object(body), auth: auth)
        #expect(reply.status == 200, "create \(name): \(reply.json)")
        return reply
    }

    func invoke(_ name: String, _ parameters: JSONValue = [:], blocking: Bool = true, result: Bool = false, as auth: String = Platform.guestAuth) async throws -> Reply {
        try await request("POST", "/api/v1/namespaces/_/actions/\(name)?blocking=\(blocking)&result=\(result)", json: parameters, auth: auth)
    }
}

struct InvokerTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body` with a started platform; stops and cleans it up whatever happens.
func withPlatform(invokers: Int = 2, prewarm: Int = 0, controllerFlags: [String] = [], invokerFlags: [String] = [],
                  _ body: (Platform) async throws -> Void) async throws {
    let platform = try Platform()
    platform.controllerFlags = controllerFlags
    do {
        try await platform.start(invokerCount: invokers, prewarm: prewarm, invokerFlags: invokerFlags)
        try await body(platform)
    } catch {
        Issue.record("platform logs:\n\(platform.logs())")
        await platform.stop()
        throw error
    }
    await platform.stop()
}
