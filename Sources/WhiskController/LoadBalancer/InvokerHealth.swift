import WhiskMessages

/// An invoker's state as the controller sees it (OpenWhisk's InvokerSupervision).
public enum InvokerState: String, Sendable, Codable {
    /// Pings arrive and recent activations did not fail with system errors.
    case healthy
    /// Pings arrive, but more than 3 of its last 10 activations were system errors.
    case unhealthy
    /// No ping within the offline timeout, or the invoker said it is disabled.
    case offline

    public var isUsable: Bool { self == .healthy }
}

/// One invoker's entry in ``InvokerHealth``.
public struct InvokerStatus: Sendable, Equatable {
    public var id: InvokerInstanceId
    public var state: InvokerState
    public var lastPing: ContinuousClock.Instant
    /// Whether each of the last (up to 10) activations ended in a system error.
    var recentSystemErrors: [Bool] = []
}

/// The controller's view of invoker health, fed by pings and results; pure, no I/O.
public struct InvokerHealth: Sendable {
    public var offlineTimeout: Duration
    public private(set) var invokers: [Int: InvokerStatus] = [:]

    public init(offlineTimeout: Duration = .seconds(10)) {
        self.offlineTimeout = offlineTimeout
    }

    /// A change worth logging.
    public struct Transition: Sendable, Equatable {
        public var instance: Int
        public var from: InvokerState?
        public var to: InvokerState
    }

    /// Applies a ping; returns the transition it caused, if any.
    public mutating func ping(_ message: PingMessage, at now: ContinuousClock.Instant) -> Transition? {
        let instance = message.name.instance
        let previous = invokers[instance]
        var status = previous ?? InvokerStatus(id: message.name, state: .healthy, lastPing: now)
        status.id = message.name
        status.lastPing = now
        status.state = message.enabled ? Self.state(fromErrors: status.recentSystemErrors) : .offline
        invokers[instance] = status
        return previous?.state == status.state ? nil : Transition(instance: instance, from: previous?.state, to: status.state)
    }

    /// Marks invokers without a recent ping offline.
    public mutating func tick(at now: ContinuousClock.Instant) -> [Transition] {
        var transitions: [Transition] = []
        for (instance, status) in invokers where status.state != .offline && now - status.lastPing > offlineTimeout {
            invokers[instance]?.state = .offline
            transitions.append(Transition(instance: instance, from: status.state, to: .offline))
        }
        return transitions.sorted { $0.instance < $1.instance }
    }

    /// Records an activation's outcome on `instance`.
    public mutating func record(instance: Int, systemError: Bool) -> Transition? {
        guard var status = invokers[instance] else { return nil }
        status.recentSystemErrors.append(systemError)
        if status.recentSystemErrors.count > 10 { status.recentSystemErrors.removeFirst(status.recentSystemErrors.count - 10) }
        let previous = status.state
        if previous != .offline { status.state = Self.state(fromErrors: status.recentSystemErrors) }
        invokers[instance] = status
        return previous == status.state ? nil : Transition(instance: instance, from: previous, to: status.state)
    }

    static func state(fromErrors errors: [Bool]) -> InvokerState {
        errors.filter { $0 }.count > 3 ? .unhealthy : .healthy
    }

    /// All known invokers, by instance number.
    public var sorted: [InvokerStatus] { invokers.values.sorted { $0.id.instance < $1.id.instance } }
}
