import Testing
@testable import WhiskController
import WhiskMessages

@Suite("Sharding load balancer")
struct ShardingBalancerTests {
    func balancer(invokers: Int, memoryMB: Int64 = 1024) -> ShardingBalancer {
        var balancer = ShardingBalancer()
        for instance in 0..<invokers { balancer.updateCapacity(instance: instance, userMemory: .megabytes(memoryMB)) }
        return balancer
    }

    @Test func sameActionGoesHomeEveryTime() {
        var balancer = balancer(invokers: 4)
        let homes = (0..<10).map { _ -> Int? in
            let id = ActivationId.generate()
            defer { balancer.release(activationId: id) }
            return balancer.schedule(activationId: id, namespace: "guest", action: "guest/hello", memory: 256, usable: [0, 1, 2, 3])
        }
        #expect(Set(homes).count == 1)
        #expect(homes.first! != nil)
    }

    @Test func differentActionsSpreadOverInvokers() {
        var balancer = balancer(invokers: 4)
        let chosen = Set((0..<40).compactMap { index in
            balancer.schedule(activationId: .generate(), namespace: "guest", action: "guest/action\(index)", memory: 1, usable: [0, 1, 2, 3])
        })
        #expect(chosen.count == 4)
    }

    @Test func stepsOverUnusableAndFullInvokers() throws {
        var balancer = balancer(invokers: 3, memoryMB: 512)
        let first = ActivationId.generate()
        let scheduledHome = balancer.schedule(activationId: first, namespace: "ns", action: "ns/a", memory: 512, usable: [0, 1, 2])
        let home = try #require(scheduledHome)
        // Home is now full: the next activation of the same action steps elsewhere.
        let second = balancer.schedule(activationId: .generate(), namespace: "ns", action: "ns/a", memory: 512, usable: [0, 1, 2])
        #expect(second != nil && second != home)
        // With home unusable, the action never lands there.
        balancer.release(activationId: first)
        let third = balancer.schedule(activationId: .generate(), namespace: "ns", action: "ns/a", memory: 1, usable: Set([0, 1, 2]).subtracting([home]))
        #expect(third != home && third != nil)
    }

    @Test func forcedWhenAllFullAndNilWhenNoneUsable() {
        var balancer = balancer(invokers: 2, memoryMB: 256)
        #expect(balancer.schedule(activationId: .generate(), namespace: "ns", action: "ns/a", memory: 256, usable: [0, 1]) != nil)
        #expect(balancer.schedule(activationId: .generate(), namespace: "ns", action: "ns/a", memory: 256, usable: [0, 1]) != nil)
        // Both full: OpenWhisk still places it (overcommit) rather than refusing.
        #expect(balancer.schedule(activationId: .generate(), namespace: "ns", action: "ns/a", memory: 256, usable: [0, 1]) != nil)
        #expect(balancer.freeMemory.values.reduce(0, +) == -256)
        #expect(balancer.schedule(activationId: .generate(), namespace: "ns", action: "ns/a", memory: 1, usable: []) == nil)
    }

    /// The stages of one peer-to-peer sequence go where the first went while it has room: an
    /// action whose home is elsewhere follows the preference, a full or unusable preferred
    /// invoker is stepped over as usual.
    @Test func aPreferredInvokerIsTakenWhileItHasRoomAndUsable() throws {
        var balancer = balancer(invokers: 4, memoryMB: 512)
        let actions = (0..<40).map { "ns/a\($0)" }
        let scheduledHome = balancer.schedule(activationId: .generate(), namespace: "ns", action: actions[0], memory: 1, usable: [0, 1, 2, 3])
        let home = try #require(scheduledHome)
        // Positive control: without the preference these actions spread over other invokers.
        let unpreferred = Set(actions.dropFirst().map { action -> Int? in
            var copy = balancer
            return copy.schedule(activationId: .generate(), namespace: "ns", action: action, memory: 1, usable: [0, 1, 2, 3])
        })
        #expect(unpreferred.count > 1)
        for action in actions.dropFirst().prefix(5) {
            #expect(balancer.schedule(activationId: .generate(), namespace: "ns", action: action, memory: 100, usable: [0, 1, 2, 3], preferring: home) == home)
        }
        // 1 + 500 MB taken: the preferred invoker is full for 100 MB more.
        let spilled = balancer.schedule(activationId: .generate(), namespace: "ns", action: actions[6], memory: 100, usable: [0, 1, 2, 3], preferring: home)
        #expect(spilled != nil && spilled != home)
        let elsewhere = Set([0, 1, 2, 3]).subtracting([home])
        let avoided = balancer.schedule(activationId: .generate(), namespace: "ns", action: actions[7], memory: 1, usable: elsewhere, preferring: home)
        #expect(avoided != nil && avoided != home)
        #expect(balancer.schedule(activationId: .generate(), namespace: "ns", action: actions[8], memory: 1, usable: [0, 1, 2, 3], preferring: 9) != 9)
    }

    @Test func releaseIsIdempotent() {
        var balancer = balancer(invokers: 1, memoryMB: 1024)
        let id = ActivationId.generate()
        _ = balancer.schedule(activationId: id, namespace: "ns", action: "ns/a", memory: 256, usable: [0])
        #expect(balancer.release(activationId: id) == 0)
        #expect(balancer.release(activationId: id) == nil)
        #expect(balancer.freeMemory[0] == 1024)
    }

    @Test func stepSizesAreCoprime() {
        #expect(ShardingBalancer.stepSizes(4) == [1, 3])
        #expect(ShardingBalancer.stepSizes(1) == [1])
        #expect(ShardingBalancer.stepSizes(6) == [1, 5])
    }

    @Test func hashIsStable() {
        // FNV-1a of "a": fixed across processes and runs, unlike Swift's Hasher.
        #expect(ShardingBalancer.hash("a") == 0xaf63_dc4c_8601_ec8c)
    }
}

@Suite("Invoker health state machine")
struct InvokerHealthTests {
    let invoker = InvokerInstanceId(instance: 0, userMemory: .megabytes(2048))

    @Test func pingMakesHealthyAndSilenceMakesOffline() {
        var health = InvokerHealth(offlineTimeout: .seconds(10))
        let start = ContinuousClock.now
        #expect(health.ping(PingMessage(name: invoker), at: start) == .init(instance: 0, from: nil, to: .healthy))
        #expect(health.ping(PingMessage(name: invoker), at: start + .seconds(1)) == nil)
        #expect(health.tick(at: start + .seconds(5)).isEmpty)
        #expect(health.tick(at: start + .seconds(12)) == [.init(instance: 0, from: .healthy, to: .offline)])
        #expect(health.ping(PingMessage(name: invoker), at: start + .seconds(13))?.to == .healthy)
    }

    @Test func disabledPingIsOffline() {
        var health = InvokerHealth()
        _ = health.ping(PingMessage(name: invoker, isEnabled: false), at: .now)
        #expect(health.invokers[0]?.state == .offline)
        #expect(health.invokers[0]?.state.isUsable == false)
    }

    @Test func moreThanThreeSystemErrorsOfTenMakeUnhealthy() {
        var health = InvokerHealth()
        _ = health.ping(PingMessage(name: invoker), at: .now)
        for _ in 0..<3 { _ = health.record(instance: 0, systemError: true) }
        #expect(health.invokers[0]?.state == .healthy)
        #expect(health.record(instance: 0, systemError: true)?.to == .unhealthy)
        // Ten good results push the errors out of the window.
        for _ in 0..<10 { _ = health.record(instance: 0, systemError: false) }
        #expect(health.invokers[0]?.state == .healthy)
    }
}

@Suite("Activation waiters")
struct ActivationWaitersTests {
    func activation(_ id: ActivationId) -> WhiskActivation {
        WhiskActivation(namespace: EntityPath("guest")!, name: EntityName("a")!, subject: "guest", activationId: id, start: 1, end: 2, response: .success([:]))
    }

    @Test func resultBeforeWaitIsKept() async {
        let waiters = ActivationWaiters()
        let id = ActivationId.generate()
        waiters.register(id)
        waiters.complete(activation(id))
        #expect(await waiters.wait(for: id, timeout: .seconds(5))?.activationId == id)
        #expect(waiters.waitingCount == 0)
    }

    @Test func resultDuringWait() async {
        let waiters = ActivationWaiters()
        let id = ActivationId.generate()
        waiters.register(id)
        async let result = waiters.wait(for: id, timeout: .seconds(10))
        // Whether the result lands before or after the waiter parks, it is delivered once.
        try? await Task.sleep(for: .milliseconds(20))
        waiters.complete(activation(id))
        #expect(await result?.activationId == id)
    }

    @Test func timeoutGivesNilAndForgets() async {
        let waiters = ActivationWaiters()
        let id = ActivationId.generate()
        waiters.register(id)
        #expect(await waiters.wait(for: id, timeout: .milliseconds(20)) == nil)
        #expect(waiters.waitingCount == 0)
        waiters.complete(activation(id))  // a late result is ignored
        #expect(waiters.waitingCount == 0)
    }

    @Test func closeResumesEveryone() async {
        let waiters = ActivationWaiters()
        let id = ActivationId.generate()
        waiters.register(id)
        async let result = waiters.wait(for: id, timeout: .seconds(30))
        try? await Task.sleep(for: .milliseconds(20))
        waiters.close()
        #expect(await result == nil)
    }
}
