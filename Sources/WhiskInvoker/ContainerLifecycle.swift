/// An action container's life, as OpenWhisk's ContainerProxy models it:
///
///     creating ─started─▶ stem cell ─claimed─▶ initializing ─initialized─▶ running ⇄ warm
///         └─started (for an activation)──────────▶ ┘                        (finished / claimed)
///
/// and from every state to `removing` (failure, death, eviction, idle expiry, shutdown), after
/// which the container is removed from Docker and leaves the pool. Pure: no I/O.
public enum ContainerState: String, Sendable, Equatable, Hashable, CaseIterable, Codable {
    /// Being created and started (and, for a namespace stem cell, attached to its overlay).
    case creating
    /// Started, not initialised, idle: any action of its kind (and namespace) may take it.
    case stemCell
    /// `/init` (and a cold container's overlay attach) under way for one activation.
    case initializing
    /// Initialised for one action, idle.
    case warm
    /// `/run` under way.
    case running
    /// Leaving: removed from Docker, then forgotten.
    case removing

    /// Idle containers are the only ones a decision may take away (eviction, expiry).
    public var isIdle: Bool { self == .warm || self == .stemCell }
}

/// Why a container's activation path failed.
public enum ContainerFailure: String, Sendable, Equatable, CaseIterable {
    case create
    case overlayAttach
    case initialization
    case run
    case timeout
}

/// What happens to a container.
public enum ContainerEvent: Sendable, Equatable {
    /// Docker started it: it becomes a stem cell, or initialises right away for the activation it was made for.
    case started(forActivation: Bool)
    /// An activation takes it (a stem cell to initialise, a warm container to run).
    case claimed
    /// `/init` (and the overlay attach) succeeded; `/run` follows.
    case initialized
    /// `/run` answered: the container goes back to warm.
    case finished
    case failed(ContainerFailure)
    /// Docker reported it dead.
    case died
    /// Its memory is needed for another container.
    case evicted
    /// Idle past the idle timeout, or a stem cell no longer wanted.
    case expired
    case shutdown
}

public enum ContainerLifecycle {
    /// The state after `event`, or nil when `event` cannot happen in `state` (a bug the caller logs).
    /// Once removing, every later ending (a run that fails because its container was removed,
    /// a death event, shutdown) is absorbed.
    public static func next(_ state: ContainerState, on event: ContainerEvent) -> ContainerState? {
        switch (state, event) {
        case (.creating, .started(let forActivation)): return forActivation ? .initializing : .stemCell
        case (.stemCell, .claimed): return .initializing
        case (.initializing, .initialized): return .running
        case (.warm, .claimed): return .running
        case (.running, .finished): return .warm
        case (.stemCell, .evicted), (.warm, .evicted), (.stemCell, .expired), (.warm, .expired): return .removing
        case (.creating, .failed), (.stemCell, .failed(.overlayAttach)), (.initializing, .failed), (.running, .failed): return .removing
        case (_, .died), (_, .shutdown): return .removing
        case (.removing, .finished), (.removing, .failed), (.removing, .evicted), (.removing, .expired): return .removing
        default: return nil
        }
    }
}
