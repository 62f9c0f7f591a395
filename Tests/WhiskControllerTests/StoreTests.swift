import Foundation
import Synchronization
import Testing
@testable import WhiskController
import WhiskMessages

@Suite("SQLite entity store")
struct StoreTests {
    func action(_ name: String, namespace: String = "guest") -> ActionDocument {
        ActionDocument(namespace: namespace, name: name, version: SemVer(), publish: false, exec: ActionExec(kind: "python:3", code: "def main(a): return a"),
                       parameters: [], annotations: [], limits: ActionLimits(), updated: 0, rev: "")
    }

    func activation(_ name: String, start: Int64, namespace: String = "guest") -> WhiskActivation {
        WhiskActivation(namespace: EntityPath(namespace)!, name: EntityName(name)!, subject: Subject(namespace: namespace), activationId: .generate(),
                        start: start, end: start + 5, response: .success(["n": .int(start)]))
    }

    @Test func namespacesAndCredentials() async throws {
        let store = try SQLiteEntityStore(path: nil)
        let created = try await store.createNamespace("team", identity: nil)
        #expect(created.key.count == 64)
        #expect(try await store.identity(uuid: created.uuid, key: created.key)?.name == "team")
        #expect(try await store.identity(uuid: created.uuid, key: "wrong") == nil)
        // Served from memory once read: the key is still checked, and of the right length only.
        #expect(try await store.identity(uuid: created.uuid, key: String(created.key.dropLast()) + "!") == nil)
        #expect(try await store.identity(uuid: created.uuid, key: created.key + "x") == nil)
        #expect(try await store.identity(uuid: created.uuid, key: created.key)?.uuid == created.uuid)
        #expect(try await store.identity(uuid: "unknown", key: created.key) == nil)
        await #expect(throws: StoreError.self) { try await store.createNamespace("team", identity: nil) }
        await #expect(throws: StoreError.self) { try await store.createNamespace("bad name!", identity: nil) }
    }

    /// Reads of an action are served from memory once read; an update or a delete is seen by the
    /// next read, also when reads and writes interleave.
    @Test func aCachedActionNeverOutlivesItsUpdateOrDelete() async throws {
        let store = try SQLiteEntityStore(path: nil)
        var stored = try await store.putAction(action("a"), overwrite: false)
        #expect(try await store.action(namespace: "guest", name: "a")?.rev == stored.rev)
        for round in 0..<20 {
            var changed = action("a")
            changed.exec.code = "def main(a): return {'round': \(round)}"
            // Reads race the update; the read after it returns must see it.
            async let racing = (0..<10).asyncMap { _ in try await store.action(namespace: "guest", name: "a")?.rev }
            stored = try await store.putAction(changed, overwrite: true)
            _ = try await racing
            let read = try await store.action(namespace: "guest", name: "a")
            #expect(read?.rev == stored.rev && read?.exec.code == changed.exec.code, "round \(round)")
        }
        _ = try await store.deleteAction(namespace: "guest", name: "a")
        #expect(try await store.action(namespace: "guest", name: "a") == nil)
        // Another namespace's action of the same name is another entry.
        _ = try await store.putAction(action("a", namespace: "other"), overwrite: false)
        #expect(try await store.action(namespace: "guest", name: "a") == nil)
        #expect(try await store.action(namespace: "other", name: "a") != nil)
    }

    @Test func putWithoutOverwriteConflictsAndUpdatesBumpVersionAndRevision() async throws {
        let store = try SQLiteEntityStore(path: nil)
        let first = try await store.putAction(action("a"), overwrite: false)
        #expect(first.rev.hasPrefix("1-"))
        await #expect(throws: StoreError(.conflict, "resource already exists")) { try await store.putAction(action("a"), overwrite: false) }
        let second = try await store.putAction(action("a"), overwrite: true)
        #expect(second.rev.hasPrefix("2-"))
        #expect(second.version == SemVer(major: 0, minor: 0, patch: 2))
        #expect(try await store.action(namespace: "guest", name: "a")?.rev == second.rev)
        #expect(try await store.action(namespace: "other", name: "a") == nil)
    }

    @Test func listingIsPagedAndPerNamespace() async throws {
        let store = try SQLiteEntityStore(path: nil)
        for name in ["c", "a", "b"] { _ = try await store.putAction(action(name), overwrite: false) }
        _ = try await store.putAction(action("z", namespace: "other"), overwrite: false)
        #expect(try await store.actions(namespace: "guest", limit: 2, skip: 0).map(\.name) == ["a", "b"])
        #expect(try await store.actions(namespace: "guest", limit: 2, skip: 2).map(\.name) == ["c"])
        #expect(try await store.deleteAction(namespace: "guest", name: "b")?.name == "b")
        #expect(try await store.deleteAction(namespace: "guest", name: "b") == nil)
    }

    @Test func activationQueries() async throws {
        let store = try SQLiteEntityStore(path: nil)
        for start in [100, 200, 300] as [Int64] { try await store.storeActivation(activation("x", start: start)) }
        try await store.storeActivation(activation("y", start: 250))
        try await store.storeActivation(activation("x", start: 400, namespace: "other"))
        let all = try await store.activations(ActivationQuery(namespace: "guest"))
        #expect(all.map(\.start) == [300, 250, 200, 100], "newest first")
        #expect(try await store.activations(ActivationQuery(namespace: "guest", name: "x")).count == 3)
        #expect(try await store.activations(ActivationQuery(namespace: "guest", since: 200, upto: 260)).map(\.start) == [250, 200])
        #expect(try await store.activations(ActivationQuery(namespace: "guest", limit: 1, skip: 1)).map(\.start) == [250])
        let one = all[0]
        #expect(try await store.activation(namespace: "guest", id: one.activationId) == one)
        #expect(try await store.activation(namespace: "other", id: one.activationId) == nil, "another namespace's activation is invisible")
    }

    @Test func theFirstRecordOfAnActivationIsKept() async throws {
        let store = try SQLiteEntityStore(path: nil)
        let first = activation("x", start: 100)
        var second = activation("x", start: 900)
        second.activationId = first.activationId  // the same activation, run again after a crash
        try await store.storeActivation(first)
        try await store.storeActivation(second)
        #expect(try await store.activation(namespace: "guest", id: first.activationId) == first)
    }

    /// The controller answers a blocking caller once the record's write is queued, before it is
    /// written: `whenOrdered` runs while the database's queue is still held by earlier work (so
    /// not after the write), and a read started then (the caller asking for the record next)
    /// finds the record.
    @Test func aReadStartedOnceTheWriteIsOrderedSeesTheRecord() async throws {
        let store = try SQLiteEntityStore(path: nil)
        for round in 0..<20 {
            let records = (0..<8).map { (activation: activation("x", start: Int64(round * 10 + $0)), provisional: false) }
            // Earlier work holds the queue until the gate opens.
            let gate = DispatchSemaphore(value: 0)
            store.database.asyncWriteWithoutTransaction { _ in gate.wait() }
            let reads = Mutex<[Task<WhiskActivation?, Error>]?>(nil)
            async let stored: Void = store.storeActivations(records) {
                reads.withLock { reads in
                    reads = records.map { record in Task { try await store.activation(namespace: "guest", id: record.activation.activationId) } }
                }
            }
            let deadline = ContinuousClock.now + .seconds(10)
            while reads.withLock({ $0 == nil }), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(1)) }
            let started = reads.withLock { $0 } ?? []
            #expect(started.count == records.count, "whenOrdered ran while the write could not (round \(round))")
            gate.signal()
            try await stored
            for (task, record) in zip(started, records) {
                #expect(try await task.value == record.activation, "round \(round)")
            }
        }
    }

    func pending(_ id: ActivationId, deadline: Int64, controller: String = "0") -> PendingActivation {
        PendingActivation(activationId: id, kind: .action, namespace: "guest", action: "guest/x", version: SemVer(), invoker: 1,
                          controller: controller, accepted: deadline - 1000, deadline: deadline)
    }

    @Test func aProvisionalRecordYieldsToARealOneButNotTheOtherWayRound() async throws {
        let store = try SQLiteEntityStore(path: nil)
        let real = activation("x", start: 100)
        var givenUp = activation("x", start: 50)
        givenUp.activationId = real.activationId
        givenUp.response = .error(.whiskError, "gave up")
        try await store.storeActivation(givenUp, provisional: true)
        try await store.storeActivation(real)
        #expect(try await store.activation(namespace: "guest", id: real.activationId) == real, "the late real record replaces the give-up")
        try await store.storeActivation(givenUp, provisional: true)
        #expect(try await store.activation(namespace: "guest", id: real.activationId) == real, "a give-up never replaces a real record")
    }

    @Test func pendingActivationsAreDueByDeadlinePerControllerAndGoWithTheirRecord() async throws {
        let store = try SQLiteEntityStore(path: nil)
        let (early, late, other) = (ActivationId.generate(), ActivationId.generate(), ActivationId.generate())
        try await store.addPending(pending(late, deadline: 2000))
        try await store.addPending(pending(early, deadline: 1000))
        try await store.addPending(pending(other, deadline: 500, controller: "1"))
        #expect(try await store.pendingActivations(controller: "0", dueBy: 999).isEmpty)
        #expect(try await store.pendingActivations(controller: "0", dueBy: 5000).map(\.activationId) == [early, late])
        var record = activation("x", start: 100)
        record.activationId = early
        try await store.storeActivation(record)
        #expect(try await store.pendingActivations(controller: "0", dueBy: 5000) == [pending(late, deadline: 2000)])
    }

    @Test func aPendingActivationWhoseRecordIsAlreadyStoredIsNotAddedAndOneNotAcceptedIsForgotten() async throws {
        let store = try SQLiteEntityStore(path: nil)
        let record = activation("x", start: 100)
        try await store.storeActivation(record)
        try await store.addPending(pending(record.activationId, deadline: 1000))
        #expect(try await store.pendingActivations(controller: "0", dueBy: .max).isEmpty, "the record came first: nothing is pending")
        let refused = ActivationId.generate()
        try await store.addPending(pending(refused, deadline: 1000))
        try await store.forgetPending(refused)
        #expect(try await store.pendingActivations(controller: "0", dueBy: .max).isEmpty)
    }

    @Test func pendingActivationsSurviveReopeningTheFile() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("whiskmesh-store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("controller.db").path
        let id = ActivationId.generate()
        do {
            let store = try SQLiteEntityStore(path: path)
            try await store.addPending(pending(id, deadline: 1000))
        }
        let reopened = try SQLiteEntityStore(path: path)
        #expect(try await reopened.pendingActivations(controller: "0", dueBy: 1000).map(\.activationId) == [id])
    }
}

@Suite("Pending activations: when the controller gives up")
struct PendingVerdictTests {
    let action = PendingActivation(activationId: .generate(), kind: .action, namespace: "guest", action: "guest/x", version: SemVer(),
                                   invoker: 2, controller: "0", accepted: 1_000, deadline: 10_000)

    @Test func anActionWaitsUntilItsDeadlineWhateverItsInvoker() {
        for state in [nil, InvokerState.offline, .healthy, .unhealthy] {
            #expect(PendingVerdict.decide(action, now: 9_999, invoker: state, controllerStarted: 0, abandonAfter: 300_000) == .wait)
        }
    }

    @Test func pastItsDeadlineAnOfflineOrUnknownInvokerMeansGivingUp() {
        for state in [nil, InvokerState.offline] {
            guard case .giveUp(let message) = PendingVerdict.decide(action, now: 10_000, invoker: state, controllerStarted: 0, abandonAfter: 300_000) else {
                Issue.record("expected a give-up for \(String(describing: state))")
                continue
            }
            #expect(message.contains("invoker2 went offline"))
        }
    }

    @Test func aLiveInvokerGetsTheAbandonPeriodOnTop() {
        #expect(PendingVerdict.decide(action, now: 309_999, invoker: .healthy, controllerStarted: 0, abandonAfter: 300_000) == .wait)
        #expect(PendingVerdict.decide(action, now: 309_999, invoker: .unhealthy, controllerStarted: 0, abandonAfter: 300_000) == .wait)
        guard case .giveUp(let message) = PendingVerdict.decide(action, now: 310_000, invoker: .healthy, controllerStarted: 0, abandonAfter: 300_000) else {
            Issue.record("expected a give-up")
            return
        }
        #expect(message.contains("within 300 s"))
    }

    @Test func aSequenceNobodyRunsWasCutShortByARestart() {
        var sequence = action
        sequence.kind = .sequence
        sequence.invoker = nil
        sequence.deadline = .max
        // Accepted at 1,000: by this controller if it started at 1,000, by an earlier one if at 1,001.
        #expect(PendingVerdict.decide(sequence, now: 5_000, invoker: nil, controllerStarted: 1_000, abandonAfter: 0) == .wait)
        #expect(PendingVerdict.decide(sequence, now: 5_000, invoker: nil, controllerStarted: 1_001, abandonAfter: 0)
                == .giveUp("The controller restarted while this sequence was running; its remaining components did not run."))
    }

    @Test func theGiveUpRecordIsAWhiskErrorInTheCallersNamespace() throws {
        var component = action
        component.cause = .generate()
        let record = try #require(PendingVerdict.record(for: component, message: "why", now: 12_000))
        #expect(record.activationId == component.activationId)
        #expect(record.namespace.rawValue == "guest" && record.name.rawValue == "x")
        #expect(record.response == .error(.whiskError, "why"))
        #expect(record.start == 1_000 && record.end == 12_000 && record.cause == component.cause)
    }
}

extension Range where Bound == Int {
    /// Runs `body` for every element concurrently; the results in order.
    func asyncMap<T: Sendable>(_ body: @escaping @Sendable (Int) async throws -> T) async throws -> [T] {
        try await withThrowingTaskGroup(of: (Int, T).self) { group in
            for index in self { group.addTask { (index, try await body(index)) } }
            var results: [(Int, T)] = []
            for try await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }
}
