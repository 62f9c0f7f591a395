import Foundation
import WhiskMessages

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

    private func runSequence(_ sequence: ActionDocument, id: ActivationId, as identity: NamespaceIdentity,
                             parameters: [String: JSONValue], transid: TransactionId) async -> WhiskActivation {
        let start = Self.nowMillis
        var input = parameters
        var logs: [String] = []
        var response = ActivationResponse.success([:])
        var duration: Int64 = 0
        var maxMemory = 0
        for component in sequence.exec.components ?? [] {
            guard let action = await resolveComponent(component, for: identity) else {
                response = .error(.applicationError, "Sequence component does not exist.")
                break
            }
            maxMemory = max(maxMemory, action.limits.memory)
            var child = TransactionId.generate()
            child.parent = transid
            let outcome: InvokeOutcome
            do {
                outcome = try await invoke(action, as: identity, parameters: input, blocking: true,
                                           waitFor: .milliseconds(action.limits.timeout) + .seconds(60), cause: id, transid: child)
            } catch {
                // e.g. no invoker available for the component: say which and why.
                let reason = (error as? APIError)?.message ?? "\(error)"
                response = .error(.whiskError, .string("Sequence failed: component \(component) could not be invoked: \(reason)"))
                break
            }
            guard case .completed(let record) = outcome else {
                if case .accepted(let componentId) = outcome { logs.append(componentId.rawValue) }
                response = .error(.whiskError, .string("Timeout reached when retrieving activation for sequence component."))
                break
            }
            logs.append(record.activationId.rawValue)
            duration += record.duration ?? (record.end - record.start)
            response = record.response
            if !record.response.isSuccess || record.response.result?["error"] != nil { break }
            input = record.response.result?.objectValue ?? [:]
        }
        let end = Self.nowMillis
        let activation = WhiskActivation(
            namespace: EntityPath(identity.name) ?? EntityPath("guest")!,
            name: EntityName(sequence.name) ?? EntityName("sequence")!,
            subject: identity.name,
            activationId: id,
            start: start,
            end: end,
            response: response,
            logs: logs,
            version: sequence.version,
            annotations: [
                Parameter(key: "topmost", value: true),
                Parameter(key: "path", value: .string(sequence.fullyQualifiedName)),
                Parameter(key: "kind", value: "sequence"),
                Parameter(key: "limits", value: ActionLimits(timeout: sequence.limits.timeout, memory: maxMemory).json),
                Parameter(key: "waitTime", value: 0),
            ],
            duration: duration
        )
        do {
            try await store.storeActivation(activation)
        } catch {
            logger.error("cannot store sequence activation", metadata: ["activationId": "\(id)", "error": "\(error)"])
        }
        return activation
    }

    /// `/ns/name`, `ns/name` or `name`; `_` is the caller's namespace.
    func resolveComponent(_ name: String, for identity: NamespaceIdentity) async -> ActionDocument? {
        let parts = name.split(separator: "/").map(String.init)
        let (namespace, action): (String, String)
        switch parts.count {
        case 1: (namespace, action) = (identity.name, parts[0])
        case 2: (namespace, action) = (parts[0] == "_" ? identity.name : parts[0], parts[1])
        default: return nil
        }
        guard namespace == identity.name else { return nil }
        return try? await store.action(namespace: namespace, name: action)
    }

    static var nowMillis: Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}
