import Foundation
import HTTPTypes
import Hummingbird
import WhiskMessages

/// `/namespaces/{ns}/triggers` and `/rules`, as upstream's Triggers.scala and Rules.scala serve them.
extension ControllerAPI {
    struct TriggerPut: Decodable {
        var parameters: [Parameter]?
        var annotations: [Parameter]?
        var limits: JSONValue?
        var version: SemVer?
        var publish: Bool?
    }

    struct RulePut: Decodable {
        var trigger: String?
        var action: String?
        var annotations: [Parameter]?
        var version: SemVer?
        var publish: Bool?
    }

    // MARK: Triggers

    /// A trigger as upstream shows it: with `rules`, `ns/rule` → its action and status.
    func triggerJSON(_ trigger: TriggerDocument) async throws -> JSONValue {
        guard case .object(var fields) = try JSONValue.parse(try WhiskMessageCoding.encode(trigger)) else { return .null }
        fields["_rev"] = nil
        let rules = try await store.rules(trigger: trigger.fullyQualifiedName)
        if !rules.isEmpty {
            fields["rules"] = .object(Dictionary(uniqueKeysWithValues: rules.map { rule in
                (rule.fullyQualifiedName, ["action": ["path": .string(rule.action.path.rawValue), "name": .string(rule.action.name.rawValue)],
                                           "status": .string(rule.status.rawValue)] as JSONValue)
            }))
        }
        return .object(fields)
    }

    func listTriggers(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let identity = try await authorize(request, context)
        let window = try Self.listWindow(request, collection: "triggers")
        let triggers = try await store.triggers(namespace: identity.name, limit: window.limit, skip: window.skip)
        return try JSONResponse.make(.array(triggers.map { trigger in
            ["namespace": .string(trigger.namespace), "name": .string(trigger.name), "version": .string(trigger.version.description),
             "publish": .bool(trigger.publish), "updated": .int(trigger.updated),
             "annotations": .array(trigger.annotations.map { ["key": .string($0.key), "value": $0.value] })]
        }))
    }

    func getTrigger(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let identity = try await authorize(request, context)
        guard let trigger = try await store.trigger(namespace: identity.name, name: try entityName(context)) else {
            throw APIError(.notFound, "The requested resource does not exist.")
        }
        return try JSONResponse.make(try await triggerJSON(trigger))
    }

    func putTrigger(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let identity = try await authorize(request, context)
        let name = try entityName(context)
        let put = try await decodeBody(TriggerPut.self, request)
        let overwrite = request.uri.queryParameters.get("overwrite") == "true"
        let existing = try await store.trigger(namespace: identity.name, name: name)
        if existing != nil && !overwrite { throw APIError(.conflict, "resource already exists") }
        let trigger = TriggerDocument(
            namespace: identity.name, name: name, version: put.version ?? existing.map { $0.version.nextPatch() } ?? SemVer(),
            publish: put.publish ?? existing?.publish ?? false, parameters: put.parameters ?? existing?.parameters ?? [],
            annotations: put.annotations ?? existing?.annotations ?? [], limits: put.limits ?? existing?.limits ?? [:], updated: Controller.nowMillis
        )
        do {
            return try JSONResponse.make(try await triggerJSON(try await store.putTrigger(trigger, overwrite: overwrite)))
        } catch let error as StoreError where error.kind == .conflict {
            throw APIError(.conflict, "resource already exists")
        }
    }

    func deleteTrigger(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let identity = try await authorize(request, context)
        guard let trigger = try await store.deleteTrigger(namespace: identity.name, name: try entityName(context)) else {
            throw APIError(.notFound, "The requested resource does not exist.")
        }
        return try JSONResponse.make(try await triggerJSON(trigger))
    }

    /// `POST .../triggers/{name}`: 202 with the trigger's activation id, or 204 when no rule is active.
    func fireTrigger(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let identity = try await authorize(request, context)
        guard let trigger = try await store.trigger(namespace: identity.name, name: try entityName(context)) else {
            throw APIError(.notFound, "The requested resource does not exist.")
        }
        guard let id = try await controller.fire(trigger, as: identity, payload: try await parameters(request)) else {
            return Response(status: .noContent)
        }
        return try JSONResponse.make(status: .accepted, headers: [.activationID: id.rawValue], ["activationId": .string(id.rawValue)])
    }

    // MARK: Rules

    func listRules(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let identity = try await authorize(request, context)
        let window = try Self.listWindow(request, collection: "rules")
        return try JSONResponse.make(encodable: try await store.rules(namespace: identity.name, limit: window.limit, skip: window.skip).map(RuleView.init))
    }

    func getRule(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let identity = try await authorize(request, context)
        guard let rule = try await store.rule(namespace: identity.name, name: try entityName(context)) else {
            throw APIError(.notFound, "The requested resource does not exist.")
        }
        return try JSONResponse.make(encodable: RuleView(rule))
    }

    func putRule(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let identity = try await authorize(request, context)
        let name = try entityName(context)
        let put = try await decodeBody(RulePut.self, request)
        let overwrite = request.uri.queryParameters.get("overwrite") == "true"
        let existing = try await store.rule(namespace: identity.name, name: name)
        if existing != nil && !overwrite { throw APIError(.conflict, "resource already exists") }
        guard let triggerText = put.trigger ?? existing?.trigger.description, let actionText = put.action ?? existing?.action.description,
              let trigger = Controller.qualifiedName(triggerText, defaultNamespace: identity.name),
              let action = Controller.qualifiedName(actionText, defaultNamespace: identity.name) else {
            throw APIError(.badRequest, "rule requires a valid trigger and a valid action")
        }
        guard trigger.path.segments.count == 1, trigger.path.rawValue == identity.name,
              try await store.trigger(namespace: trigger.path.rawValue, name: trigger.name.rawValue) != nil else {
            throw APIError(.badRequest, "trigger /\(trigger) does not exist")
        }
        guard try await controller.resolveAction(action, for: identity) != nil else {
            throw APIError(.badRequest, "action /\(action) does not exist")
        }
        let rule = RuleDocument(
            namespace: identity.name, name: name, version: put.version ?? existing.map { $0.version.nextPatch() } ?? SemVer(),
            publish: put.publish ?? existing?.publish ?? false, status: existing?.status ?? .active, trigger: trigger, action: action,
            annotations: put.annotations ?? existing?.annotations ?? [], updated: Controller.nowMillis
        )
        do {
            return try JSONResponse.make(encodable: RuleView(try await store.putRule(rule, overwrite: overwrite)))
        } catch let error as StoreError where error.kind == .conflict {
            throw APIError(.conflict, "resource already exists")
        }
    }

    /// `POST .../rules/{name}` with `{"status": "active"|"inactive"}`.
    func setRuleStatus(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let identity = try await authorize(request, context)
        let name = try entityName(context)
        let body = try await decodeBody(JSONValue.self, request)
        guard let text = body["status"]?.stringValue, let status = RuleDocument.Status(rawValue: text) else {
            throw APIError(.badRequest, "The request content was malformed: status must be 'active' or 'inactive'.")
        }
        guard var rule = try await store.rule(namespace: identity.name, name: name) else {
            throw APIError(.notFound, "The requested resource does not exist.")
        }
        if status == .active, try await store.trigger(namespace: rule.trigger.path.rawValue, name: rule.trigger.name.rawValue) == nil {
            throw APIError(.notFound, "Only rules with existing triggers can be activated")
        }
        if rule.status != status {
            rule.status = status
            rule.updated = Controller.nowMillis
            rule = try await store.putRule(rule, overwrite: true)
        }
        return try JSONResponse.make(encodable: RuleView(rule))
    }

    func deleteRule(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let identity = try await authorize(request, context)
        guard let rule = try await store.deleteRule(namespace: identity.name, name: try entityName(context)) else {
            throw APIError(.notFound, "The requested resource does not exist.")
        }
        return try JSONResponse.make(encodable: RuleView(rule))
    }

    /// A rule as the REST API shows it (no revision).
    struct RuleView: Encodable {
        var namespace: String
        var name: String
        var version: SemVer
        var publish: Bool
        var status: String
        var trigger: FullyQualifiedEntityName
        var action: FullyQualifiedEntityName
        var annotations: [Parameter]
        var updated: Int64

        init(_ rule: RuleDocument) {
            namespace = rule.namespace
            name = rule.name
            version = rule.version
            publish = rule.publish
            status = rule.status.rawValue
            trigger = rule.trigger
            action = rule.action
            annotations = rule.annotations
            updated = rule.updated
        }
    }
}
