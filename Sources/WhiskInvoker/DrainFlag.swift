import Synchronization

/// Set once, when a shutdown's drain period ran out: activations that fail after it failed
/// because the invoker removed their containers, and their records say so.
final class DrainFlag: Sendable {
    private let value = Atomic<Bool>(false)

    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
