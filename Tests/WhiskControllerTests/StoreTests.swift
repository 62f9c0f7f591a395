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
        WhiskActivation(namespace: EntityPath(namespace)!, name: EntityName(name)!, subject: namespace, activationId: .generate(),
                        start: start, end: start + 5, response: .success(["n": .int(start)]))
    }

    @Test func namespacesAndCredentials() async throws {
        let store = try SQLiteEntityStore(path: nil)
        let created = try await store.createNamespace("team", identity: nil)
        #expect(created.key.count == 64)
        #expect(try await store.identity(uuid: created.uuid, key: created.key)?.name == "team")
        #expect(try await store.identity(uuid: created.uuid, key: "wrong") == nil)
        await #expect(throws: StoreError.self) { try await store.createNamespace("team", identity: nil) }
        await #expect(throws: StoreError.self) { try await store.createNamespace("bad name!", identity: nil) }
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
}
