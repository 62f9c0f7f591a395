import Foundation
import Hummingbird
import WhiskMessages

/// `/namespaces/{ns}/packages`: packages and bindings, as upstream's Packages.scala serves them.
extension ControllerAPI {
    /// The body of `PUT .../packages/{name}`.
    struct PackagePut: Decodable {
        var binding: PackageBinding?
        var parameters: [Parameter]?
        var annotations: [Parameter]?
        var version: SemVer?
        var publish: Bool?

        enum CodingKeys: String, CodingKey { case binding, parameters, annotations, version, publish }

        init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            // Upstream writes "no binding" as {}.
            if let fields = try container.decodeIfPresent([String: JSONValue].self, forKey: .binding), !fields.isEmpty {
                binding = try container.decode(PackageBinding.self, forKey: .binding)
            }
            parameters = try container.decodeIfPresent([Parameter].self, forKey: .parameters)
            annotations = try container.decodeIfPresent([Parameter].self, forKey: .annotations)
            version = try container.decodeIfPresent(SemVer.self, forKey: .version)
            publish = try container.decodeIfPresent(Bool.self, forKey: .publish)
        }
    }

    /// The path's namespace (`_` resolved) and the caller; another namespace only for reading.
    func packageNamespace(_ request: Request, _ context: BasicRequestContext) async throws -> (identity: NamespaceIdentity, namespace: String) {
        let identity = try await authenticate(request)
        let raw = try context.parameters.require("ns")
        return (identity, raw == "_" ? identity.name : raw)
    }

    /// A list entry: upstream's summary, with `binding` the bound package or false.
    static func packageSummary(_ package: PackageDocument) -> JSONValue {
        [
            "namespace": .string(package.namespace), "name": .string(package.name), "version": .string(package.version.description),
            "publish": .bool(package.publish), "updated": .int(package.updated),
            "annotations": .array(package.annotations.map { ["key": .string($0.key), "value": $0.value] }),
            "binding": package.binding.map { ["namespace": .string($0.namespace), "name": .string($0.name)] } ?? false,
        ]
    }

    func listPackages(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (identity, namespace) = try await packageNamespace(request, context)
        let window = try Self.listWindow(request, collection: "packages")
        // Another namespace's list shows only what it shares.
        let packages = try await store.packages(namespace: namespace, limit: window.limit, skip: window.skip, publicOnly: namespace != identity.name)
        return try JSONResponse.make(.array(packages.map(Self.packageSummary)))
    }

    /// The package with its actions; a binding shows the bound package's actions and the merged
    /// parameters under its own name.
    func getPackage(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let (identity, namespace) = try await packageNamespace(request, context)
        let name = try entityName(context)
        guard let package = try await store.package(namespace: namespace, name: name) else {
            throw APIError(.notFound, "The requested resource does not exist.")
        }
        guard namespace == identity.name || package.publish else {
            throw APIError(.forbidden, "The supplied authentication is not authorized to access '\(namespace)/\(name)'.")
        }
        var shown = package
        var provider = package
        if let binding = package.binding {
            guard let bound = try await store.package(namespace: binding.namespace, name: binding.name) else {
                throw APIError(.notFound, "The requested resource does not exist.")
            }
            shown.parameters = Controller.merged(bound.parameters, over: package.parameters)
            provider = bound
        }
        let actions = try await store.actions(namespace: provider.fullyQualifiedName, limit: 10_000, skip: 0)
            .filter { $0.namespace == provider.fullyQualifiedName }
        guard case .object(var fields) = try JSONValue.parse(try WhiskMessageCoding.encode(shown)) else {
            throw APIError(.internalServerError, "cannot encode package \(name)")
        }
        fields["_rev"] = nil
        fields["actions"] = .array(actions.map { action in
            ["name": .string(action.name), "version": .string(action.version.description),
             "annotations": .array(Self.amendAnnotations(action.annotations, exec: action.exec, create: false).map { ["key": .string($0.key), "value": $0.value] })]
        })
        fields["feeds"] = []
        return try JSONResponse.make(.object(fields))
    }

    func putPackage(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let identity = try await authorize(request, context)
        let namespace = identity.name
        let name = try entityName(context)
        guard name != "default" else { throw APIError(.badRequest, "Package name '\(name)' is reserved.") }
        let put = try await decodeBody(PackagePut.self, request)
        var binding = put.binding
        if let bound = binding, bound.namespace == "_" { binding?.namespace = identity.name }
        let overwrite = request.uri.queryParameters.get("overwrite") == "true"
        let existing = try await store.package(namespace: namespace, name: name)
        if existing != nil && !overwrite { throw APIError(.conflict, "resource already exists") }
        if let binding {
            if let existing, existing.binding == nil {
                throw APIError(.conflict, "Resource is a package and cannot be converted into a binding.")
            }
            guard let bound = try await store.package(namespace: binding.namespace, name: binding.name) else {
                throw APIError(.badRequest, "Binding references a package that does not exist.")
            }
            guard bound.namespace == identity.name || bound.publish else {
                throw APIError(.forbidden, "The supplied authentication is not authorized to access '\(binding.fullyQualifiedName)'.")
            }
            guard bound.binding == nil else { throw APIError(.badRequest, "Cannot bind to another package binding.") }
        }
        let effectiveBinding = binding ?? existing?.binding
        // The binding annotation is the controller's to set.
        var annotations = (put.annotations ?? existing?.annotations ?? []).filter { $0.key != "binding" }
        if let effectiveBinding {
            annotations.append(Parameter(key: "binding", value: ["namespace": .string(effectiveBinding.namespace), "name": .string(effectiveBinding.name)]))
        }
        let document = PackageDocument(
            namespace: namespace, name: name, version: put.version ?? existing.map { $0.version.nextPatch() } ?? SemVer(),
            publish: put.publish ?? existing?.publish ?? false, binding: effectiveBinding,
            parameters: put.parameters ?? existing?.parameters ?? [], annotations: annotations, updated: Controller.nowMillis
        )
        do {
            return try JSONResponse.make(encodable: try await store.putPackage(document, overwrite: overwrite))
        } catch let error as StoreError where error.kind == .conflict {
            throw APIError(.conflict, "resource already exists")
        }
    }

    /// A package with actions goes only with `force=true` (its actions with it); a binding always.
    func deletePackage(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let identity = try await authorize(request, context)
        let namespace = identity.name
        let name = try entityName(context)
        do {
            guard let deleted = try await store.deletePackage(namespace: namespace, name: name, withActions: request.uri.queryParameters.get("force") == "true") else {
                throw APIError(.notFound, "The requested resource does not exist.")
            }
            return try JSONResponse.make(encodable: deleted)
        } catch let error as StoreError where error.kind == .conflict {
            throw APIError(.conflict, error.message)
        }
    }
}
