import Dispatch
import Foundation
import Synchronization
import WhiskMessages

/// The invoker's map files, written off Swift's cooperative pool: every write, folder creation
/// and removal runs on one serial dispatch queue (encoding a large map and the file calls hold
/// their thread), in the order asked.
///
/// A write takes the namespace's map as it is when the write begins, and the next write waits
/// until 9 t have passed, t being the CPU the namespace's writes take (smoothed, so that a first
/// write's one-off costs do not hold back the next; CPU, not wall time, so that a write
/// preempted on a busy host does not either): rewrites take about a tenth of a core at most, and
/// a small map (a write well under a millisecond) is written at once. A rewrite costs the whole
/// map (10,000 instances: ~1.5 MB, ~10 ms here): one per delta made an invoker spend half a core
/// on a namespace of 10,000 instances that changed 100 times a second.
final class AddressMapFiles: Sendable {
    let writer: AddressMapFileWriter
    private let queue = DispatchQueue(label: "whiskmesh.addressmap.files")

    /// A namespace's write: what to write (its newest content, built when the write begins), the
    /// entries that arrived since the last write (recorded once they are in the file), and when.
    private struct Pending {
        var content: (@Sendable () -> AddressMapFile?)?
        var arrived: [AddressEntry] = []
        var scheduled = false
        var writing = false
        /// The earliest start of the next write.
        var nextWrite: ContinuousClock.Instant?
        /// The CPU a write of this namespace takes, smoothed.
        var cost: Duration = .zero
        /// Writes failed in a row: the next is tried again after 1, 2, 4 ... up to 60 s.
        var failures = 0
    }
    private let pending = Mutex([String: Pending]())
    /// Set by ``removeAll()``: a write still scheduled then writes nothing (it would make the
    /// folders again after the invoker removed them).
    private let closed = Atomic<Bool>(false)
    private let written: @Sendable (_ arrived: [AddressEntry]) -> Void
    private let failed: @Sendable (_ namespace: String, _ error: any Error) -> Void

    /// `written` is called after each write with the entries it brought, `failed` when one fails.
    init(writer: AddressMapFileWriter, written: @escaping @Sendable ([AddressEntry]) -> Void = { _ in },
         failed: @escaping @Sendable (String, any Error) -> Void = { _, _ in }) {
        self.writer = writer
        self.written = written
        self.failed = failed
    }

    /// The map of `namespace` changed (`arrived`: the entries new in it): its file is rewritten
    /// with what `content` gives when the write begins, at once or once the previous write's
    /// spacing has passed.
    func changed(namespace: String, arrived: [AddressEntry], content: @escaping @Sendable () -> AddressMapFile?) {
        let delay = pending.withLock { pending -> Duration? in
            var entry = pending[namespace] ?? Pending()
            entry.content = content
            entry.arrived += arrived
            defer { pending[namespace] = entry }
            // A write under way schedules the next one when it ends.
            guard !entry.scheduled, !entry.writing else { return nil }
            entry.scheduled = true
            return entry.nextWrite.map { max(.zero, $0 - .now) } ?? .zero
        }
        if let delay { schedule(namespace, after: delay) }
    }

    private func schedule(_ namespace: String, after delay: Duration) {
        let work: @Sendable () -> Void = { self.flush(namespace) }
        if delay <= .zero {
            queue.async(execute: work)
        } else {
            let (seconds, attoseconds) = delay.components
            queue.asyncAfter(deadline: .now() + .nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)), execute: work)
        }
    }

    /// On the queue: writes the namespace's newest content.
    private func flush(_ namespace: String) {
        let taken = pending.withLock { pending -> (content: (@Sendable () -> AddressMapFile?)?, arrived: [AddressEntry]) in
            guard var entry = pending[namespace] else { return (nil, []) }
            let taken = (entry.content, entry.arrived)
            entry.content = nil
            entry.arrived = []
            entry.scheduled = false
            entry.writing = true
            pending[namespace] = entry
            return taken
        }
        let began = Self.threadCPUTime()
        var failedWrite = false
        if !closed.load(ordering: .acquiring), let file = taken.content?() {
            do {
                try writer.write(file)
                written(taken.arrived)
            } catch {
                failed(namespace, error)
                failedWrite = true
            }
        }
        let again = pending.withLock { pending -> Duration? in
            guard var entry = pending[namespace] else { return nil }
            let now = ContinuousClock.now
            entry.writing = false
            entry.cost = entry.cost * 0.7 + (Self.threadCPUTime() - began) * 0.3
            entry.nextWrite = now + entry.cost * 9
            if failedWrite {
                // The file still holds an older map: written again later (with any newer content),
                // its arrivals kept, not left stale until the namespace's next change.
                if entry.content == nil { entry.content = taken.content }
                entry.arrived = taken.arrived + entry.arrived
                entry.nextWrite = now + max(entry.cost * 9, .seconds(1 << min(entry.failures, 6)))
                entry.failures += 1
            } else {
                entry.failures = 0
            }
            let again = entry.content != nil && !entry.scheduled
            if again { entry.scheduled = true }
            pending[namespace] = entry
            return again ? entry.nextWrite! - now : nil
        }
        if let again { schedule(namespace, after: again) }
    }

    /// CPU time the calling thread has used.
    private static func threadCPUTime() -> Duration {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return .seconds(time.tv_sec) + .nanoseconds(time.tv_nsec)
    }

    /// The namespace's folder, with an empty map if it has none yet (never over a written one:
    /// both run on the queue).
    func prepare(namespace: String) async throws {
        try await onQueue { try $0.prepare(namespace: namespace) }
    }

    /// Removes the map files an earlier run of the invoker left (it was killed, or its host went
    /// down, before it could remove them), before this run writes any. They are stale: a
    /// namespace whose instances have all gone meanwhile may never be written again, and a new
    /// container of it would find that file (its folder is prepared, never overwritten).
    func removeLeftovers() async {
        try? await onQueue { writer in writer.removeAll() }
    }

    /// Removes every map file, after the work queued before; writes scheduled for later write nothing.
    func removeAll() async {
        try? await onQueue { writer in
            self.closed.store(true, ordering: .releasing)
            writer.removeAll()
        }
    }

    /// Holds the queue's work until `resume()` (tests: changes made meanwhile must coalesce).
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
