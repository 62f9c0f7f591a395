/// The invoking user: the `user` field of an ActivationMessage.
public struct Identity: Hashable, Sendable, Codable {
    public struct Namespace: Hashable, Sendable, Codable {
        public var name: EntityName
        public var uuid: String

        public init(name: EntityName, uuid: String) {
            self.name = name
            self.uuid = uuid
        }
    }

    public var subject: Subject
    public var namespace: Namespace
    /// Opaque to the invoker; for basic auth `{"api_key": "uuid:key"}`.
    public var authkey: JSONValue
    public var rights: [String]
    /// UserLimits; `{}` for the defaults.
    public var limits: JSONValue

    public init(subject: Subject, namespace: Namespace, authkey: JSONValue, rights: [String] = ["READ", "PUT", "DELETE", "ACTIVATE"], limits: JSONValue = [:]) {
        self.subject = subject
        self.namespace = namespace
        self.authkey = authkey
        self.rights = rights
        self.limits = limits
    }

    /// The `uuid:key` api key when the identity uses basic auth.
    public var apiKey: String? { authkey["api_key"]?.stringValue }
}
