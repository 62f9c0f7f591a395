import Synchronization

/// Wakes the heartbeat loop early when the local map changed, else after its interval.
final class HeartbeatTrigger: Sendable {
    private struct State {
        var pending = false
        /// The current wait's time ran out (possibly before its waiter parked).
        var expired = false
        var continuation: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())

    /// Asks for a heartbeat now (many kicks before the next beat make one).
    func kick() {
        let continuation: CheckedContinuation<Void, Never>? = state.withLock { state in
            if let continuation = state.continuation {
                state.continuation = nil
                return continuation
            }
            state.pending = true
            return nil
        }
        continuation?.resume()
    }

    /// Returns after `interval`, or as soon as `kick()` is called.
    func wait(upTo interval: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let now: Bool = self.state.withLock { state in
                        if state.pending || state.expired {
                            state.pending = false
                            return true
                        }
                        state.continuation = continuation
                        return false
                    }
                    if now { continuation.resume() }
                }
            }
            group.addTask {
                try? await Task.sleep(for: interval)
                self.wakeWaiter()
            }
            await group.next()
            group.cancelAll()
            // Whichever finished first, the other must end too.
            self.wakeWaiter()
        }
        state.withLock { $0.expired = false }
    }

    private func wakeWaiter() {
        let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.expired = true
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume()
    }
}
