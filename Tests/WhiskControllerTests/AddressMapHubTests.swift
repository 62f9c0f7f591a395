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
