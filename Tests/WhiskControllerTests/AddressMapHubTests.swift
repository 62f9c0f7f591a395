import Testing
@testable import WhiskController
import WhiskMessages

@Suite("Address map hub")
struct AddressMapHubTests {
    @Test func snapshotRequestsAreRateLimitedPerInvoker() {
        let hub = AddressMapHub()
        #expect(hub.heartbeat(from: 0) == [.snapshotRequest(invoker: 0)], "an unknown invoker is asked at once")
        #expect(hub.heartbeat(from: 0) == [], "not again on the next ping")
        #expect(hub.heartbeat(from: 1) == [.snapshotRequest(invoker: 1)], "the limit is per invoker")
        let known = hub.apply(AddressMapUpdate(incarnation: "i", seq: 1, snapshot: true, added: [], removed: []), from: 2)
        #expect(known == [])
        #expect(hub.heartbeat(from: 2) == [], "a known invoker is not asked")
    }

    /// An invoker that runs without the overlay (or a stock OpenWhisk invoker) never answers: it
    /// is asked at once and then less and less often, not every second forever. An answer resets
    /// that: once it is unknown again (it went silent and came back), it is asked at once.
    @Test func anInvokerThatNeverAnswersIsAskedLessAndLessOften() {
        let hub = AddressMapHub()
        let start = ContinuousClock.now
        var asks: [Int] = []
        for second in 0..<200 where !hub.heartbeat(from: 0, now: start + .seconds(second)).isEmpty {  // a ping a second
            asks.append(second)
        }
        #expect(asks == [0, 2, 6, 14, 30, 62, 126, 190])

        #expect(hub.heartbeat(from: 5, now: start) == [.snapshotRequest(invoker: 5)])
        _ = hub.apply(AddressMapUpdate(incarnation: "i", seq: 1, snapshot: true, added: [], removed: []), from: 5)
        _ = hub.expire(timeout: .zero)  // silent: the map forgets it
        #expect(hub.heartbeat(from: 5, now: start + .milliseconds(1500)) == [.snapshotRequest(invoker: 5)],
                "it answered, so it is asked at once (1 s after the last ask), not after 2 s")
    }

    @Test func aNamespaceIsAnnouncedActiveAtMostOncePerInterval() {
        let hub = AddressMapHub()
        let start = ContinuousClock.now
        #expect(hub.announce(namespace: "guest", every: .seconds(60), now: start) == [.namespaceActive(namespace: "guest")])
        #expect(hub.announce(namespace: "guest", every: .seconds(60), now: start + .seconds(59)) == [], "not again within the interval")
        #expect(hub.announce(namespace: "other", every: .seconds(60), now: start + .seconds(1)) == [.namespaceActive(namespace: "other")])
        #expect(hub.announce(namespace: "guest", every: .seconds(60), now: start + .seconds(61)) == [.namespaceActive(namespace: "guest")])
    }

    @Test func snapshotsGoOutOnRequestAndOnTheFullIntervalOnly() {
        let hub = AddressMapHub()
        let entry = { (id: String, namespace: String) in
            AddressEntry(namespace: namespace, instanceID: InstanceID(id)!, ip: "10.128.0.9", invoker: 0, activationId: .generate(), since: 0)
        }
        let deltas = hub.apply(AddressMapUpdate(incarnation: "i", seq: 1, snapshot: true, added: [entry("a", "alpha"), entry("b", "beta")], removed: []), from: 0)
        #expect(deltas.count == 2)
        guard case .delta(_, let version, _, _) = deltas[0] else { Issue.record("expected a delta"); return }
        #expect(version > GlobalAddressMap.baseVersion() - 60_000_000, "versions start above any earlier controller's")
        let start = ContinuousClock.now
        #expect(hub.snapshots(fullInterval: .seconds(30), now: start).isEmpty, "nobody asked: deltas only")
        hub.requestResync(["beta", "nonexistent"])
        let answered = hub.snapshots(fullInterval: .seconds(30), now: start + .milliseconds(100))
        #expect(answered.map(\.namespaceName) == ["beta"])
        hub.requestResync(["beta"])
        #expect(hub.snapshots(fullInterval: .seconds(30), now: start + .milliseconds(200)).isEmpty, "at most once a second per namespace")
        #expect(hub.snapshots(fullInterval: .seconds(30), now: start + .milliseconds(1200)).map(\.namespaceName) == ["beta"], "then served")
        hub.requestResync(["*"])
        #expect(hub.snapshots(fullInterval: .seconds(30), now: start + .seconds(3)).map(\.namespaceName) == ["alpha", "beta"])
        hub.requestResync(["*"])
        #expect(hub.snapshots(fullInterval: .seconds(30), now: start + .seconds(4)).isEmpty, "everything at most every 2 s")
        #expect(hub.snapshots(fullInterval: .seconds(30), now: start + .seconds(5)).count == 2, "then the pending request is served")
        #expect(hub.snapshots(fullInterval: .seconds(30), now: start + .seconds(8)).isEmpty)
        #expect(hub.snapshots(fullInterval: .seconds(30), now: start + .seconds(36)).count == 2, "the full refresh")
    }

    @Test func claimsAreExclusiveUntilReleased() {
        let hub = AddressMapHub()
        let key = InstanceKey(namespace: "guest", instanceID: InstanceID("a")!)
        let first = ActivationId.generate(), second = ActivationId.generate()
        #expect(hub.claim(key, for: first) == nil)
        #expect(hub.claim(key, for: second) == first)
        hub.release(activationId: second)  // releasing a failed claimant frees nothing
        #expect(hub.claim(key, for: second) == first)
        hub.release(activationId: first)
        #expect(hub.claim(key, for: second) == nil)
    }
}

extension AddressMapPublication {
    var namespaceName: String? {
        switch self {
        case .delta(let namespace, _, _, _), .snapshot(let namespace, _, _), .snapshotPart(let namespace, _, _, _, _), .namespaceActive(let namespace): namespace
        case .snapshotRequest: nil
        }
    }
}
