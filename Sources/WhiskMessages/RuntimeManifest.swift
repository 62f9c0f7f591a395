import Foundation

/// Which action kinds exist, in which image, with how many stem cells: upstream's runtime
/// manifest (`runtimes.json`, the `runtimes_manifest` of its deployment), read by the controller
/// (which kinds an action may have) and the invoker (which image runs a kind).
public struct RuntimeManifest: Sendable, Hashable, Codable {
    public struct ImageName: Sendable, Hashable, Codable, CustomStringConvertible {
        public var prefix: String?
        public var name: String
        public var tag: String?

        public init(prefix: String? = nil, name: String, tag: String? = nil) {
            self.prefix = prefix
            self.name = name
            self.tag = tag
        }

        /// `prefix/name:tag`, as Docker names it.
        public var description: String { (prefix.map { "\($0)/" } ?? "") + name + (tag.map { ":\($0)" } ?? "") }
    }

    public struct StemCell: Sendable, Hashable, Codable {
        public var initialCount: Int
        public var memory: ByteSize
    }

    public struct Runtime: Sendable, Hashable, Codable {
        public var kind: String
        public var `default`: Bool?
        public var image: ImageName
        public var deprecated: Bool?
        public var stemCells: [StemCell]?
    }

    public var runtimes: [String: [Runtime]]
    public var blackboxes: [ImageName]?

    public init(runtimes: [String: [Runtime]], blackboxes: [ImageName]? = nil) {
        self.runtimes = runtimes
        self.blackboxes = blackboxes
    }

    /// What a binary uses without a manifest: Python only.
    public static let builtIn = RuntimeManifest(runtimes: [
        "python": [Runtime(kind: "python:3", default: true, image: ImageName(prefix: "whiskmesh", name: "python", tag: "3"), deprecated: false,
                           stemCells: [StemCell(initialCount: 1, memory: .megabytes(256))])],
    ])

    /// Reads a manifest file; a clear error names what is wrong with it.
    public static func load(path: String) throws -> RuntimeManifest {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw WhiskMessageError(.invalidField, "runtime manifest: cannot read \(path)")
        }
        let manifest = try WhiskMessageCoding.decode(RuntimeManifest.self, from: data, maxBytes: .max)
        for (family, kinds) in manifest.runtimes {
            guard !kinds.isEmpty else { throw WhiskMessageError(.invalidField, "runtime manifest: family '\(family)' has no kind") }
            guard kinds.filter({ $0.default == true }).count == 1 else {
                throw WhiskMessageError(.invalidField, "runtime manifest: family '\(family)' needs exactly one default kind")
            }
        }
        return manifest
    }

    var all: [Runtime] { runtimes.values.flatMap { $0 } }

    /// The kinds actions may have (deprecated ones excluded), sorted.
    public var kinds: [String] { all.filter { $0.deprecated != true }.map(\.kind).sorted() }

    /// `kind` as the platform knows it: itself, or a family's default for `family` and
    /// `family:default` (upstream accepts both); nil when unknown or deprecated.
    public func resolve(_ kind: String) -> String? {
        let family = kind.hasSuffix(":default") ? String(kind.dropLast(":default".count)) : kind
        if let kinds = runtimes[family], let preferred = kinds.first(where: { $0.default == true }), preferred.deprecated != true {
            return preferred.kind
        }
        return all.first { $0.kind == kind && $0.deprecated != true }?.kind
    }

    /// The image of every kind, `prefix/name:tag`.
    public var images: [String: String] {
        Dictionary(all.map { ($0.kind, $0.image.description) }, uniquingKeysWith: { first, _ in first })
    }

    /// Stem cells to keep per kind (the sum of its stemCells' initial counts).
    public var stemCells: [String: Int] {
        Dictionary(all.compactMap { runtime in runtime.stemCells.map { (runtime.kind, $0.reduce(0) { $0 + $1.initialCount }) } },
                   uniquingKeysWith: { first, _ in first })
    }
}
