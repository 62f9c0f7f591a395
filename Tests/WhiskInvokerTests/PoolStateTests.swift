import Testing
@testable import WhiskInvoker

@Suite("Container lifecycle")
struct ContainerLifecycleTests {
    @Test func theHappyPathsOfAColdAStemCellAndAWarmContainer() {
        #expect(ContainerLifecycle.next(.creating, on: .started(forActivation: true)) == .initializing)
        #expect(ContainerLifecycle.next(.creating, on: .started(forActivation: false)) == .stemCell)
        #expect(ContainerLifecycle.next(.stemCell, on: .claimed) == .initializing)
        #expect(ContainerLifecycle.next(.initializing, on: .initialized) == .running)
        #expect(ContainerLifecycle.next(.running, on: .finished) == .warm)
        #expect(ContainerLifecycle.next(.warm, on: .claimed) == .running)
    }

    @Test func everyExitPathEndsInRemoving() {
        for failure in ContainerFailure.allCases {
            #expect(ContainerLifecycle.next(.creating, on: .failed(failure)) == .removing)
            #expect(ContainerLifecycle.next(.initializing, on: .failed(failure)) == .removing)
            #expect(ContainerLifecycle.next(.running, on: .failed(failure)) == .removing)
        }
        #expect(ContainerLifecycle.next(.stemCell, on: .failed(.overlayAttach)) == .removing)
        for state in ContainerState.allCases {
            #expect(ContainerLifecycle.next(state, on: .died) == .removing, "death in \(state)")
            #expect(ContainerLifecycle.next(state, on: .shutdown) == .removing, "shutdown in \(state)")
        }
        for state in [ContainerState.warm, .stemCell] {
            #expect(ContainerLifecycle.next(state, on: .evicted) == .removing)
            #expect(ContainerLifecycle.next(state, on: .expired) == .removing)
        }
    }

    @Test func removingAbsorbsLateEndingsButNeverComesBack() {
        for event in [ContainerEvent.finished, .failed(.run), .evicted, .expired, .died, .shutdown] {
            #expect(ContainerLifecycle.next(.removing, on: event) == .removing, "\(event)")
        }
        for event in [ContainerEvent.claimed, .initialized, .started(forActivation: true), .started(forActivation: false)] {
            #expect(ContainerLifecycle.next(.removing, on: event) == nil, "\(event)")
        }
    }

    @Test func busyContainersAreNeverEvictedOrExpiredAndIdleOnesDoNotFinish() {
        for state in [ContainerState.creating, .initializing, .running] {
            #expect(ContainerLifecycle.next(state, on: .evicted) == nil)
            #expect(ContainerLifecycle.next(state, on: .expired) == nil)
        }
        #expect(ContainerLifecycle.next(.warm, on: .finished) == nil)
        #expect(ContainerLifecycle.next(.stemCell, on: .initialized) == nil)
        #expect(ContainerLifecycle.next(.running, on: .claimed) == nil, "a running container is never handed out twice")
        #expect(ContainerLifecycle.next(.warm, on: .failed(.run)) == nil)
    }
}

@Suite("Container pool decisions")
struct PoolStateTests {
    let epoch = ContinuousClock.now

    func container(_ id: String, memory: Int = 256, action: String? = nil, usedAt seconds: Int = 0) -> ActionContainer {
        ActionContainer(id: id, name: "wsk0_\(id)", address: "10.0.0.1", kind: "python:3", memory: memory, namespace: nil, overlayIP: nil,
                        actionKey: action, lastUsed: epoch + .seconds(seconds))
    }

    /// A pool with containers in given states (through the lifecycle, as the actor does it).
    func pool(budget: Int = 1024, _ containers: [(ActionContainer, ContainerState, String?)]) -> PoolState {
        var state = PoolState(budget: budget)
        for (container, target, stemKey) in containers {
            state.addCreating(container, key: container.id, stemKey: stemKey)
            let path: [ContainerEvent] = switch target {
            case .creating: []
            case .stemCell: [.started(forActivation: false)]
            case .initializing: [.started(forActivation: true)]
            case .running: [.started(forActivation: true), .initialized]
            case .warm: [.started(forActivation: true), .initialized, .finished]
            case .removing: [.shutdown]
            }
            for event in path { state.apply(event, to: container.id) }
        }
        return state
    }

    @Test func aWarmContainerOfTheActionComesFirstTheMostRecentlyUsed() {
        let state = pool([(container("old", action: "a", usedAt: 1), .warm, nil), (container("new", action: "a", usedAt: 5), .warm, nil),
                          (container("other", action: "b", usedAt: 9), .warm, nil), (container("busy", action: "a", usedAt: 9), .running, nil),
                          (container("cell"), .stemCell, "python:3")])
        #expect(state.place(actionKey: "a", stemKey: "python:3", memory: 256) == .warm("new"))
    }

    @Test func aStemCellIsTakenOnlyIfItHasTheMemoryTheSmallestThatFits() {
        let state = pool(budget: 8192, [(container("small", memory: 128), .stemCell, "python:3"), (container("big", memory: 1024), .stemCell, "python:3"),
                                        (container("mid", memory: 512), .stemCell, "python:3"), (container("elsewhere", memory: 512), .stemCell, "python:3|ns")])
        #expect(state.place(actionKey: "a", stemKey: "python:3", memory: 256) == .stemCell("mid"))
        #expect(state.place(actionKey: "a", stemKey: "python:3", memory: 2048) == .create(evicting: []),
                "a stem cell too small stays in the pool (it used to leave it while its container kept running)")
    }

    @Test func makingRoomEvictsIdleWarmLeastRecentlyUsedThenStemCellsNeverBusyOnes() {
        let state = pool(budget: 1024, [(container("busy", action: "x"), .running, nil), (container("recent", action: "y", usedAt: 9), .warm, nil),
                                        (container("stale", action: "z", usedAt: 1), .warm, nil), (container("cell"), .stemCell, "python:3")])
        #expect(state.usedMemory == 1024)
        #expect(state.place(actionKey: "a", stemKey: "go", memory: 256) == .create(evicting: ["stale"]))
        #expect(state.victims(for: 512) == ["stale", "recent"])
        #expect(state.victims(for: 768) == ["stale", "recent", "cell"])
        #expect(state.victims(for: 2048) == ["stale", "recent", "cell"], "never the busy one, even if idle ones do not suffice")
        #expect(pool(budget: 1024, [(container("w", action: "y"), .warm, nil)]).victims(for: 256).isEmpty)
    }

    @Test func idleExpiryTakesOnlyWarmContainersIdleSinceBeforeTheCutoff() {
        let state = pool([(container("old", action: "a", usedAt: 1), .warm, nil), (container("new", action: "a", usedAt: 9), .warm, nil),
                          (container("busy", action: "a", usedAt: 1), .running, nil), (container("cell", usedAt: 1), .stemCell, "python:3")])
        #expect(state.expired(before: epoch + .seconds(5)) == ["old"])
    }

    @Test func stemCellPlanCountsCellsBeingCreatedAndDropsUnwantedOnes() {
        let state = pool([(container("a1"), .stemCell, "python:3|a"), (container("a2"), .creating, "python:3|a"),
                          (container("gone"), .stemCell, "python:3|old"), (container("taken", action: "x"), .running, nil)])
        let plan = state.stemCellPlan(wanted: ["python:3|a": 3, "python:3|b": 2])
        #expect(plan.create == ["python:3|a": 1, "python:3|b": 2])
        #expect(plan.drop == ["gone"])
    }

    @Test func claimingAStemCellMakesItTheActionsAndNoLongerAStemCell() {
        var state = pool([(container("cell"), .stemCell, "python:3")])
        #expect(state.apply(.claimed, to: "cell") == .initializing)
        #expect(state.entries["cell"]?.stemKey == nil)
        #expect(state.stemCellPlan(wanted: ["python:3": 1]).create == ["python:3": 1])
        #expect(state.apply(.claimed, to: "cell") == nil, "not allowed twice")
        #expect(state.entries["cell"]?.state == .initializing, "a refused event changes nothing")
        #expect(state.apply(.claimed, to: "unknown") == nil)
    }

    @Test func anActivationWaitsForABusyContainerOfItsActionOnlyWhileThatIsSoonerThanAColdStart() {
        let cold = Duration.seconds(1)
        func waits(_ state: PoolState, _ waiting: Int, _ run: Duration?) -> Bool {
            state.queueing(actionKey: "a", waiting: waiting, runEstimate: run, coldEstimate: cold) != .create
        }
        let none = pool([(container("other", action: "b"), .running, nil), (container("w", action: "a"), .removing, nil)])
        #expect(!waits(none, 0, .milliseconds(2)), "nothing of the action is running or coming: waiting would wait for nothing")
        let one = pool([(container("r", action: "a"), .running, nil)])
        #expect(waits(one, 0, .milliseconds(2)))
        #expect(waits(one, 200, .milliseconds(2)), "402 ms behind 200 short runs")
        #expect(!waits(one, 300, .milliseconds(2)))
        #expect(!waits(one, 0, .seconds(2)), "a long run: a cold start is sooner")
        // Unknown runs count as an eighth of a cold start: about four activations per container.
        #expect(waits(one, 2, nil))
        #expect(!waits(one, 3, nil))
        // Containers being made for the action, or initialising, count as coming.
        let coming = pool([(container("c", action: "a"), .creating, nil), (container("i", action: "a"), .initializing, nil),
                           (container("cell"), .stemCell, "python:3")])
        #expect(coming.coming(actionKey: "a") == 2 && one.coming(actionKey: "a") == 0)
        #expect(waits(coming, 6, nil))
        #expect(!waits(coming, 7, nil))
    }

    @Test func aWaitThatCostsMoreThanAnEighthOfAColdStartAsksForOneSpareWhileNoneIsComing() {
        let cold = Duration.seconds(1)
        let one = pool([(container("r", action: "a"), .running, nil)])
        #expect(one.queueing(actionKey: "a", waiting: 0, runEstimate: .milliseconds(2), coldEstimate: cold) == .wait(spare: false),
                "a queue of 2 ms runs drains by itself")
        #expect(one.queueing(actionKey: "a", waiting: 1, runEstimate: .milliseconds(100), coldEstimate: cold) == .wait(spare: true),
                "200 ms behind 100 ms runs, a wait that recurs")
        #expect(one.queueing(actionKey: "a", waiting: 1, runEstimate: .milliseconds(300), coldEstimate: cold) == .create)
        let coming = pool([(container("r", action: "a"), .running, nil), (container("c", action: "a"), .creating, nil)])
        #expect(coming.queueing(actionKey: "a", waiting: 2, runEstimate: .milliseconds(200), coldEstimate: cold) == .wait(spare: false),
                "one of the action's containers is on its way already")
    }

    @Test func containerIDsLeaveOutContainersStillBeingCreatedAndRekeyMovesThem() {
        var state = pool([(container("placeholder"), .creating, nil), (container("w", action: "a"), .warm, nil)])
        #expect(state.containerIDs == ["w"])
        state.rekey("placeholder", to: container("docker-id"))
        state.apply(.started(forActivation: true), to: "docker-id")
        #expect(state.containerIDs == ["w", "docker-id"])
        state.apply(.died, to: "w")
        #expect(state.containerIDs == ["w", "docker-id"], "a removing container is still the pool's until Docker removed it")
        state.removed("w")
        #expect(state.containerIDs == ["docker-id"])
    }
}
