import Foundation
import Testing
import Synchronization
@testable import WhiskInvoker
import WhiskMessages

@Suite("Address map file writer")
struct AddressMapFileWriterTests {
    func temporaryRoot() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("whiskmesh-maps-\(UUID().uuidString)").path
    }

    @Test func readerNeverSeesAPartialFileDuring1000RapidUpdates() async throws {
        let root = temporaryRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let writer = AddressMapFileWriter(root: root)
        try writer.prepare(namespace: "guest")
        let path = "\(writer.folder(namespace: "guest"))/map.json"
        // Large enough that a non-atomic write would be seen half-done.
        let entries = (0..<300).map {
            AddressEntry(namespace: "guest", instanceID: InstanceID("instance-\($0)")!, ip: "10.128.1.\($0 % 250)", invoker: 0, activationId: .generate(), since: 1)
        }
        let reader = Task.detached { () -> (reads: Int, bad: Int, lastVersion: UInt64) in
            var reads = 0, bad = 0
            var last: UInt64 = 0
            while !Task.isCancelled {
                guard let data = FileManager.default.contents(atPath: path) else { bad += 1; continue }
                reads += 1
                if let file = try? JSONDecoder().decode(AddressMapFile.self, from: data), file.schema == AddressMapFile.schemaV1 {
                    if file.version < last { bad += 1 }
                    last = file.version
                } else {
                    bad += 1
                }
            }
            return (reads, bad, last)
        }
        for version in 1...1000 {
            try writer.write(AddressMapFile(namespace: "guest", version: UInt64(version), entries: entries.prefix(version % 300)))
        }
        reader.cancel()
        let result = await reader.value
        #expect(result.bad == 0)
        #expect(result.reads > 0)
        let final = try JSONDecoder().decode(AddressMapFile.self, from: try Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(final.version == 1000)
        #expect(try FileManager.default.contentsOfDirectory(atPath: writer.folder(namespace: "guest")) == ["map.json"], "no temporary files left")
    }

    @Test func aFolderRemovedUnderTheWriterIsMadeAgainAndTheFileIsReadableByAll() throws {
        let root = temporaryRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let writer = AddressMapFileWriter(root: root)
        let entry = AddressEntry(namespace: "guest", instanceID: InstanceID("a")!, ip: "10.128.1.2", invoker: 0, activationId: .generate(), since: 1)
        try writer.write(AddressMapFile(namespace: "guest", version: 1, entries: [entry]))
        try FileManager.default.removeItem(atPath: writer.folder(namespace: "guest"))
        try writer.write(AddressMapFile(namespace: "guest", version: 2, entries: [entry]))
        let path = "\(writer.folder(namespace: "guest"))/map.json"
        let file = try JSONDecoder().decode(AddressMapFile.self, from: try Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(file.version == 2)
        #expect(file.instances.map(\.id) == ["a"])
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        #expect(mode == 0o644, "containers run as any user and must read the map")
        #expect(try FileManager.default.contentsOfDirectory(atPath: writer.folder(namespace: "guest")) == ["map.json"])
    }

    /// The multi-host deployment bind-mounts the root into the invoker's container: its removal
    /// at start (a killed run's maps) and at shutdown must empty it although the root stays.
    @Test func removeAllEmptiesARootThatIsAMountPoint() throws {
        let source = temporaryRoot(), root = temporaryRoot()
        defer {
            umount(root)
            try? FileManager.default.removeItem(atPath: root)
            try? FileManager.default.removeItem(atPath: source)
        }
        for path in [source, root] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        try #require(mount(source, root, nil, UInt(MS_BIND), nil) == 0, "bind mount: \(String(cString: strerror(errno)))")
        let writer = AddressMapFileWriter(root: root)
        try writer.prepare(namespace: "guest")
        try writer.prepare(namespace: "other")
        #expect(try FileManager.default.contentsOfDirectory(atPath: root).count == 2)
        writer.removeAll()
        #expect(try FileManager.default.contentsOfDirectory(atPath: root) == [], "the stale maps are gone")
        try writer.prepare(namespace: "guest")
        #expect(FileManager.default.fileExists(atPath: "\(writer.folder(namespace: "guest"))/map.json"), "and it can be written again")
    }

    @Test func aWriteThatCannotBeMadeSaysWhyAndLeavesNothing() throws {
        let root = temporaryRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        // The root is a regular file: no folder can be made in it.
        let blocked = "\(root)/file"
        #expect(FileManager.default.createFile(atPath: blocked, contents: Data("x".utf8)))
        let writer = AddressMapFileWriter(root: blocked)
        #expect {
            try writer.write(AddressMapFile(namespace: "guest", version: 1, entries: []))
        } throws: { error in
            "\(error)".contains("Not a directory") || "\(error)".contains("not a directory")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: root) == ["file"])
    }

    @Test func namespacesGetSeparateFolders() throws {
        let root = temporaryRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let writer = AddressMapFileWriter(root: root)
        #expect(writer.folder(namespace: "a b") != writer.folder(namespace: "a_b"), "sanitised names still differ by hash")
        try writer.prepare(namespace: "team/../x")
        let folder = writer.folder(namespace: "team/../x")
        #expect((folder as NSString).deletingLastPathComponent == root, "a namespace's folder is always a direct child of the root")
        #expect(FileManager.default.fileExists(atPath: "\(folder)/map.json"))
        writer.removeAll()
        #expect(!FileManager.default.fileExists(atPath: root))
    }
}

@Suite("Overlay naming and subnets")
struct OverlayNetworksTests {
    @Test func namesAreStableValidAndDistinct() {
        let name = OverlayNetworks.networkName(namespace: "Guest Team@x")
        #expect(name == OverlayNetworks.networkName(namespace: "Guest Team@x"))
        #expect(name.allSatisfy { $0.isLetter || $0.isNumber || "_.-".contains($0) })
        #expect(name != OverlayNetworks.networkName(namespace: "guest_team_x"))
    }

    @Test func subnetsComeFromThePoolAndStepOverTakenOnes() throws {
        let first = try #require(OverlayNetworks.subnet(namespace: "guest", pool: "10.128.0.0/9", prefixLength: 20, taken: []))
        #expect(first.hasSuffix("/20"))
        let octets = first.split(separator: "/")[0].split(separator: ".").compactMap { Int($0) }
        #expect(octets[0] == 10 && octets[1] >= 128)
        let second = try #require(OverlayNetworks.subnet(namespace: "guest", pool: "10.128.0.0/9", prefixLength: 20, taken: [first]))
        #expect(second != first)
        #expect(OverlayNetworks.subnet(namespace: "x", pool: "10.0.0.0/24", prefixLength: 24, taken: ["10.0.0.0/24"]) == nil, "pool exhausted")
        #expect(OverlayNetworks.subnet(namespace: "x", pool: "garbage", prefixLength: 20, taken: []) == nil)
    }
}

@Suite("Heartbeat trigger")
struct HeartbeatTriggerTests {
    /// A kick must end the wait: were it ignored, the hour-long wait would hit the time limit.
    @Test(.timeLimit(.minutes(1))) func kickWakesTheWaiter() async {
        let trigger = HeartbeatTrigger()
        trigger.kick()
        await trigger.wait(upTo: .seconds(3600))
        async let waiting: Void = trigger.wait(upTo: .seconds(3600))
        try? await Task.sleep(for: .milliseconds(10))
        trigger.kick()
        await waiting
    }

    @Test func withoutAKickTheWaitLastsItsInterval() async {
        let trigger = HeartbeatTrigger()
        let idle = await ContinuousClock().measure { await trigger.wait(upTo: .milliseconds(20)) }
        #expect(idle >= .milliseconds(20))
    }
}

@Suite("Log limit")
struct LogLimitTests {
    @Test func linesBeyondTheLimitAreCutWithANotice() {
        let lines = ["aaaa", "bbbb", "cccc"]
        #expect(ActivationRunner.limit(lines, toBytes: 100) == lines)
        let cut = ActivationRunner.limit(lines, toBytes: 9)
        #expect(cut.prefix(2) == ["aaaa", "bbbb"])
        #expect(cut.count == 3 && cut[2].contains("truncated") && cut[2].contains("9 bytes"))
    }
}

@Suite("Address map files off the cooperative pool")
struct AddressMapFilesTests {
    func entry(_ namespace: String, _ n: Int) -> AddressEntry {
        AddressEntry(namespace: namespace, instanceID: InstanceID("instance-\(n)")!, ip: "10.128.1.\(n % 250)", invoker: 0, activationId: .generate(), since: Int64(n))
    }

    func temporaryRoot() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("whiskmesh-maps-\(UUID().uuidString)").path
    }

    func read(_ files: AddressMapFiles, _ namespace: String) throws -> AddressMapFile {
        try JSONDecoder().decode(AddressMapFile.self, from: Data(contentsOf: URL(fileURLWithPath: files.writer.folder(namespace: namespace) + "/map.json")))
    }

    /// Changes made while a namespace's write waits make one write, of the content as it is when
    /// the write begins, and every entry they brought is reported written once; namespaces are
    /// written apart (the writer before this class wrote each change: 200 each, checked).
    @Test func changesThatWaitMakeOneWriteOfTheNewestAndLoseNoArrival() async throws {
        let root = temporaryRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let writes = Mutex([String: Int]())
        let reported = Mutex([Int64]())
        let files = AddressMapFiles(writer: AddressMapFileWriter(root: root), written: { arrived in
            reported.withLock { $0 += arrived.map(\.since) }
            if let namespace = arrived.first?.namespace { writes.withLock { $0[namespace, default: 0] += 1 } }
        }, failed: { _, error in Issue.record("write failed: \(error)") })
        let latest = Mutex([String: Int]())
        files.suspend()
        for version in 1...200 {
            for namespace in ["guest", "other"] {
                latest.withLock { $0[namespace] = version }
                files.changed(namespace: namespace, arrived: [entry(namespace, version)]) {
                    let version = latest.withLock { $0[namespace]! }
                    return AddressMapFile(namespace: namespace, version: UInt64(version), entries: [self.entry(namespace, version)])
                }
            }
        }
        files.resume()
        try await waitFor { reported.withLock { $0.count } == 400 }
        for namespace in ["guest", "other"] {
            try await files.prepare(namespace: namespace)  // never over the written map
            let file = try read(files, namespace)
            #expect(file.version == 200)
            #expect(file.instances.map(\.id) == ["instance-200"])
        }
        #expect(writes.withLock { $0 } == ["guest": 1, "other": 1])
        #expect(reported.withLock { $0.sorted() } == (1...200).flatMap { [Int64($0), Int64($0)] })
        await files.removeAll()
        #expect(!FileManager.default.fileExists(atPath: root))
    }

    /// A change after a quiet spell is written at once; after a write that took 30 ms of CPU (the
    /// content's spinning), whose smoothed cost is then 9 ms, the next one not before 81 ms after
    /// it (checked: without the spacing the second write follows at once).
    @Test func aNamespacesNextWriteWaitsNineTimesTheLastOnesCPU() async throws {
        let root = temporaryRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let ends = Mutex([ContinuousClock.Instant]())
        let files = AddressMapFiles(writer: AddressMapFileWriter(root: root), written: { _ in ends.withLock { $0.append(.now) } })
        let asked = ContinuousClock.now
        for version in 1...2 {
            if version == 2 { try await waitFor { ends.withLock { $0.count } == 1 } }
            files.changed(namespace: "guest", arrived: []) {
                var spent = timespec(), start = timespec()
                clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start)
                repeat { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spent) } while (spent.tv_sec - start.tv_sec) * 1_000_000_000 + (spent.tv_nsec - start.tv_nsec) < 30_000_000
                return AddressMapFile(namespace: "guest", version: UInt64(version), entries: [])
            }
        }
        try await waitFor { ends.withLock { $0.count } == 2 }
        let (first, second) = ends.withLock { ($0[0], $0[1]) }
        #expect(first - asked < .seconds(2), "the first change after a quiet spell goes at once")
        // The second write spins 30 ms itself, so it ends at least 81 + 30 ms after the first.
        #expect(second - first >= .milliseconds(105), "the second write ended \(second - first) after the first")
        #expect(try read(files, "guest").version == 2)
    }

    func waitFor(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            guard ContinuousClock.now < deadline else { Issue.record("timed out"); return }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

extension AddressMapFilesTests {
    /// A write that fails (here: the root is a file for a while) is tried again, so the file does
    /// not stay stale until the namespace's next change, and its arrivals are reported once.
    @Test func aFailedWriteIsTriedAgainWithItsArrivals() async throws {
        let base = temporaryRoot()
        defer { try? FileManager.default.removeItem(atPath: base) }
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        let root = "\(base)/maps"
        #expect(FileManager.default.createFile(atPath: root, contents: Data("in the way".utf8)))
        let failures = Mutex(0)
        let reported = Mutex([Int64]())
        let files = AddressMapFiles(writer: AddressMapFileWriter(root: root), written: { arrived in reported.withLock { $0 += arrived.map(\.since) } },
                                    failed: { _, _ in failures.withLock { $0 += 1 } })
        files.changed(namespace: "guest", arrived: [entry("guest", 7)]) { AddressMapFile(namespace: "guest", version: 7, entries: [self.entry("guest", 7)]) }
        try await waitFor { failures.withLock { $0 } >= 1 }
        try FileManager.default.removeItem(atPath: root)  // the obstacle goes; no further change comes
        try await waitFor { reported.withLock { $0 } == [7] }
        #expect(try read(files, "guest").version == 7)
        #expect(reported.withLock { $0 } == [7], "the arrival is reported once, after the write that brought it")
    }


    /// A write scheduled for later (spaced after a costly one) writes nothing once the files were
    /// removed: the invoker's shutdown leaves no folder behind (checked: without the check the
    /// folder is made again ~80 ms later).
    @Test func aWriteScheduledAfterRemoveAllWritesNothing() async throws {
        let root = temporaryRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let count = Mutex(0)
        let files = AddressMapFiles(writer: AddressMapFileWriter(root: root), written: { _ in count.withLock { $0 += 1 } })
        files.changed(namespace: "guest", arrived: []) {
            var spent = timespec(), start = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start)
            repeat { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spent) } while (spent.tv_sec - start.tv_sec) * 1_000_000_000 + (spent.tv_nsec - start.tv_nsec) < 30_000_000
            return AddressMapFile(namespace: "guest", version: 1, entries: [])
        }
        try await waitFor { count.withLock { $0 } == 1 }
        files.changed(namespace: "guest", arrived: []) { AddressMapFile(namespace: "guest", version: 2, entries: []) }  // due ~81 ms later
        await files.removeAll()
        #expect(!FileManager.default.fileExists(atPath: root))
        try await Task.sleep(for: .milliseconds(300))
        #expect(!FileManager.default.fileExists(atPath: root), "a write scheduled before removeAll made the folder again")
    }
}
