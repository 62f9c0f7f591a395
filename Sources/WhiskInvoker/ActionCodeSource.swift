import Foundation
import Synchronization
import WhiskHTTP
import WhiskMessages

/// What the invoker needs of an action document.
public struct InvokerAction: Sendable, Codable, Hashable {
    public struct Exec: Sendable, Codable, Hashable {
        public var kind: String
        public var code: String?
        public var binary: Bool?
        public var main: String?
        /// The image of a `blackbox` action.
        public var image: String?
    }
    public struct Limits: Sendable, Codable, Hashable {
        public var timeout: Int
        public var memory: Int
        public var logs: Int
        public var concurrency: Int
    }
    public var namespace: String
    public var name: String
    public var version: SemVer
    public var exec: Exec
    public var limits: Limits
    /// The action's annotations (`provide-api-key` decides whether `/run` gets the API key).
    public var annotations: [Parameter]
    public var rev: String

    enum CodingKeys: String, CodingKey {
        case namespace, name, version, exec, limits, annotations
        case rev = "_rev"
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        namespace = try container.decode(String.self, forKey: .namespace)
        name = try container.decode(String.self, forKey: .name)
        version = try container.decode(SemVer.self, forKey: .version)
        exec = try container.decode(Exec.self, forKey: .exec)
        limits = try container.decode(Limits.self, forKey: .limits)
        annotations = try container.decodeIfPresent([Parameter].self, forKey: .annotations) ?? []
        rev = try container.decode(String.self, forKey: .rev)
    }
}

/// Where the invoker gets action code; upstream reads it from CouchDB, so it is pluggable.
public protocol ActionCodeSource: Sendable {
    func action(_ name: FullyQualifiedEntityName, revision: String?) async throws -> InvokerAction
    /// Whether the activation already has its record: asked before running again an activation
    /// that an earlier run of this invoker may have run (it re-reads what it had not committed).
    func hasRecord(namespace: String, activationId: ActivationId) async throws -> Bool
}

extension ActionCodeSource {
    /// Sources that keep no records (test fakes) run every redelivered activation.
    public func hasRecord(namespace: String, activationId: ActivationId) async throws -> Bool { false }
}

/// An action that cannot be run: missing, or its code unavailable.
public struct ActionSourceError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var isNotFound: Bool
    public var description: String { message }
}

/// Asks the controller's internal endpoint and caches by revision.
public final class ControllerCodeSource: ActionCodeSource {
    private let baseURL: String
    private let token: String
    private let http: CurlHTTPClient
    private let cache = Mutex([String: InvokerAction]())

    public init(baseURL: String, token: String, http: CurlHTTPClient) {
        self.baseURL = baseURL
        self.token = token
        self.http = http
    }

    public func action(_ name: FullyQualifiedEntityName, revision: String?) async throws -> InvokerAction {
        let key = "\(name.path)/\(name.name)"
        if let revision, let cached = cache.withLock({ $0[key] }), cached.rev == revision {
            return cached
        }
        // `ns/name`, or `ns/pkg/name` for an action in a package.
        let path = "\(name.path)/\(name.name.rawValue)".addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? ""
        let response: HTTPResponse
        do {
            response = try await http.perform(HTTPRequest(method: "GET", url: "\(baseURL)/internal/v1/actions/\(path)",
                                                          headers: ["X-Whisk-Internal-Token: \(token)"], timeout: .seconds(30)))
        } catch {
            throw ActionSourceError(message: "cannot reach the controller for the code of \(key): \(error)", isNotFound: false)
        }
        guard response.status == 200 else {
            throw ActionSourceError(message: "the controller answered \(response.status) for the code of \(key)", isNotFound: response.status == 404)
        }
        let action: InvokerAction
        do {
            action = try JSONDecoder().decode(InvokerAction.self, from: response.body)
        } catch {
            throw ActionSourceError(message: "unreadable action document for \(key): \(error)", isNotFound: false)
        }
        cache.withLock { $0[key] = action }
        return action
    }

    public func hasRecord(namespace: String, activationId: ActivationId) async throws -> Bool {
        let path = "\(namespace)/\(activationId.rawValue)".addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? ""
        let response = try await http.perform(HTTPRequest(method: "GET", url: "\(baseURL)/internal/v1/activations/\(path)",
                                                          headers: ["X-Whisk-Internal-Token: \(token)"], timeout: .seconds(30)))
        switch response.status {
        case 200: return true
        case 404: return false
        default: throw ActionSourceError(message: "the controller answered \(response.status) about activation \(activationId)", isNotFound: false)
        }
    }
}
