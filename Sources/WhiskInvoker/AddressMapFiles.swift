import Dispatch
import Foundation
import Synchronization
import WhiskMessages

/// The invoker's map files, written off Swift's cooperative pool: every write, folder creation
/// and removal runs on one serial dispatch queue (file system calls block their thread), in the
/// order asked. A namespace's map is written once for any number of publications that arrived
/// while its previous write was still waiting: only the newest content counts, so a burst of
/// deltas costs one rewrite, not one each.
final class AddressMapFiles: Sendable {
    let writer: AddressMapFileWriter
    private let queue = DispatchQueue(label: "whiskmesh.addressmap.files")
    /// Per namespace: the newest file not yet written, and the entries it brings (whose lag is
    /// recorded once they are in the file), while a write of that namespace is queued.
    private let pending = Mutex([String: (file: AddressMapFile, arrived: [AddressEntry])]())

    init(writer: AddressMapFileWriter) {
        self.writer = writer
    }

    /// Writes `file` soon (or a newer one of its namespace given before that write begins), then
    /// calls `written` with the entries that arrived in it, or `failed` with the error.
    func write(_ file: AddressMapFile, arrived: [AddressEntry], written: @escaping @Sendable ([AddressEntry]) -> Void,
               failed: @escaping @Sendable (any Error) -> Void) {
        let namespace = file.namespace
        let queued = pending.withLock { pending -> Bool in
            let earlier = pending[namespace]
            pending[namespace] = (file, (earlier?.arrived ?? []) + arrived)
            return earlier != nil
        }
        guard !queued else { return }
        queue.async {
            guard let next = self.pending.withLock({ $0.removeValue(forKey: namespace) }) else { return }
            do {
                try self.writer.write(next.file)
                written(next.arrived)
            } catch {
                failed(error)
            }
        }
    }

    /// The namespace's folder, with an empty map if it has none yet, once every write asked
    /// before has been done (so it never puts an empty map over one written meanwhile).
    func prepare(namespace: String) async throws {
        try await onQueue { try $0.prepare(namespace: namespace) }
    }

    /// Removes every map file, after the writes asked before.
    func removeAll() async {
        try? await onQueue { $0.removeAll() }
    }

    /// Holds the queue's work until `resume()` (tests: writes asked meanwhile must coalesce).
    func suspend() { queue.suspend() }
    func resume() { queue.resume() }

    private func onQueue(_ work: @escaping @Sendable (AddressMapFileWriter) throws -> Void) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            queue.async { [writer] in
                continuation.resume(with: Result { try work(writer) })
            }
        }
    }
}
