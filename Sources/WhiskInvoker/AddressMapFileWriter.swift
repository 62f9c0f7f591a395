import Foundation
import WhiskMessages

/// Writes each namespace's `map.json` into its own folder, atomically: the new content goes to a
/// temporary file in the same folder, which `rename(2)` then puts in place, so a reader sees the
/// old file or the new one, never half of one. The folder (not the file) is what containers mount.
public struct AddressMapFileWriter: Sendable {
    public let root: String

    public init(root: String) {
        self.root = root
    }

    /// The folder of a namespace: a safe, distinct name for any namespace.
    public static func folderName(namespace: String) -> String {
        OverlayNetworks.networkName(namespace: namespace, prefix: "")
    }

    public func folder(namespace: String) -> String { "\(root)/\(Self.folderName(namespace: namespace))" }

    /// Creates the namespace's folder (with an empty map) if it does not exist yet.
    public func prepare(namespace: String) throws {
        let folder = folder(namespace: namespace)
        if !FileManager.default.fileExists(atPath: "\(folder)/map.json") {
            try write(AddressMapFile(namespace: namespace, version: 0, entries: []))
        }
    }

    public func write(_ file: AddressMapFile) throws {
        let folder = folder(namespace: file.namespace)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(file)
        let temporary = "\(folder)/.map.json.\(UUID().uuidString)"
        guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o644]) else {
            throw InvokerError("cannot write \(temporary)")
        }
        guard rename(temporary, "\(folder)/map.json") == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw InvokerError("cannot replace \(folder)/map.json: \(reason)")
        }
    }

    public func removeAll() {
        try? FileManager.default.removeItem(atPath: root)
    }
}
