import Foundation
import Synchronization
import WhiskMessages
import WhiskMetrics

extension Controller {
    /// Runs a sequence's components one after another, each a blocking invoke whose result is
    /// the next one's input, as OpenWhisk's SequenceActions do; stops at the first error.
    func invokeSequence(_ sequence: ActionDocument, as identity: NamespaceIdentity, parameters: [String: JSONValue],
                        blocking: Bool, transid: TransactionId) async throws -> InvokeOutcome {
        let activationId = ActivationId.generate()
        let components = sequence.exec.components ?? []
        guard components.count <= configuration.maxSequenceLength else {
            throw APIError(.badRequest, "Too many actions in the sequence.")
        }
        // Pending until its record is stored: a controller restart in between leaves a record
        // saying so. No deadline: while this controller runs, the sequence's own task ends it.
        let accepted = Self.nowMillis
        do {
            try await store.addPending(PendingActivation(
                activationId: activationId, kind: .sequence, namespace: identity.name, action: sequence.fullyQualifiedName,
                version: sequence.version, invoker: nil, controller: controllerInstance.asString, accepted: accepted, deadline: .max
            ))
        } catch {
            throw APIError(.serviceUnavailable, "The sequence could not be scheduled: \(error)")
        }
        let run: @Sendable () async -> WhiskActivation = {
            await self.runSequence(sequence, id: activationId, as: identity, parameters: parameters, transid: transid)
        }
        guard blocking else {
            submit { _ = await run() }
            return .accepted(activationId)
        }
        return .completed(await run())
    }

    /// What a sequence's run leaves for its record.
    struct SequenceOutcome {
        var response = ActivationResponse.success([:])
        var logs: [String] = []
        var duration: Int64 = 0
        var maxMemory = 0
    }

    private func runSequence(_ sequence: ActionDocument, id: ActivationId, as identity: NamespaceIdentity,
                             parameters: [String: JSONValue], transid: TransactionId) async -> WhiskActivation {
        let start = Self.nowMillis
        let outcome = sequence.isPeerToPeer
            ? await runPeerToPeer(sequence, id: id, as: identity, parameters: parameters, transid: transid)
            : await runChained(sequence, id: id, as: identity, parameters: parameters, transid: transid)
        let end = Self.nowMillis
        let activation = WhiskActivation(
            namespace: EntityPath(identity.name) ?? EntityPath("guest")!,
            name: EntityName(sequence.name) ?? EntityName("sequence")!,
            subject: Subject(namespace: identity.name),
            activationId: id,
            start: start,
            end: end,
            response: outcome.response,
            logs: outcome.logs,
            version: sequence.version,
            annotations: [
                Parameter(key: "topmost", value: true),
                Parameter(key: "path", value: .string(sequence.fullyQualifiedName)),
                Parameter(key: "kind", value: "sequence"),
                Parameter(key: "limits", value: ActionLimits(timeout: sequence.limits.timeout, memory: outcome.maxMemory).json),
                Parameter(key: "waitTime", value: 0),
            ],
            duration: outcome.duration
        )
        WhiskMetrics.recordActivation(activation)
        do {
            try await store.storeActivation(activation)
        } catch {
            logger.error("cannot store sequence activation", metadata: ["activationId": "\(id)", "error": "\(error)"])
        }
        return activation
    }

    /// The classic sequence: each component a blocking invoke whose result is the next one's input.
    private func runChained(_ sequence: ActionDocument, id: ActivationId, as identity: NamespaceIdentity,
                            parameters: [String: JSONValue], transid: TransactionId) async -> SequenceOutcome {
        var outcome = SequenceOutcome()
        var input = parameters
        for component in sequence.exec.components ?? [] {
            guard let action = await resolveComponent(component, for: identity) else {
                outcome.response = .error(.applicationError, "Sequence component does not exist.")
                break
            }
            outcome.maxMemory = max(outcome.maxMemory, action.limits.memory)
            var child = TransactionId.generate()
            child.parent = transid
            let invoked: InvokeOutcome
            do {
                invoked = try await invoke(action, as: identity, parameters: input, blocking: true,
                                           waitFor: .milliseconds(action.limits.timeout) + .seconds(60), cause: id, transid: child)
            } catch {
                // e.g. no invoker available for the component: say which and why.
                let reason = (error as? APIError)?.message ?? "\(error)"
                outcome.response = .error(.whiskError, .string("Sequence failed: component \(component) could not be invoked: \(reason)"))
                break
            }
            guard case .completed(let record) = invoked else {
                if case .accepted(let componentId) = invoked { outcome.logs.append(componentId.rawValue) }
                outcome.response = .error(.whiskError, .string("Timeout reached when retrieving activation for sequence component."))
                break
            }
            outcome.logs.append(record.activationId.rawValue)
            outcome.duration += record.duration ?? (record.end - record.start)
            outcome.response = record.response
            if !record.response.isSuccess || record.response.result?["error"] != nil { break }
            input = record.response.result?.objectValue ?? [:]
        }
        return outcome
    }

    /// The peer-to-peer sequence (annotation p2p): every component is invoked at once as an
    /// instance of its own (`p2p-<sequence activation>-<stage>`), with the pipeline's description
    /// under `PeerToPeer.parameter`. The runtime's proxy receives the stage's input from the
    /// previous stage over the namespace's overlay, runs the action, and sends the result on to
    /// the next stage; only the first stage's parameters and the last stage's result go through
    /// Kafka. Every stage gives up at the sequence's deadline (now + its time limit).
    ///
    /// The stages go to one invoker while it has room (``Placement``): each finds the previous
    /// one in its invoker's own map at once instead of through the controller, and their data
    /// stays on the host. Stages that do not fit go where the balancer sends them.
    private func runPeerToPeer(_ sequence: ActionDocument, id: ActivationId, as identity: NamespaceIdentity,
                               parameters: [String: JSONValue], transid: TransactionId) async -> SequenceOutcome {
        var outcome = SequenceOutcome()
        var actions: [ActionDocument] = []
        for name in sequence.exec.components ?? [] {
            guard let action = await resolveComponent(name, for: identity) else {
                outcome.response = .error(.applicationError, .string("Sequence component \(name) does not exist."))
                return outcome
            }
            actions.append(action)
            outcome.maxMemory = max(outcome.maxMemory, action.limits.memory)
        }
        let names = actions.map { "/" + $0.fullyQualifiedName }
        let instances = actions.indices.map { "p2p-\(id.rawValue)-\($0)" }
        let deadline = Self.nowMillis + Int64(sequence.limits.timeout)
        let describe: (Int) -> JSONValue = { stage in
            .object(["sequence": .string(id.rawValue), "stage": .int(Int64(stage)), "deadline": .int(deadline),
                     "instances": .array(instances.map { .string($0) }),
                     "components": .array(names.map { .string($0) }),
                     "port": .int(Int64(PeerToPeer.port))])
        }
        let placement = Placement()
        // Each stage ends with its record, or its invoke fails: (stage, record or the reason).
        let results = await withTaskGroup(of: (Int, Result<WhiskActivation, PeerToPeer.StageFailure>).self) { group in
            for (stage, action) in actions.enumerated() {
                var input: [String: JSONValue] = stage == 0 ? parameters : [:]
                input["instanceID"] = .string(instances[stage])
                input[PeerToPeer.parameter] = describe(stage)
                var child = TransactionId.generate()
                child.parent = transid
                // A stage still running at the deadline fails the sequence then; its own time limit ends it later.
                let wait = Duration.milliseconds(max(0, deadline - Self.nowMillis)) + .seconds(2)
                group.addTask {
                    do {
                        switch try await self.invoke(action, as: identity, parameters: input, blocking: true, waitFor: wait, cause: id, transid: child,
                                                     placement: placement) {
                        case .completed(let record): return (stage, .success(record))
                        case .accepted(let componentId): return (stage, .failure(.noRecord(componentId)))
                        }
                    } catch {
                        return (stage, .failure(.notInvoked((error as? APIError)?.message ?? "\(error)")))
                    }
                }
            }
            var results: [Int: Result<WhiskActivation, PeerToPeer.StageFailure>] = [:]
            for await (stage, result) in group { results[stage] = result }
            return results
        }
        // The stages overlap: the pipeline lasts from the first start to the last end.
        let records = results.values.compactMap { try? $0.get() }
        if let first = records.map(\.start).min(), let last = records.map(\.end).max() { outcome.duration = last - first }
        // The first stage in order that failed is the cause; the ones after it only passed its error on.
        for (stage, name) in names.enumerated() {
            switch results[stage] {
            case .success(let record):
                outcome.logs.append(record.activationId.rawValue)
                outcome.response = record.response
                if !record.response.isSuccess || record.response.result?["error"] != nil {
                    let reason = record.response.result?["error"] ?? record.response.result ?? .null
                    let message = reason.stringValue ?? "\(reason)"
                    let failure: JSONValue = .object(["error": .string(message.hasPrefix("component ") ? message : "component \(name) failed: \(message)"),
                                                      "component": .string(name)])
                    outcome.response = ActivationResponse(statusCode: record.response.statusCode, result: failure)
                    return outcome
                }
            case .failure(.notInvoked(let reason)):
                outcome.response = .error(.whiskError, .string("Sequence failed: component \(name) could not be invoked: \(reason)"))
                return outcome
            case .failure(.noRecord(let componentId)):
                outcome.logs.append(componentId.rawValue)
                outcome.response = .error(.whiskError, .string("component \(name) did not finish within the sequence's time limit of \(sequence.limits.timeout) ms."))
                return outcome
            case nil:
                outcome.response = .error(.whiskError, .string("Sequence failed: component \(name) has no outcome."))
                return outcome
            }
        }
        return outcome
    }

    /// A component named as ``qualifiedName(_:defaultNamespace:)`` reads; one in a package gets
    /// the package's (and binding's) parameters.
    func resolveComponent(_ name: String, for identity: NamespaceIdentity) async -> ActionDocument? {
        guard let qualified = Self.qualifiedName(name, defaultNamespace: identity.name) else { return nil }
        return try? await resolveAction(qualified, for: identity)?.action
    }

    static var nowMillis: Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

/// Activations to be placed together (the stages of one peer-to-peer sequence): the first one
/// scheduled goes where the balancer sends it, the others prefer its invoker.
public final class Placement: Sendable {
    private let chosen = Mutex<Int?>(nil)

    public init() {}

    /// The invoker the group prefers, once one of its activations was placed.
    var invoker: Int? { chosen.withLock { $0 } }

    /// One of the group's activations was placed on `invoker`; the first placement counts.
    func placed(on invoker: Int) {
        chosen.withLock { if $0 == nil { $0 = invoker } }
    }
}

/// The contract between the controller and the runtime's proxy for peer-to-peer sequences.
public enum PeerToPeer {
    /// The parameter that carries a stage's description; the proxy removes it before the action runs.
    public static let parameter = "__whiskmesh_p2p"
    /// The port each stage's proxy listens on for its input, on the overlay.
    public static let port = 7072

    enum StageFailure: Error {
        case notInvoked(String)
        case noRecord(ActivationId)
    }
}

extension ActionDocument {
    /// A sequence whose intermediate results travel over the overlay (annotation `p2p` true).
    var isPeerToPeer: Bool {
        exec.isSequence && annotations.contains { $0.key == "p2p" && $0.value == true }
    }
}
