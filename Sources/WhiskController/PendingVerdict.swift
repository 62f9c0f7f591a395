import WhiskMessages

/// What the controller does with an accepted activation that has no record yet; pure.
///
/// Activations on a dead invoker's topic wait for that invoker's restart, which replays them.
/// The controller gives up, with a record that says why, only once the activation's deadline
/// (its timeout plus the slot grace) has passed and its invoker is offline, or long after the
/// deadline whatever the invoker's state. A sequence is run by the controller itself, so one
/// accepted before the running controller started was cut short by a restart.
public enum PendingVerdict: Sendable, Equatable {
    case wait
    /// Write a whisk-error record with this message.
    case giveUp(String)

    /// - Parameters:
    ///   - now: epoch milliseconds.
    ///   - invoker: the state of the activation's invoker, nil when this controller never heard of it.
    ///   - controllerStarted: epoch milliseconds of the running controller's start.
    ///   - abandonAfter: milliseconds after the deadline at which a healthy invoker is no excuse either.
    public static func decide(_ pending: PendingActivation, now: Int64, invoker: InvokerState?, controllerStarted: Int64,
                              abandonAfter: Int64) -> PendingVerdict {
        switch pending.kind {
        case .sequence:
            return pending.accepted >= controllerStarted ? .wait
                : .giveUp("The controller restarted while this sequence was running; its remaining components did not run.")
        case .action:
            guard now >= pending.deadline else { return .wait }
            let name = pending.invoker.map { "invoker\($0)" } ?? "its invoker"
            switch invoker {
            case nil, .offline?:
                return .giveUp("The activation has no result: \(name) went offline before completing it and did not return by the "
                    + "activation's deadline. It may not have run.")
            case .healthy?, .unhealthy?:
                guard now >= pending.deadline + abandonAfter else { return .wait }
                return .giveUp("The activation has no result: \(name) did not complete it within \(abandonAfter / 1000) s after the "
                    + "activation's deadline. It may not have run.")
            }
        }
    }

    /// The record a give-up leaves: a whisk error, stored provisionally (a late real record replaces it).
    public static func record(for pending: PendingActivation, message: String, now: Int64) -> WhiskActivation? {
        let name = pending.action.split(separator: "/").last.map(String.init) ?? pending.action
        guard let namespace = EntityPath(pending.namespace), let entity = EntityName(name) else { return nil }
        var annotations = [Parameter(key: "path", value: .string(pending.action))]
        if pending.kind == .sequence { annotations.append(Parameter(key: "kind", value: "sequence")) }
        annotations.append(Parameter(key: "givenUp", value: true))
        return WhiskActivation(
            namespace: namespace, name: entity, subject: Subject(namespace: pending.namespace), activationId: pending.activationId,
            start: pending.accepted, end: max(now, pending.accepted), cause: pending.cause,
            response: .error(.whiskError, .string(message)), version: pending.version, annotations: annotations
        )
    }
}
