/// An action's fully qualified name: `{"path", "name", "version"?, "binding"?}`, or a plain
/// string `"ns/pkg/name"` on input.
public struct FullyQualifiedEntityName: Hashable, Sendable, Codable, CustomStringConvertible {
    public var path: EntityPath
    public var name: EntityName
    public var version: SemVer?
    public var binding: EntityPath?

    public init(path: EntityPath, name: EntityName, version: SemVer? = nil, binding: EntityPath? = nil) {
        self.path = path
        self.name = name
        self.version = version
        self.binding = binding
    }

    /// `path/name` without the version, as in the `path` annotation.
    public var description: String { "\(path)/\(name)" }

    enum CodingKeys: String, CodingKey { case path, name, version, binding }

    public init(from decoder: Decoder) throws {
        if let single = try? decoder.singleValueContainer(), let string = try? single.decode(String.self) {
            let trimmed = string.hasPrefix("/") ? String(string.dropFirst()) : string
            guard let slash = trimmed.lastIndex(of: "/"),
                  let path = EntityPath(String(trimmed[..<slash])),
                  let name = EntityName(String(trimmed[trimmed.index(after: slash)...])) else {
                throw DecodingError.dataCorruptedError(in: single, debugDescription: "'\(string)' is not a fully qualified name such as ns/name")
            }
            self.init(path: path, name: name)
            return
        }
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            path: try container.decode(EntityPath.self, forKey: .path),
            name: try container.decode(EntityName.self, forKey: .name),
            version: try container.decodeIfPresent(SemVer.self, forKey: .version),
            binding: try container.decodeIfPresent(EntityPath.self, forKey: .binding)
        )
    }
}
