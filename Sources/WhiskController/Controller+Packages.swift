import WhiskMessages

/// An action as an invoke reaches it: through its package (and maybe a binding), its parameters
/// merged as upstream merges them (package < binding < action < the invoke's own).
public struct ResolvedAction: Sendable {
    public var action: ActionDocument
    /// The binding it was reached through (`ns/binding`): the `binding` of the activation
    /// message's action name and the `binding` annotation of its record.
    public var binding: EntityPath?
}

extension Controller {
    /// Finds action `name` in `namespace`, in package `package` when given, for `identity`.
    /// Another namespace's package is reachable only when it is published (shared); a binding
    /// leads to the package it binds, which must be the binding's own namespace's or shared.
    /// - Returns: nil when the package or the action does not exist.
    public func resolveAction(namespace: String, package: String?, name: String, for identity: NamespaceIdentity) async throws -> ResolvedAction? {
        guard let package else {
            guard namespace == identity.name else { throw APIError(.forbidden, "The supplied authentication is not authorized to access '\(namespace)'.") }
            return try await store.action(namespace: namespace, name: name).map { ResolvedAction(action: $0, binding: nil) }
        }
        guard let folder = try await store.package(namespace: namespace, name: package) else { return nil }
        guard namespace == identity.name || folder.publish else {
            throw APIError(.forbidden, "The supplied authentication is not authorized to access '\(namespace)/\(package)'.")
        }
        var parameters = folder.parameters
        var provider = folder
        var binding: EntityPath?
        if let bound = folder.binding {
            guard let target = try await store.package(namespace: bound.namespace, name: bound.name) else { return nil }
            guard target.namespace == folder.namespace || target.publish else {
                throw APIError(.forbidden, "The supplied authentication is not authorized to access '\(bound.fullyQualifiedName)'.")
            }
            parameters = Self.merged(target.parameters, over: folder.parameters)
            provider = target
            binding = EntityPath("\(namespace)/\(package)")
        }
        guard var action = try await store.action(namespace: provider.fullyQualifiedName, name: name) else { return nil }
        action.parameters = Self.merged(parameters, over: action.parameters)
        return ResolvedAction(action: action, binding: binding)
    }

    /// ``resolveAction(namespace:package:name:for:)`` for a fully qualified name: its path is
    /// `ns`, or `ns/pkg` for an action in a package.
    public func resolveAction(_ name: FullyQualifiedEntityName, for identity: NamespaceIdentity) async throws -> ResolvedAction? {
        let segments = name.path.segments
        return try await resolveAction(namespace: segments[0], package: segments.count > 1 ? segments[1] : nil, name: name.name.rawValue, for: identity)
    }

    /// `name`, `ns/name` or `ns/pkg/name`, a leading `/` optional, `_` or no namespace meaning
    /// `defaultNamespace`: how upstream names an action (or a trigger) in a rule or a sequence.
    public static func qualifiedName(_ text: String, defaultNamespace: String) -> FullyQualifiedEntityName? {
        var parts = (text.hasPrefix("/") ? String(text.dropFirst()) : text).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if parts.count == 1 { parts.insert(defaultNamespace, at: 0) }
        if parts[0] == "_" { parts[0] = defaultNamespace }
        guard (2...3).contains(parts.count), let name = EntityName(parts.removeLast()), let path = EntityPath(parts.joined(separator: "/")) else { return nil }
        return FullyQualifiedEntityName(path: path, name: name)
    }

    /// `base` with every parameter of `overrides` put over the one of the same key.
    static func merged(_ base: [Parameter], over overrides: [Parameter]) -> [Parameter] {
        var result = base
        for parameter in overrides {
            if let index = result.firstIndex(where: { $0.key == parameter.key }) { result[index] = parameter } else { result.append(parameter) }
        }
        return result
    }
}
