import Foundation
import Glibc
import Synchronization
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

    /// Writes the file with plain system calls, without `fsync`: the map describes containers
    /// that do not outlive the host, and an invoker removes the maps it finds when it starts
    /// (``AddressMapFiles/removeLeftovers()``), so nothing needs it on disk. (Foundation's atomic
    /// write, used before, made a temporary file of its own and synced it: 0.6 ms at the median
    /// and up to 11 ms a write on this machine's disk, on the queue every namespace's writes
    /// wait on.)
    public func write(_ file: AddressMapFile) throws {
        let folder = folder(namespace: file.namespace)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(file)
        // Unique per process and write, so that writers never share a temporary file.
        let temporary = "\(folder)/.map.json.\(getpid()).\(Self.writes.add(1, ordering: .relaxed).newValue)"
        var descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if descriptor < 0 && errno == ENOENT {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        }
        guard descriptor >= 0 else { throw InvokerError("cannot write \(temporary): \(String(cString: strerror(errno)))") }
        var failure: String?
        // The mode whatever the umask: every container's user must be able to read the map.
        if fchmod(descriptor, 0o644) != 0 { failure = String(cString: strerror(errno)) }
        data.withUnsafeBytes { bytes in
            var offset = 0
            while failure == nil && offset < bytes.count {
                let count = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if count > 0 {
                    offset += count
                } else if count == 0 {
                    failure = "no byte written"
                } else if errno != EINTR {
                    failure = String(cString: strerror(errno))
                }
            }
        }
        if close(descriptor) != 0 && failure == nil { failure = String(cString: strerror(errno)) }
        if failure == nil && rename(temporary, "\(folder)/map.json") != 0 {
            failure = "cannot replace \(folder)/map.json: " + String(cString: strerror(errno))
        }
        if let failure {
            unlink(temporary)
            throw InvokerError("cannot write \(folder)/map.json: \(failure)")
        }
    }

    private static let writes = Atomic<UInt64>(0)

    /// Removes every namespace's folder, then the root itself unless it is a mount point (the
    /// multi-host deployment bind-mounts it into the invoker's container): Foundation's removal of
    /// a mount point fails with EBUSY before it removes anything inside.
    public func removeAll() {
        let files = FileManager.default
        for folder in (try? files.contentsOfDirectory(atPath: root)) ?? [] {
            try? files.removeItem(atPath: "\(root)/\(folder)")
        }
        try? files.removeItem(atPath: root)
    }
}
