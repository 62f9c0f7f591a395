import Foundation
import Logging
import WhiskDocker
import WhiskHTTP
import WhiskMessages

/// Runs one activation through OpenWhisk's action-runtime protocol and builds its record.
struct ActivationRunner: Sendable {
    let configuration: InvokerConfiguration
    let pool: ContainerPool
    let docker: DockerClient
    let containerLogs: ContainerLogs
    let http: CurlHTTPClient
    let codeSource: any ActionCodeSource
    let overlays: OverlayNetworks?
    let agent: AddressMapAgent?
    /// Passed once a shutdown's drain period ran out and the invoker removes what still runs.
    let drainOver: CancelFlag
    let logger: Logger

    func run(_ message: ActivationMessage) async -> WhiskActivation {
        let received = Self.nowMillis
        var logger = logger
        logger[metadataKey: "activationId"] = "\(message.activationId)"
        let action: InvokerAction
        do {
            action = try await codeSource.action(message.action, revision: message.revision)
        } catch let error as ActionSourceError {
            let response: ActivationResponse = error.isNotFound
                ? .error(.applicationError, "The requested resource does not exist.")
                : .error(.whiskError, .string(error.message))
            return record(message, action: nil, start: received, end: Self.nowMillis, response: response, logs: [], annotations: [])
        } catch {
            return record(message, action: nil, start: received, end: Self.nowMillis, response: .error(.whiskError, .string("\(error)")), logs: [], annotations: [])
        }
        let timeout = Duration.milliseconds(action.limits.timeout)
        let userNamespace = message.user.namespace.name.rawValue
        // Containers are per invoking namespace: its overlay and its map are attached to them.
        let actionKey = "\(userNamespace)|\(action.namespace)/\(action.name)@\(action.rev)"
        let instanceID = message.content?["instanceID"].flatMap(InstanceID.init(parameter:))
        var annotations = [
            Parameter(key: "path", value: .string("\(message.action.path)/\(message.action.name)")),
            Parameter(key: "kind", value: .string(action.exec.kind)),
            Parameter(key: "limits", value: ["timeout": .int(Int64(action.limits.timeout)), "memory": .int(Int64(action.limits.memory)),
                                             "logs": .int(Int64(action.limits.logs)), "concurrency": .int(Int64(action.limits.concurrency))]),
        ]
        // The controller runs sequence components blocking; a trigger's rules fire non-blocking
        // and their records keep the cause without claiming a sequence.
        if message.cause != nil && message.blocking { annotations.append(Parameter(key: "causedBy", value: "sequence")) }
        // Reached through a package binding: upstream's record says which.
        if let binding = message.action.binding { annotations.append(Parameter(key: "binding", value: .string(binding.rawValue))) }

        var container: ActionContainer
        let needsInit: Bool
        do {
            (container, needsInit) = try await pool.acquire(actionKey: actionKey, kind: action.exec.kind,
                                                            image: action.exec.kind == "blackbox" ? action.exec.image : nil, memory: action.limits.memory,
                                                            namespace: message.user.namespace.name.rawValue, action: action.name,
                                                            mayWait: configuration.waitForBusyContainers && instanceID == nil)
        } catch {
            logger.error("cannot get a container", metadata: ["error": "\(error)"])
            let response = ActivationResponse.error(.whiskError, .string("Failed to run container with image '\(action.exec.image ?? configuration.runtimeImages[action.exec.kind] ?? action.exec.kind)': \(error)"))
            return record(message, action: action, start: received, end: Self.nowMillis, response: response, logs: [], annotations: annotations + [Parameter(key: "timeout", value: false)])
        }
        let start = Self.nowMillis
        annotations.append(Parameter(key: "waitTime", value: .int(max(0, start - message.transid.start))))
        let deadline = ContinuousClock.now + timeout

        // The overlay attach of a cold container runs while it initialises (a child task: an
        // early return below cancels it and waits for it).
        let attachTo = container.overlayIP == nil ? overlays : nil
        let containerID = container.id
        async let attachment = Self.attach(attachTo, containerID: containerID, namespace: userNamespace)

        // /init, once per container.
        if needsInit {
            let initBody: JSONValue = ["value": [
                "name": .string(action.name), "main": .string(action.exec.main ?? "main"), "code": .string(action.exec.code ?? ""),
                "binary": .bool(action.exec.binary ?? false), "env": message.initEnvironment,
            ]]
            let outcome = await post(container, path: "/init", body: initBody, until: deadline, retryConnect: true)
            annotations.append(Parameter(key: "initTime", value: .int(Self.nowMillis - start)))
            switch outcome {
            case .response(200, _):
                break
            case .response(_, let body):
                let logs = await containerLogs.collect(container.id, timeout: Self.logWait)
                await pool.release(container, .failed(.initialization))
                let error = Self.errorMessage(body) ?? "The action failed to initialize."
                return record(message, action: action, start: start, end: Self.nowMillis, response: .error(.developerError, .string(error)),
                              logs: logs, annotations: annotations + [Parameter(key: "timeout", value: false)])
            case .timedOut:
                await pool.release(container, .failed(.timeout))
                return record(message, action: action, start: start, end: Self.nowMillis,
                              response: .error(.developerError, .string("The action exceeded its time limits of \(action.limits.timeout) milliseconds during initialization.")),
                              logs: [], annotations: annotations + [Parameter(key: "timeout", value: true)])
            case .failed(let error):
                await pool.release(container, .failed(.initialization))
                return record(message, action: action, start: start, end: Self.nowMillis,
                              response: .error(.developerError, .string("The action did not initialize: \(error)")),
                              logs: [], annotations: annotations + [Parameter(key: "timeout", value: false)])
            }
        }

        if let attached = await attachment {
            do {
                container.overlayIP = try attached.get()
            } catch {
                logger.error("overlay attach failed", metadata: ["namespace": "\(userNamespace)", "error": "\(error)"])
                await pool.release(container, .failed(.overlayAttach))
                return record(message, action: action, start: start, end: Self.nowMillis,
                              response: .error(.whiskError, .string("Failed to attach the container to the overlay network of namespace '\(userNamespace)': \(error)")),
                              logs: [], annotations: annotations + [Parameter(key: "timeout", value: false)])
            }
        }

        if needsInit { await pool.initialized(container) }

        // The instance owns its ID from before /run until the activation ends, however it ends.
        var entry: AddressEntry?
        if let instanceID, let agent, let overlayIP = container.overlayIP {
            let added = AddressEntry(namespace: userNamespace, instanceID: instanceID, ip: overlayIP, invoker: configuration.instance,
                                     activationId: message.activationId, since: Self.nowMillis)
            agent.add(added)
            entry = added
        }
        agent?.track(containerID: container.id, activationId: message.activationId)
        defer {
            if let entry { agent?.remove(entry.key, activationId: entry.activationId) }
            agent?.untrack(containerID: container.id)
        }

        // /run
        let runStart = needsInit ? start : Self.nowMillis
        var runBody: JSONValue = [
            "value": message.runValue,
            "namespace": .string(message.user.namespace.name.rawValue),
            "action_name": .string("/\(message.action.path)/\(message.action.name)"),
            "action_version": .string(action.version.description),
            "activation_id": .string(message.activationId.rawValue),
            "transaction_id": .string(message.transid.id),
            "deadline": .string(String(Self.nowMillis + Int64(action.limits.timeout))),
            // As upstream: only for actions that ask for it (absent counts as asking).
            "api_key": action.annotations.isTruthy(Annotations.provideApiKey, valueForNonExistent: true) ? message.user.apiKey.map { .string($0) } ?? .null : .null,
            "api_host": .string(configuration.controllerURL),
        ]
        if case .object(var fields) = runBody {
            if let instanceID { fields["instance_id"] = .string(instanceID.rawValue) }
            if let overlayIP = container.overlayIP {
                fields["overlay_ip"] = .string(overlayIP)
                fields["address_map"] = .string("\(InvokerConfiguration.addressMapMountPoint)/map.json")
            }
            runBody = .object(fields)
        }
        let outcome = await post(container, path: "/run", body: runBody, until: deadline, retryConnect: false)
        let end = Self.nowMillis
        let response: ActivationResponse
        let ending: ContainerEvent
        switch outcome {
        case .response(let status, let body):
            response = Self.interpret(status: status, body: body, limit: configuration.resultLimit)
            ending = .finished
        case .timedOut:
            ending = .failed(.timeout)
            response = .error(.developerError, .string("The action exceeded its time limits of \(action.limits.timeout) milliseconds."))
        case .failed(let error):
            ending = .failed(.run)
            // The reply broke off: did the container die? Docker may not know yet the moment the
            // connection drops, so give it a second to report the exit.
            let exited = (try? await docker.waitContainer(container.id, timeout: .seconds(1))) != nil
            let died = exited || agent?.diedDuringRun(containerID: container.id) == true
            if drainOver.isSet {
                response = .error(.whiskError, .string("The invoker shut down before the activation finished: its drain period of \(configuration.shutdownGrace) ran out."))
            } else {
                response = .error(.developerError, .string(died
                    ? "The action's container died during the activation (killed or out of memory): \(error)"
                    : "The action did not produce a valid response and exited unexpectedly: \(error)"))
            }
        }
        let timedOut = ending == .failed(.timeout)
        let logs = timedOut ? [] : Self.limit(await containerLogs.collect(container.id, timeout: Self.logWait), toBytes: action.limits.logs * 1024 * 1024)
        await pool.release(container, ending)
        return record(message, action: action, start: runStart, end: end, response: response, logs: logs,
                      annotations: annotations + [Parameter(key: "timeout", value: .bool(timedOut))])
    }

    /// Attaches the container to its namespace's overlay; nil when there is nothing to attach.
    static func attach(_ overlays: OverlayNetworks?, containerID: String, namespace: String) async -> Result<String, Error>? {
        guard let overlays else { return nil }
        do {
            return .success(try await overlays.attach(containerID: containerID, namespace: namespace))
        } catch {
            return .failure(error)
        }
    }

    enum PostOutcome {
        case response(Int, Data)
        case timedOut
        case failed(String)
    }

    /// POSTs to the container's proxy; with `retryConnect`, waits for the proxy to listen.
    func post(_ container: ActionContainer, path: String, body: JSONValue, until deadline: ContinuousClock.Instant, retryConnect: Bool) async -> PostOutcome {
        // Numbers as the caller wrote them (1.0 stays a float for the action).
        let data = body.literalJSON
        var lastAliveCheck: ContinuousClock.Instant?
        while true {
            let remaining = deadline - .now
            guard remaining > .zero else { return .timedOut }
            do {
                // While the proxy may not listen yet, a connection not made within a second is
                // tried again after the alive check: a container that exited between two tries
                // left an address whose SYNs nobody answers, and the `/init` waited out the
                // action's whole time limit.
                let response = try await http.perform(HTTPRequest(method: "POST", url: "http://\(container.address):8080\(path)",
                                                                  headers: ["Content-Type: application/json", "Expect:"], body: data, timeout: remaining,
                                                                  connectTimeout: retryConnect ? .seconds(1) : nil))
                return .response(response.status, response.body)
            } catch let error as HTTPTransportError {
                if error.isTimeout { return .timedOut }
                // Only a refused connection: a reset after the request went out may follow an
                // `/init` the proxy ran, and a second one fails ("more than once").
                if retryConnect && error.isConnectFailure {
                    // A container that died before its proxy listened frees its address, and a
                    // new container may get it: a retried `/init` would initialise that one. So
                    // the retries go on only while Docker says it runs, asked at most every 100 ms
                    // (a new container takes longer to get the address and listen).
                    if lastAliveCheck.map({ .now - $0 >= .milliseconds(100) }) ?? true {
                        if let gone = await Self.exited(container.id, docker: docker) { return .failed(gone) }
                        lastAliveCheck = .now
                    }
                    try? await Task.sleep(for: .milliseconds(20))
                    continue
                }
                return .failed(error.message)
            } catch {
                return .failed("\(error)")
            }
        }
    }

    /// Why the container no longer runs, or nil while it runs (or Docker cannot say).
    static func exited(_ id: String, docker: DockerClient) async -> String? {
        do {
            let state = try await docker.inspectContainer(id).state
            return state.running ? nil : "the container stopped before its proxy answered (\(state.status), exit code \(state.exitCode))"
        } catch let error as DockerError where error.isNotFound {
            // Exited, and already removed by the pool's watch for dead containers: the same
            // failure, whichever of the two saw the exit first.
            return "the container stopped before its proxy answered (and was removed)"
        } catch {
            return nil
        }
    }

    /// OpenWhisk's reading of a `/run` reply (upstream's `processRunResponseContent`): a JSON
    /// object or array with 200 is the result (an object with `error` an application error); a
    /// reply over the limit is an application error carrying its first `limit` bytes; anything
    /// else, or another status, is the developer's error.
    static func interpret(status: Int, body: Data, limit: Int) -> ActivationResponse {
        guard body.count <= limit else {
            let trunk = String(decoding: body.prefix(limit), as: UTF8.self)
            return ActivationResponse(statusCode: ActivationResponse.Status.applicationError.rawValue,
                                      result: ["error": .string("The action produced a response that exceeded the allowed length: \(body.count) > \(limit) bytes. The truncated response was: \(trunk)")],
                                      size: body.count)
        }
        let invalid: JSONValue = .string("The action did not produce a valid JSON or JSON Array response" + (body.isEmpty ? "" : ": \(String(decoding: body, as: UTF8.self))"))
        switch try? JSONValue.parse(body) {  // numbers as the action wrote them, as upstream keeps them
        case .object(let object)?:
            if status != 200 {
                return ActivationResponse(statusCode: ActivationResponse.Status.developerError.rawValue, result: ["error": object["error"] ?? invalid], size: body.count)
            }
            if let error = object["error"] {
                return ActivationResponse(statusCode: ActivationResponse.Status.applicationError.rawValue, result: ["error": error], size: body.count)
            }
            return .success(.object(object), size: body.count)
        case .array(let array)? where status == 200:
            return .success(.array(array), size: body.count)
        default:
            return ActivationResponse(statusCode: ActivationResponse.Status.developerError.rawValue, result: ["error": invalid], size: body.count)
        }
    }

    static func errorMessage(_ body: Data) -> String? {
        (try? JSONValue.parse(body))?["error"]?.stringValue
    }

    /// How long the log's sentinels may lag behind `/run`'s answer.
    static let logWait = Duration.seconds(2)

    /// Keeps the lines that fit the action's log limit, as upstream does, with its notice.
    static func limit(_ lines: [String], toBytes limit: Int) -> [String] {
        var total = 0
        for (index, line) in lines.enumerated() {
            total += line.utf8.count
            if total > limit {
                return Array(lines[..<index]) + ["Logs were truncated because the total bytes size exceeds the limit of \(limit) bytes."]
            }
        }
        return lines
    }

    func record(_ message: ActivationMessage, action: InvokerAction?, start: Int64, end: Int64, response: ActivationResponse,
                logs: [String], annotations: [Parameter]) -> WhiskActivation {
        WhiskActivation(
            namespace: EntityPath(message.user.namespace.name.rawValue) ?? message.action.path,
            name: message.action.name,
            subject: message.user.subject,
            activationId: message.activationId,
            start: start,
            end: end,
            cause: message.cause,
            response: response,
            logs: logs,
            version: action?.version ?? message.action.version ?? SemVer(),
            annotations: annotations,
            duration: end - start
        )
    }

    static var nowMillis: Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}
