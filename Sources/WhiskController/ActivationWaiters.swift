import Synchronization
import WhiskMessages

/// Blocking invokes waiting for their activation's result, by activation id.
///
/// Register before publishing (so an early result is kept), then wait with a timeout. Each
/// waiter is resumed exactly once: by its result, by its timeout, or at shutdown.
public final class ActivationWaiters: Sendable {
    private struct Slot {
        var result: WhiskActivation?
        var continuation: CheckedContinuation<WhiskActivation?, Never>?
    }
    private struct State {
        var slots: [ActivationId: Slot] = [:]
        var closed = false
    }
    private let state = Mutex(State())

    public init() {}

    public func register(_ id: ActivationId) {
        state.withLock { state in
            if !state.closed { state.slots[id] = Slot() }
        }
    }

    /// Delivers a result; ignored when nobody waits for `id`.
    public func complete(_ activation: WhiskActivation) {
        let continuation: CheckedContinuation<WhiskActivation?, Never>? = state.withLock { state in
            guard var slot = state.slots[activation.activationId] else { return nil }
            if let continuation = slot.continuation {
                state.slots[activation.activationId] = nil
                return continuation
            }
            slot.result = activation
            state.slots[activation.activationId] = slot
            return nil
        }
        continuation?.resume(returning: activation)
    }

    /// Waits up to `timeout` for the result of a registered `id`; nil on timeout or shutdown.
    public func wait(for id: ActivationId, timeout: Duration) async -> WhiskActivation? {
        await withTaskGroup(of: WhiskActivation?.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let immediate: WhiskActivation?? = self.state.withLock { state in
                        guard var slot = state.slots[id] else { return .some(nil) }
                        if let result = slot.result {
                            state.slots[id] = nil
                            return .some(result)
                        }
                        slot.continuation = continuation
                        state.slots[id] = slot
                        return .none
                    }
                    if let immediate { continuation.resume(returning: immediate) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                self.expire(id)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// Gives up on `id`: its waiter, if any, is resumed with nil.
    public func expire(_ id: ActivationId) {
        let continuation = state.withLock { $0.slots.removeValue(forKey: id)?.continuation }
        continuation?.resume(returning: nil)
    }

    /// Resumes every waiter with nil and accepts no more.
    public func close() {
        let continuations = state.withLock { state in
            state.closed = true
            defer { state.slots.removeAll() }
            return state.slots.values.compactMap(\.continuation)
        }
        for continuation in continuations { continuation.resume(returning: nil) }
    }

    public var waitingCount: Int { state.withLock { $0.slots.count } }
}
