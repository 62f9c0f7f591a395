import Foundation
import WhiskMessages
import WhiskMetrics

extension Controller {
    /// What a fired rule did, as upstream writes it into the trigger's record (one JSON per line).
    struct RuleActivationResult: Sendable {
        var rule: String
        var action: String
        var statusCode: Int
        var outcome: Result<ActivationId, APIError>

        var json: JSONValue {
            var fields: [String: JSONValue] = [
                "rule": .string(rule), "action": .string(action), "statusCode": .int(Int64(statusCode)), "success": .bool(statusCode == 0),
            ]
            switch outcome {
            case .success(let id): fields["activationId"] = .string(id.rawValue)
            case .failure(let error): fields["error"] = .string(error.message)
            }
            return .object(fields)
        }
    }

    /// Fires `trigger` for `identity` with `payload`: every active rule's action is invoked
    /// (non-blocking) with the trigger's parameters under the payload, its record carrying the
    /// trigger's activation as `cause`; the trigger's own record lists what each rule did.
    /// - Returns: the trigger's activation id, or nil when it has no active rule (no record, as upstream).
    public func fire(_ trigger: TriggerDocument, as identity: NamespaceIdentity, payload: [String: JSONValue]) async throws -> ActivationId? {
        let active = try await store.rules(trigger: trigger.fullyQualifiedName).filter { $0.status == .active }
        guard !active.isEmpty else { return nil }
        let activationId = ActivationId.generate()
        var merged: [String: JSONValue] = [:]
        for parameter in trigger.parameters { merged[parameter.key] = parameter.value }
        for (key, value) in payload { merged[key] = value }
        let arguments = merged
        let start = Self.nowMillis
        let results = await withTaskGroup(of: (Int, RuleActivationResult).self) { group in
            for (index, rule) in active.enumerated() {
                group.addTask {
                    let outcome = await self.activate(rule, as: identity, arguments: arguments, cause: activationId)
                    let statusCode: Int
                    switch outcome {
                    case .success: statusCode = ActivationResponse.Status.success.rawValue
                    case .failure(let error): statusCode = error.status.code >= 500 ? ActivationResponse.Status.whiskError.rawValue : ActivationResponse.Status.applicationError.rawValue
                    }
                    return (index, RuleActivationResult(rule: rule.fullyQualifiedName, action: rule.action.description, statusCode: statusCode, outcome: outcome))
                }
            }
            var results: [(Int, RuleActivationResult)] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }.map(\.1)
        }
        let record = WhiskActivation(
            namespace: EntityPath(identity.name) ?? EntityPath("guest")!, name: EntityName(trigger.name) ?? EntityName("trigger")!,
            subject: identity.identity.subject, activationId: activationId, start: start, end: start,
            response: .success(.object(payload)), logs: results.map { (try? String(decoding: WhiskMessageCoding.encode($0.json), as: UTF8.self)) ?? "" },
            version: trigger.version, annotations: [Parameter(key: "kind", value: "trigger")]
        )
        WhiskMetrics.recordActivation(record)
        try await store.storeActivation(record)
        return activationId
    }

    /// Invokes a rule's action (non-blocking); its record's `cause` is the trigger's activation.
    private func activate(_ rule: RuleDocument, as identity: NamespaceIdentity, arguments: [String: JSONValue], cause: ActivationId) async -> Result<ActivationId, APIError> {
        do {
            guard let resolved = try await resolveAction(rule.action, for: identity) else {
                return .failure(APIError(.notFound, "The requested resource does not exist."))
            }
            switch try await invoke(resolved.action, as: identity, parameters: arguments, blocking: false, cause: cause, binding: resolved.binding) {
            case .accepted(let id): return .success(id)
            case .completed(let record): return .success(record.activationId)
            }
        } catch let error as APIError {
            return .failure(error)
        } catch {
            return .failure(APIError(.internalServerError, "\(error)"))
        }
    }
}
