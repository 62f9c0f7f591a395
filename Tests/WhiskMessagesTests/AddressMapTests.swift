import Foundation
import Testing
@testable import WhiskMessages

func entry(_ id: String, namespace: String = "guest", ip: String = "10.128.0.2", invoker: Int = 0, activation: ActivationId = .generate()) -> AddressEntry {
    AddressEntry(namespace: namespace, instanceID: InstanceID(id)!, ip: ip, invoker: invoker, activationId: activation, since: 1)
}

@Suite("Instance IDs")
struct InstanceIDTests {
    @Test func validAndInvalid() {
        #expect(InstanceID("worker-1.a_b") != nil)
        #expect(InstanceID(String(repeating: "x", count: 128)) != nil)
        #expect(InstanceID(String(repeating: "x", count: 129)) == nil)
        #expect(InstanceID("") == nil)
        #expect(InstanceID("a b") == nil)
        #expect(InstanceID("a/b") == nil)
        #expect(InstanceID("ü") == nil)
    }

    @Test func numbersAreNeverMangled() {
        #expect(InstanceID(parameter: 7)?.rawValue == "7")
        #expect(InstanceID(parameter: .double(12)) == InstanceID("12"))
        #expect(InstanceID(parameter: "007")?.rawValue == "007")
        #expect(InstanceID(parameter: .double(1.5)) == nil)
        #expect(InstanceID(parameter: true) == nil)
        #expect(InstanceID(parameter: ["a": 1]) == nil)
    }
}

@Suite("Invoker's local address map")
struct LocalAddressMapTests {
    @Test func firstUpdateIsASnapshotThenDeltas() {
        var map = LocalAddressMap(incarnation: "inc")
        let a = entry("a")
        map.add(a)
        let first = map.nextUpdate()
        #expect(first?.snapshot == true && first?.seq == 1 && first?.added == [a])
        #expect(map.nextUpdate() == nil)
        let b = entry("b")
        map.add(b)
        let result1 = map.remove(a.key, activationId: a.activationId)
        #expect(result1)
        let second = map.nextUpdate()
        #expect(second == AddressMapUpdate(incarnation: "inc", seq: 2, snapshot: false, added: [b], removed: [a.key]))
    }

    @Test func removeAndReAddInOneWindowIsNotLost() {
        var map = LocalAddressMap(incarnation: "inc")
        let first = entry("a")
        map.add(first)
        _ = map.nextUpdate()
        map.remove(first.key, activationId: first.activationId)
        let second = entry("a", ip: "10.128.0.9")
        map.add(second)
        let update = map.nextUpdate()
        #expect(update?.added == [second])
        #expect(update?.removed == [])
    }

    @Test func addAndRemoveInOneWindowPublishesNothing() {
        var map = LocalAddressMap(incarnation: "inc")
        _ = map.nextUpdate()
        let short = entry("short")
        map.add(short)
        map.remove(short.key, activationId: short.activationId)
        #expect(map.nextUpdate() == nil)
    }

    @Test func onlyTheOwningActivationRemoves() {
        var map = LocalAddressMap(incarnation: "inc")
        let a = entry("a")
        map.add(a)
        let result2 = map.remove(a.key, activationId: .generate())
        #expect(!result2)
        #expect(map.entries.count == 1)
    }

    @Test func snapshotOnRequest() {
        var map = LocalAddressMap(incarnation: "inc")
        map.add(entry("a"))
        _ = map.nextUpdate()
        map.requestSnapshot()
        let update = map.nextUpdate()
        #expect(update?.snapshot == true && update?.seq == 2 && update?.added.count == 1)
    }

    @Test func containerDeathRemovesItsActivations() {
        var map = LocalAddressMap(incarnation: "inc")
        let a = entry("a"), b = entry("b")
        map.add(a)
        map.add(b)
        let result3 = map.remove(activations: [a.activationId])
        #expect(result3.map(\.instanceID) == [a.instanceID])
        #expect(Array(map.entries.keys) == [b.key])
    }
}

@Suite("Controller's global address map")
struct GlobalAddressMapTests {
    func update(_ seq: UInt64, incarnation: String = "i0", snapshot: Bool = false, added: [AddressEntry] = [], removed: [InstanceKey] = []) -> AddressMapUpdate {
        AddressMapUpdate(incarnation: incarnation, seq: seq, snapshot: snapshot, added: added, removed: removed)
    }

    @Test func deltasApplyInOrderAndVersionsGrow() {
        var map = GlobalAddressMap()
        let a = entry("a"), b = entry("b")
        let result4 = map.apply(update(1, snapshot: true, added: [a]), from: 0)
        #expect(result4.changes.first?.version == 1)
        let result5 = map.apply(update(2, added: [b]), from: 0)
        #expect(result5.changes.first?.version == 2)
        #expect(map.entries(namespace: "guest").map(\.instanceID.rawValue) == ["a", "b"])
        let result6 = map.apply(update(3, removed: [a.key]), from: 0)
        #expect(result6.changes == [.init(namespace: "guest", version: 3, added: [], removed: [a.instanceID])])
        #expect(map.version(namespace: "guest") == 3)
    }

    @Test func duplicateOrOldUpdateIsIgnored() {
        var map = GlobalAddressMap()
        let a = entry("a")
        _ = map.apply(update(1, snapshot: true, added: [a]), from: 0)
        _ = map.apply(update(2, removed: [a.key]), from: 0)
        let replay = map.apply(update(2, removed: [a.key]), from: 0)
        #expect(replay == .init())
        let old = map.apply(update(1, snapshot: false, added: [a]), from: 0)
        #expect(old == .init())
        #expect(map.entries(namespace: "guest").isEmpty)
    }

    @Test func gapOrUnknownIncarnationAsksForSnapshot() {
        var map = GlobalAddressMap()
        let result7 = map.apply(update(5, added: [entry("a")]), from: 0)
        #expect(result7.needsSnapshot, "unknown invoker")
        _ = map.apply(update(1, snapshot: true), from: 0)
        let result8 = map.apply(update(3, added: [entry("b")]), from: 0)
        #expect(result8.needsSnapshot, "gap")
        #expect(map.entries(namespace: "guest").isEmpty, "a delta after a gap is not applied")
        let result9 = map.apply(update(2, incarnation: "restarted", added: [entry("c")]), from: 0)
        #expect(result9.needsSnapshot, "new incarnation")
    }

    @Test func snapshotReplacesTheInvokersEntries() {
        var map = GlobalAddressMap()
        let a = entry("a"), b = entry("b")
        _ = map.apply(update(1, snapshot: true, added: [a, b]), from: 0)
        let outcome = map.apply(update(1, incarnation: "restarted", snapshot: true, added: [b]), from: 0)
        #expect(outcome.changes.first?.removed == [a.instanceID])
        #expect(outcome.changes.first?.added == [], "b did not change")
        #expect(map.entries(namespace: "guest") == [b])
    }

    @Test func droppingAnInvokerRemovesOnlyItsEntries() {
        var map = GlobalAddressMap()
        let a = entry("a", invoker: 0), b = entry("b", invoker: 1)
        _ = map.apply(update(1, snapshot: true, added: [a]), from: 0)
        _ = map.apply(update(1, incarnation: "i1", snapshot: true, added: [b]), from: 1)
        let changes = map.drop(invoker: 0)
        #expect(changes.map(\.removed) == [[a.instanceID]])
        #expect(map.entries(namespace: "guest") == [b])
        #expect(map.knownInvokers == [1])
    }

    @Test func namespacesAreSeparate() {
        var map = GlobalAddressMap()
        let a = entry("x", namespace: "alpha"), b = entry("x", namespace: "beta")
        let changes = map.apply(update(1, snapshot: true, added: [a, b]), from: 0).changes
        #expect(changes.map(\.namespace) == ["alpha", "beta"])
        #expect(map.entries(namespace: "alpha") == [a])
        #expect(map.entries(namespace: "beta") == [b])
    }
}

/// `#expect` cannot call a mutating method; this applies outside the macro.
private func apply(_ replica: inout NamespaceMapReplica, _ publication: AddressMapPublication) -> Bool {
    replica.apply(publication)
}

@Suite("Invoker's namespace replica")
struct NamespaceMapReplicaTests {
    @Test func deltasInOrderSnapshotsRepairGaps() {
        var replica = NamespaceMapReplica()
        let a = entry("a"), b = entry("b")
        let result10 = replica.apply(.delta(namespace: "guest", version: 1, added: [a], removed: []))
        #expect(result10)
        let result11 = replica.apply(.delta(namespace: "guest", version: 1, added: [a], removed: []))
        #expect(!result11, "duplicate")
        let result12 = replica.apply(.delta(namespace: "guest", version: 3, added: [b], removed: []))
        #expect(!result12, "gap")
        #expect(replica.stale)
        let result13 = replica.apply(.snapshot(namespace: "guest", version: 3, entries: [a, b]))
        #expect(result13)
        #expect(!replica.stale && replica.version == 3 && replica.entries.count == 2)
        let result14 = replica.apply(.snapshot(namespace: "guest", version: 2, entries: []))
        #expect(!result14, "an older snapshot is ignored")
        let result15 = replica.apply(.delta(namespace: "guest", version: 4, added: [], removed: [a.instanceID]))
        #expect(result15)
        #expect(Array(replica.entries.keys) == [b.instanceID])
    }

    @Test func earlyDeltasWaitForTheSnapshotThenApply() {
        var replica = NamespaceMapReplica()
        let a = entry("a"), b = entry("b"), c = entry("c")
        // Deltas 6 and 7 overtake snapshot 5 (published concurrently, or a retry reordered them).
        #expect(!apply(&replica, .delta(namespace: "guest", version: 7, added: [c], removed: [])))
        #expect(!apply(&replica, .delta(namespace: "guest", version: 6, added: [b], removed: [a.instanceID])))
        #expect(replica.stale && replica.entries.isEmpty)
        #expect(apply(&replica, .snapshot(namespace: "guest", version: 5, entries: [a])))
        #expect(replica.version == 7 && !replica.stale)
        #expect(Set(replica.entries.keys) == [b.instanceID, c.instanceID])
    }

    @Test func largeSnapshotsTravelInPartsAndApplyWhenComplete() throws {
        let entries = (0..<5).map { entry("i\($0)") }
        let parts = AddressMapPublication.snapshot(namespace: "guest", version: 9, entries: entries, partSize: 2)
        #expect(parts.count == 3)
        #expect(AddressMapPublication.snapshot(namespace: "guest", version: 9, entries: entries, partSize: 5).count == 1)
        var replica = NamespaceMapReplica()
        // Out of order, with a duplicate and a stale part of an older snapshot in between.
        #expect(!apply(&replica, parts[2]))
        #expect(!apply(&replica, .snapshotPart(namespace: "guest", version: 8, part: 0, parts: 2, entries: [entry("old")])))
        #expect(!apply(&replica, parts[0]))
        #expect(!apply(&replica, parts[0]))
        #expect(replica.entries.isEmpty, "nothing applies before every part is there")
        #expect(apply(&replica, parts[1]))
        #expect(replica.version == 9 && replica.entries.count == 5)
        for part in parts {
            #expect(try WhiskMessageCoding.decode(AddressMapPublication.self, from: try WhiskMessageCoding.encode(part)) == part)
        }
        #expect(throws: WhiskMessageError.self) {
            try WhiskMessageCoding.decode(AddressMapPublication.self,
                                          from: Data(#"{"type":"snapshotPart","namespace":"guest","version":1,"part":3,"parts":2,"entries":[]}"#.utf8))
        }
    }

    @Test func publicationsAndMapFileCoding() throws {
        let a = entry("a")
        for publication in [AddressMapPublication.delta(namespace: "guest", version: 2, added: [a], removed: [InstanceID("b")!]),
                            .snapshot(namespace: "guest", version: 3, entries: [a]), .snapshotRequest(invoker: 1),
                            .namespaceActive(namespace: "guest")] {
            let decoded = try WhiskMessageCoding.decode(AddressMapPublication.self, from: try WhiskMessageCoding.encode(publication))
            #expect(decoded == publication)
        }
        #expect(throws: WhiskMessageError.self) {
            try WhiskMessageCoding.decode(AddressMapPublication.self, from: Data(#"{"type":"bogus"}"#.utf8))
        }
        for bad in [#"{"type":"namespaceActive"}"#, #"{"type":"namespaceActive","namespace":""}"#,
                    #"{"type":"namespaceActive","namespace":"../etc"}"#, #"{"type":"namespaceActive","namespace":7}"#] {
            #expect(throws: WhiskMessageError.self, "\(bad)") { try WhiskMessageCoding.decode(AddressMapPublication.self, from: Data(bad.utf8)) }
        }
        let file = AddressMapFile(namespace: "guest", version: 3, entries: [entry("b"), a])
        #expect(file.schema == "whiskmesh.addressmap/v1")
        #expect(file.instances.map(\.id) == ["a", "b"])
    }
}
