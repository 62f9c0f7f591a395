import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Prometheus
import WhiskMessages
import WhiskMetrics

/// The OpenWhisk REST API (`/api/v1`), the admin routes and the invokers' internal endpoint.
public struct ControllerAPI: Sendable {
    let controller: Controller
    /// Where `/metrics` reads from; nil serves no `/metrics`.
    let metrics: PrometheusCollectorRegistry?
    var store: any EntityStore { controller.store }
    var configuration: ControllerConfiguration { controller.configuration }

    public init(controller: Controller, metrics: PrometheusCollectorRegistry? = nil) {
        self.controller = controller
        self.metrics = metrics
    }

    public func buildRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.get("/ping") { _, _ in "pong" }
        if let metrics { WhiskMetrics.addRoute(to: router, registry: metrics) }
        router.get("/invokers") { request, _ in
            request.uri.queryParameters.get("details") == "true" ? try invokerDetails() : try invokers()
        }
        router.get("/api/v1") { _, _ in
            try JSONResponse.make(["description": "WhiskMesh", "api_version": "1.0.0", "api_version_path": "v1"])
        }
        addWebRoutes(to: router)
        let api = router.group("/api/v1/namespaces")
        api.get("") { request, _ in
            let identity = try await authenticate(request)
            return try JSONResponse.make(.array([.string(identity.name)]))
        }
        api.get("{ns}/actions") { request, context in try await listActions(request, context) }
        api.get("{ns}/actions/{name}") { request, context in try await getAction(request, context) }
        api.put("{ns}/actions/{name}") { request, context in try await putAction(request, context) }
        api.delete("{ns}/actions/{name}") { request, context in try await deleteAction(request, context) }
        api.post("{ns}/actions/{name}") { request, context in try await invokeAction(request, context) }
        api.get("{ns}/actions/{name}/{inner}") { request, context in try await getAction(request, context) }
        api.put("{ns}/actions/{name}/{inner}") { request, context in try await putAction(request, context) }
        api.delete("{ns}/actions/{name}/{inner}") { request, context in try await deleteAction(request, context) }
        api.post("{ns}/actions/{name}/{inner}") { request, context in try await invokeAction(request, context) }
        api.get("{ns}/packages") { request, context in try await listPackages(request, context) }
        api.get("{ns}/packages/{name}") { request, context in try await getPackage(request, context) }
        api.put("{ns}/packages/{name}") { request, context in try await putPackage(request, context) }
        api.delete("{ns}/packages/{name}") { request, context in try await deletePackage(request, context) }
        api.get("{ns}/triggers") { request, context in try await listTriggers(request, context) }
        api.get("{ns}/triggers/{name}") { request, context in try await getTrigger(request, context) }
        api.put("{ns}/triggers/{name}") { request, context in try await putTrigger(request, context) }
        api.delete("{ns}/triggers/{name}") { request, context in try await deleteTrigger(request, context) }
        api.post("{ns}/triggers/{name}") { request, context in try await fireTrigger(request, context) }
        api.get("{ns}/rules") { request, context in try await listRules(request, context) }
        api.get("{ns}/rules/{name}") { request, context in try await getRule(request, context) }
        api.put("{ns}/rules/{name}") { request, context in try await putRule(request, context) }
        api.delete("{ns}/rules/{name}") { request, context in try await deleteRule(request, context) }
        api.post("{ns}/rules/{name}") { request, context in try await setRuleStatus(request, context) }
        api.get("{ns}/activations") { request, context in try await listActivations(request, context) }
        api.get("{ns}/limits") { request, context in try await limits(request, context) }
        api.get("{ns}/addressmap") { request, context in
            let identity = try await authorize(request, context)
            return try JSONResponse.make(encodable: controller.addressMap.file(namespace: identity.name))
        }
        api.get("{ns}/activations/{id}") { request, context in
            try JSONResponse.make(encodable: try await activation(request, context).extended)
        }
        api.get("{ns}/activations/{id}/result") { request, context in
            try JSONResponse.make(encodable: try await activation(request, context).extendedResponse)
        }
        api.get("{ns}/activations/{id}/logs") { request, context in
            try JSONResponse.make(["logs": .array(try await activation(request, context).logs.map { .string($0) })])
        }
        let internalAPI = router.group("/internal/v1")
        // An action's code for invokers: `ns/name`, or `ns/pkg/name` for one in a package.
        // (A path segment's parameter must have one name in every route: `{name}` is the package
        // when `{inner}` follows.)
        for pattern in ["actions/{ns}/{name}", "actions/{ns}/{name}/{inner}"] {
            internalAPI.get(RouterPath(pattern)) { request, context in
                try requireInternalToken(request)
                let namespace = try context.parameters.require("ns")
                let first = try context.parameters.require("name")
                let inner = context.parameters.get("inner")
                let container = inner == nil ? namespace : "\(namespace)/\(first)"
                guard let action = try await store.action(namespace: container, name: inner ?? first) else {
                    throw APIError(.notFound, "The requested resource does not exist.")
                }
                return try JSONResponse.make(encodable: action)
            }
        }
        // Whether an activation has its record: an invoker asks before running again an
        // activation that it may have run before it crashed.
        internalAPI.get("activations/{ns}/{id}") { request, context in
            try requireInternalToken(request)
            let namespace = try context.parameters.require("ns")
            let id = try context.parameters.require("id")
            guard let activationId = ActivationId(id), try await store.activation(namespace: namespace, id: activationId) != nil else {
                throw APIError(.notFound, "The requested resource does not exist.")
            }
            return try JSONResponse.make(["activationId": .string(id)])
        }
        internalAPI.put("namespaces/{ns}") { request, context in
            try requireInternalToken(request)
            let namespace = try context.parameters.require("ns")
            do {
                let identity = try await store.createNamespace(namespace, identity: nil)
                return try JSONResponse.make(status: .created, encodable: identity)
            } catch let error as StoreError {
                throw APIError(error.kind == .conflict ? .conflict : .badRequest, error.message)
            }
        }
        return router
    }

    // MARK: Authentication

    /// Basic auth with `uuid:key`; 401 for anything else.
    func authenticate(_ request: Request) async throws -> NamespaceIdentity {
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("basic "),
              let decoded = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
              let credentials = String(data: decoded, encoding: .utf8),
              let colon = credentials.firstIndex(of: ":") else {
            throw APIError(.unauthorized, "The supplied authentication is invalid")
        }
        let uuid = String(credentials[..<colon])
        let key = String(credentials[credentials.index(after: colon)...])
        guard let identity = try await store.identity(uuid: uuid, key: key) else {
            throw APIError(.unauthorized, "The supplied authentication is invalid")
        }
        return identity
    }

    /// Authenticates and checks that the path's namespace (`_` = own) is the caller's.
    func authorize(_ request: Request, _ context: BasicRequestContext) async throws -> NamespaceIdentity {
        let identity = try await authenticate(request)
        let namespace = try context.parameters.require("ns")
        guard namespace == "_" || namespace == identity.name else {
            throw APIError(.forbidden, "The supplied authentication is not authorized to access '\(namespace)'.")
        }
        return identity
    }

    func requireInternalToken(_ request: Request) throws {
        guard let token = request.headers[.internalToken], token == configuration.internalToken else {
            throw APIError(.unauthorized, "The supplied authentication is invalid")
        }
    }

    // MARK: Actions

    /// The entity name a path parameter holds (an action's, package's, trigger's, rule's); 400 when invalid.
    func entityName(_ context: BasicRequestContext, parameter: String = "name") throws -> String {
        let name = try context.parameters.require(parameter)
        guard EntityName.isValid(name) else {
            throw APIError(.badRequest, "The name '\(name)' is not valid.")
        }
        return name
    }

    func listActions(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let identity = try await authorize(request, context)
        let window = try Self.listWindow(request, collection: "actions")
        let actions = try await store.actions(namespace: identity.name, limit: window.limit, skip: window.skip)
        return try JSONResponse.make(.array(actions.map(Self.summary)))
    }

    /// A list's `limit` (default 30; 0 means the most, 200) and `skip`, refused as upstream
    /// refuses them (400) when they are not integers or out of range.
    static func listWindow(_ request: Request, collection: String) throws -> (limit: Int, skip: Int) {
        let query = request.uri.queryParameters
        var limit = 30
        if let text = query.get("limit") {
            guard let value = Int(text) else { throw APIError(.badRequest, "The value '\(text)' is not an integer for \(collection).") }
            guard (0...200).contains(value) else { throw APIError(.badRequest, "The value '\(value)' is not in the range of 0 to 200 for \(collection).") }
            limit = value == 0 ? 200 : value
        }
        var skip = 0
        if let text = query.get("skip") {
            guard let value = Int(text) else { throw APIError(.badRequest, "The value '\(text)' is not an integer for \(collection).") }
            guard value >= 0 else { throw APIError(.badRequest, "The value '\(value)' is not greater than or equal to 0 for \(collection).") }
            skip = value
        }
        return (limit, skip)
    }

    /// An epoch-milliseconds query parameter (`since`, `upto`); 400 when it is not one.
    static func epochParameter(_ request: Request, _ name: String) throws -> Int64? {
        guard let text = request.uri.queryParameters.get(name) else { return nil }
        guard let value = Int64(text), value >= 0 else { throw APIError(.badRequest, "Parameter is not a valid value for epoch seconds: \(text)") }
        return value
    }

    /// `GET /namespaces/{ns}/limits`: what this platform lets the namespace's actions ask for.
    /// WhiskMesh throttles no invocations, so the rate limits upstream reports are absent.
    func limits(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        _ = try await authorize(request, context)
        return try JSONResponse.make([
            "minActionMemory": .int(Int64(ActionLimits.memoryRange.lowerBound)), "maxActionMemory": .int(Int64(ActionLimits.memoryRange.upperBound)),
            "minActionTimeout": .int(Int64(ActionLimits.timeoutRange.lowerBound)), "maxActionTimeout": .int(Int64(ActionLimits.timeoutRange.upperBound)),
            "minActionLogs": .int(Int64(ActionLimits.logsRange.lowerBound)), "maxActionLogs": .int(Int64(ActionLimits.logsRange.upperBound)),
            "minActionConcurrency": .int(Int64(ActionLimits.concurrencyRange.lowerBound)),
            "maxActionConcurrency": .int(Int64(ActionLimits.concurrencyRange.upperBound)),
            "maxParameterSize": .string(ByteSize(bytes: Int64(configuration.payloadLimit)).description),
            "allowedKinds": .array(configuration.supportedKinds.sorted().map { .string($0) }),
            "storeActivations": true,
        ])
    }

    /// What a listing shows of an action: no code.
    static func summary(_ action: ActionDocument) -> JSONValue {
        [
            "namespace": .string(action.namespace), "name": .string(action.name), "version": .string(action.version.description),
            "publish": .bool(action.publish), "updated": .int(action.updated),
            "annotations": .array(Self.amendAnnotations(action.annotations, exec: action.exec, create: false).map { ["key": .string($0.key), "value": $0.value] }),
            "limits": action.limits.json,
            "exec": ["binary": .bool(action.exec.binary ?? false)],
        ]
    }

    /// The action a path names: `{ns}/actions/{name}` or, in a package, `{ns}/actions/{pkg}/{name}`.
    struct ActionTarget {
        var identity: NamespaceIdentity
        /// The path's namespace (`_` resolved).
        var namespace: String
        var package: String?
        var name: String
        /// Where the action's document lives: `ns`, or `ns/pkg`.
        var container: String { package.map { "\(namespace)/\($0)" } ?? namespace }
    }

    /// Authenticates and reads the path. Another namespace is refused here except for a package
    /// (a shared one may be read and invoked: ``Controller/resolveAction(namespace:package:name:for:)``).
    func actionTarget(_ request: Request, _ context: BasicRequestContext) async throws -> ActionTarget {
        let identity = try await authenticate(request)
        let raw = try context.parameters.require("ns")
        let namespace = raw == "_" ? identity.name : raw
        // `{name}` is the package when `{inner}` (the action) follows.
        let package = context.parameters.get("inner") == nil ? nil : try entityName(context)
        if package == nil, namespace != identity.name {
            throw APIError(.forbidden, "The supplied authentication is not authorized to access '\(namespace)'.")
        }
        return ActionTarget(identity: identity, namespace: namespace, package: package, name: try entityName(context, parameter: package == nil ? "name" : "inner"))
    }

    /// For a write: the target must be the caller's, and a package's must exist and not be a binding.
    func writableTarget(_ request: Request, _ context: BasicRequestContext) async throws -> ActionTarget {
        let target = try await actionTarget(request, context)
        guard target.namespace == target.identity.name else {
            throw APIError(.forbidden, "The supplied authentication is not authorized to access '\(target.namespace)'.")
        }
        if let package = target.package {
            guard let folder = try await store.package(namespace: target.namespace, name: package) else {
                throw APIError(.notFound, "The requested resource does not exist.")
            }
            guard folder.binding == nil else { throw APIError(.badRequest, "Operation not permitted on package binding.") }
        }
        return target
    }

    /// The action to read or invoke, through its package and binding, parameters merged.
    func resolvedAction(_ target: ActionTarget) async throws -> ResolvedAction {
        guard let resolved = try await controller.resolveAction(namespace: target.namespace, package: target.package, name: target.name, for: target.identity) else {
            throw APIError(.notFound, "The requested resource does not exist.")
        }
        return resolved
    }

    func getAction(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        var action = try await resolvedAction(try await actionTarget(request, context)).action
        if request.uri.queryParameters.get("code") == "false" { action.exec.code = nil }
        return try JSONResponse.make(encodable: action)
    }

    /// The body of `PUT .../actions/{name}`.
    struct ActionPut: Decodable {
        var exec: ActionExec?
        var parameters: [Parameter]?
        var annotations: [Parameter]?
        var limits: PartialLimits?
        var version: SemVer?
        var publish: Bool?
    }

    struct PartialLimits: Decodable {
        var timeout: Int?
        var memory: Int?
        var logs: Int?
        var concurrency: Int?
    }

    func putAction(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let target = try await writableTarget(request, context)
        let name = target.name
        let put = try await decodeBody(ActionPut.self, request)
        let overwrite = request.uri.queryParameters.get("overwrite") == "true"
        let existing = try await store.action(namespace: target.container, name: name)
        guard var exec = put.exec ?? existing?.exec else {
            throw APIError(.badRequest, "The request content was malformed: exec undefined")
        }
        exec.kind = try validate(exec)
        var limits = existing?.limits ?? ActionLimits()
        if let timeout = put.limits?.timeout {
            let range = ActionLimits.timeoutRange
            guard range.contains(timeout) else { throw APIError(.badRequest, "The timeout must be between \(range.lowerBound) and \(range.upperBound) ms.") }
            limits.timeout = timeout
        }
        if let memory = put.limits?.memory {
            let range = ActionLimits.memoryRange
            guard range.contains(memory) else { throw APIError(.badRequest, "The memory limit must be between \(range.lowerBound) and \(range.upperBound) MB.") }
            limits.memory = memory
        }
        if let logs = put.limits?.logs {
            let range = ActionLimits.logsRange
            guard range.contains(logs) else { throw APIError(.badRequest, "The log limit must be between \(range.lowerBound) and \(range.upperBound) MB.") }
            limits.logs = logs
        }
        if let concurrency = put.limits?.concurrency {
            guard ActionLimits.concurrencyRange.contains(concurrency) else { throw APIError(.badRequest, "Only a concurrency limit of 1 is supported.") }
            limits.concurrency = concurrency
        }
        let document = ActionDocument(
            namespace: target.container, name: name, version: put.version ?? existing?.version ?? SemVer(),
            publish: put.publish ?? existing?.publish ?? false, exec: exec,
            parameters: put.parameters ?? existing?.parameters ?? [],
            annotations: Self.amendAnnotations(put.annotations ?? existing?.annotations ?? [], exec: exec, create: existing == nil),
            limits: limits, updated: Controller.nowMillis, rev: existing?.rev ?? ""
        )
        do {
            let stored = try await store.putAction(document, overwrite: overwrite)
            return try JSONResponse.make(encodable: stored)
        } catch let error as StoreError where error.kind == .conflict {
            throw APIError(.conflict, "resource already exists")
        }
    }

    /// Upstream's `amendAnnotations`: a new action that does not say whether it gets the API key
    /// does not; every action carries its kind as the `exec` annotation.
    static func amendAnnotations(_ annotations: [Parameter], exec: ActionExec, create: Bool) -> [Parameter] {
        var amended = annotations
        if create && amended[Annotations.provideApiKey] == nil { amended.append(Parameter(key: Annotations.provideApiKey, value: false)) }
        amended.set(Annotations.exec, .string(exec.kind))
        return amended
    }

    /// Checks an action's exec; returns its kind as the runtime manifest names it (`python` and
    /// `python:default` are the family's default kind, as upstream resolves them).
    func validate(_ exec: ActionExec) throws -> String {
        let kind: String
        switch exec.kind {
        case "sequence", "blackbox": kind = exec.kind
        default:
            guard let known = configuration.runtimes.resolve(exec.kind) else {
                let valid = configuration.supportedKinds.sorted().map { "'\($0)'" }.joined(separator: ", ")
                throw APIError(.badRequest, "The specified runtime '\(exec.kind)' is not supported by this platform. Valid values are: \(valid).")
            }
            kind = known
        }
        if kind == "blackbox" {
            // A locally built image that speaks /init and /run; its code, if any, goes to /init.
            guard let image = exec.image, !image.isEmpty, !image.contains(where: \.isWhitespace) else {
                throw APIError(.badRequest, "The request content was malformed: a blackbox action needs exec.image")
            }
            return kind
        }
        if exec.isSequence {
            guard let components = exec.components, !components.isEmpty else {
                throw APIError(.badRequest, "A sequence needs at least one component.")
            }
            guard components.count <= configuration.maxSequenceLength else {
                throw APIError(.badRequest, "Too many actions in the sequence.")
            }
        } else {
            guard let code = exec.code, !code.isEmpty else {
                throw APIError(.badRequest, "The request content was malformed: exec.code is missing")
            }
        }
        return kind
    }

    func deleteAction(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let target = try await writableTarget(request, context)
        guard let deleted = try await store.deleteAction(namespace: target.container, name: target.name) else {
            throw APIError(.notFound, "The requested resource does not exist.")
        }
        return try JSONResponse.make(encodable: deleted)
    }

    /// A JSON body as `T` (an empty one as `{}`); 400 when it is not one.
    func decodeBody<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
        do {
            let body = try await readBody(request)
            return try JSONDecoder().decode(T.self, from: body.isEmpty ? Data("{}".utf8) : body)
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError(.badRequest, "The request content was malformed: \(Self.describe(error))")
        }
    }

    func readBody(_ request: Request) async throws -> Data {
        do {
            let buffer = try await request.body.collect(upTo: configuration.payloadLimit)
            return Data(buffer.readableBytesView)
        } catch {
            throw APIError(.contentTooLarge, "The request content exceeds the maximum allowed size of \(configuration.payloadLimit) bytes.")
        }
    }

    // MARK: Invoke

    /// The parameters a request's body gives (an invoke's, a trigger's fire): a JSON object, its
    /// numbers as written; none for an empty body.
    func parameters(_ request: Request) async throws -> [String: JSONValue] {
        let body = try await readBody(request)
        guard !body.isEmpty else { return [:] }
        let value: JSONValue
        do {
            value = try JSONValue.parse(body)
        } catch {
            throw APIError(.badRequest, "The request content was malformed: \(Self.describe(error))")
        }
        guard case .object(let object) = value else {
            throw APIError(.badRequest, "The request content was malformed: the parameters must be a JSON object.")
        }
        return object
    }

    func invokeAction(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let target = try await actionTarget(request, context)
        let identity = target.identity
        let parameters = try await parameters(request)
        let resolved = try await resolvedAction(target)
        let query = request.uri.queryParameters
        let resultOnly = query.get("result") == "true"
        let blocking = query.get("blocking") == "true" || resultOnly
        var wait = configuration.blockingTimeout
        if let timeout = query.get("timeout", as: Int.self), timeout > 0 {
            wait = min(.milliseconds(timeout), configuration.blockingTimeout)
        }
        let transid = TransactionId.generate()
        let outcome = try await controller.invoke(resolved.action, as: identity, parameters: parameters, blocking: blocking, waitFor: wait,
                                                  binding: resolved.binding, transid: transid)
        let requestID: HTTPFields = [.requestID: transid.id]
        switch outcome {
        case .accepted(let id):
            var headers = requestID
            headers[.activationID] = id.rawValue
            return try JSONResponse.make(status: .accepted, headers: headers, ["activationId": .string(id.rawValue)])
        case .completed(let record):
            var headers = requestID
            headers[.activationID] = record.activationId.rawValue
            let status: HTTPResponse.Status
            switch record.response.status {
            case .success: status = .ok
            case .applicationError, .developerError: status = .badGateway
            case .whiskError: status = .internalServerError
            }
            if resultOnly {
                return try JSONResponse.make(status: status, headers: headers, record.response.result ?? [:])
            }
            return try JSONResponse.make(status: status, headers: headers, encodable: record.extended)
        }
    }

    // MARK: Activations

    func listActivations(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let identity = try await authorize(request, context)
        let query = request.uri.queryParameters
        let window = try Self.listWindow(request, collection: "activations")
        let activations = try await store.activations(ActivationQuery(
            namespace: identity.name, name: query.get("name"), limit: window.limit, skip: window.skip,
            since: try Self.epochParameter(request, "since"), upto: try Self.epochParameter(request, "upto")
        ))
        if query.get("docs") == "true" {
            return try JSONResponse.make(encodable: activations.map(\.extended))
        }
        return try JSONResponse.make(.array(activations.map(Self.brief)))
    }

    /// A list entry: the contract's ActivationBrief, upstream's `summaryAsJson`.
    static func brief(_ activation: WhiskActivation) -> JSONValue {
        var fields: [String: JSONValue] = [
            "namespace": .string(activation.namespace.rawValue), "name": .string(activation.name.rawValue),
            "version": .string(activation.version.description), "publish": .bool(activation.publish),
            "annotations": .array(activation.annotations.map { ["key": .string($0.key), "value": $0.value] }),
            "activationId": .string(activation.activationId.rawValue), "start": .int(activation.start), "end": .int(activation.end),
            "duration": .int(activation.duration ?? (activation.end - activation.start)),
            "statusCode": .int(Int64(activation.response.statusCode)),
        ]
        if let cause = activation.cause { fields["cause"] = .string(cause.rawValue) }
        return .object(fields)
    }

    func activation(_ request: Request, _ context: BasicRequestContext) async throws -> WhiskActivation {
        let identity = try await authorize(request, context)
        let raw = try context.parameters.require("id")
        guard let id = ActivationId(raw), let record = try await store.activation(namespace: identity.name, id: id) else {
            throw APIError(.notFound, "The requested resource does not exist.")
        }
        return record
    }

    // MARK: Admin

    func invokers() throws -> Response {
        var states: [String: JSONValue] = [:]
        for status in controller.invokerStates {
            let text: String
            switch status.state {
            case .healthy: text = "up"
            case .unhealthy: text = "unhealthy"
            case .offline: text = "down"
            }
            states[status.id.description] = .string(text)
        }
        return try JSONResponse.make(.object(states))
    }

    /// Instance, state and memory of every known invoker (for `wsk invoker list`).
    func invokerDetails() throws -> Response {
        let free = controller.freeMemory
        return try JSONResponse.make(.array(controller.invokerStates.map { status in
            [
                "instance": .int(Int64(status.id.instance)), "name": .string(status.id.description),
                "state": .string(status.state.rawValue), "userMemoryMB": .int(status.id.userMemory.megabytes),
                "freeMemoryMB": .int(Int64(free[status.id.instance] ?? 0)),
            ]
        }))
    }

    static func describe(_ error: Error) -> String {
        if let error = error as? DecodingError { return error.readableDescription }
        return "\(error)"
    }
}
