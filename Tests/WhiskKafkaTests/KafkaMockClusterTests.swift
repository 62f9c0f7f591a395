import CRdKafka
import Foundation
import Logging
import Synchronization
import Testing
@testable import WhiskKafka

/// Unit tests over librdkafka's in-process mock cluster: no broker process needed.
@Suite("Kafka client over the mock cluster")
struct KafkaMockClusterTests {
    let logger = Logger(label: "test.kafka.mock")

    func mockProducer(messageMaxBytes: Int = 1_054_644, partition: Int32? = nil) throws -> KafkaProducer {
        var configuration = KafkaProducerConfiguration(
            client: KafkaClientConfiguration(bootstrapServers: [], extraProperties: ["test.mock.num.brokers": "1"])
        )
        configuration.messageMaxBytes = messageMaxBytes
        configuration.partition = partition
        return try KafkaProducer(configuration: configuration, logger: logger)
    }

    @Test func loadedLibrdkafkaIsRecentEnough() {
        #expect(KafkaLibrary.isSupported, "loaded librdkafka \(KafkaLibrary.version) is older than 2.1")
    }

    @Test func producerConfigurationMapsToLibrdkafkaKeys() {
        var configuration = KafkaProducerConfiguration(
            client: KafkaClientConfiguration(bootstrapServers: ["127.0.0.1:1", "127.0.0.1:2"], clientID: "c", extraProperties: ["acks": "all"])
        )
        configuration.linger = .milliseconds(7)
        let properties = configuration.librdkafkaProperties
        #expect(properties["bootstrap.servers"] == "127.0.0.1:1,127.0.0.1:2")
        #expect(properties["linger.ms"] == "7")
        #expect(properties["client.id"] == "c")
        #expect(properties["acks"] == "all", "extra properties win over typed settings")
    }

    @Test func consumerConfigurationDisablesAutoCommit() {
        let configuration = KafkaConsumerConfiguration(
            client: KafkaClientConfiguration(bootstrapServers: ["127.0.0.1:1"]), groupID: "g", topics: ["t"]
        )
        let properties = configuration.librdkafkaProperties
        #expect(properties["enable.auto.commit"] == "false")
        #expect(properties["group.id"] == "g")
        #expect(properties["auto.offset.reset"] == "earliest")
        #expect(properties["session.timeout.ms"] == "30000")
    }

    @Test func aFixedPartitionHoldsEveryMessageOfAMultiPartitionTopic() async throws {
        // The mock cluster auto-creates topics with several partitions, as Tansu's memory engine
        // did after a restart: keyed messages spread over them unless the producer fixes one.
        let spread = try mockProducer()
        var partitions = Set<Int32>()
        for index in 0..<16 { partitions.insert(try await spread.send(topic: "mock-spread", key: Array("k\(index)".utf8), value: Array("m".utf8)).partition) }
        await spread.close()
        #expect(partitions.count > 1, "positive control: without a fixed partition the messages spread")
        let fixed = try mockProducer(partition: 0)
        for index in 0..<16 {
            let report = try await fixed.send(topic: "mock-fixed", key: Array("k\(index)".utf8), value: Array("m".utf8))
            #expect(report.partition == 0)
        }
        await fixed.close()
    }

    @Test func theCommitWatermarkWaitsForTheLowestUnfinishedOffset() {
        var watermark = KafkaCommitWatermark()
        for offset in Int64(10)...12 { watermark.start(offset) }
        #expect(watermark.finish(11) == nil, "10 is still running: committing 12 would skip it after a crash")
        #expect(watermark.finish(12) == nil)
        #expect(watermark.finish(10) == 13, "all three done: resume after 12")
        watermark.start(13)
        watermark.start(14)
        #expect(watermark.finish(13) == 14)
        #expect(watermark.pending == 1)
        #expect(watermark.finish(13) == nil, "finishing twice changes nothing")
        #expect(watermark.finish(99) == nil, "an offset never started changes nothing")
        #expect(watermark.finish(14) == 15)
        #expect(watermark.committed == 15)
    }

    @Test func aClientsMinimumFetchWaitRaisesEveryConsumersWait() {
        var client = KafkaClientConfiguration(bootstrapServers: ["127.0.0.1:1"])
        var configuration = KafkaConsumerConfiguration(client: client, groupID: "g", topics: ["t"])
        configuration.fetchMaxWait = .milliseconds(5)
        #expect(configuration.librdkafkaProperties["fetch.wait.max.ms"] == "5")
        client.minimumFetchWait = .milliseconds(100)
        configuration.client = client
        #expect(configuration.librdkafkaProperties["fetch.wait.max.ms"] == "100")
        configuration.fetchMaxWait = .milliseconds(500)
        #expect(configuration.librdkafkaProperties["fetch.wait.max.ms"] == "500", "a longer wait than the floor stays")
    }

    @Test func aClientsFetchWaitReplacesEachConsumersOwnAboveTheMinimum() {
        var client = KafkaClientConfiguration(bootstrapServers: ["127.0.0.1:1"])
        client.fetchWait = .milliseconds(2)
        var configuration = KafkaConsumerConfiguration(client: client, groupID: "g", topics: ["t"])
        configuration.fetchMaxWait = .milliseconds(10)
        #expect(configuration.librdkafkaProperties["fetch.wait.max.ms"] == "2")
        configuration.client.minimumFetchWait = .milliseconds(50)
        #expect(configuration.librdkafkaProperties["fetch.wait.max.ms"] == "50", "the minimum still wins")
    }

    @Test func theControlPlanesFetchWaitIsSetApartFromTheActivationPaths() {
        var client = KafkaClientConfiguration(bootstrapServers: ["127.0.0.1:1"])
        client.fetchWait = .milliseconds(3)
        client.controlFetchWait = .milliseconds(20)
        var activations = KafkaConsumerConfiguration(client: client, groupID: "g", topics: ["invoker0"])
        activations.fetchMaxWait = .milliseconds(10)
        var control = activations
        control.traffic = .control
        #expect(activations.librdkafkaProperties["fetch.wait.max.ms"] == "3")
        #expect(control.librdkafkaProperties["fetch.wait.max.ms"] == "20")
        control.client.controlFetchWait = nil
        #expect(control.librdkafkaProperties["fetch.wait.max.ms"] == "10", "without an override a consumer keeps its own")
        control.client.minimumFetchWait = .milliseconds(50)
        #expect(control.librdkafkaProperties["fetch.wait.max.ms"] == "50", "the minimum still wins")
    }

    @Test func invalidPropertyIsAClearError() {
        let configuration = KafkaProducerConfiguration(
            client: KafkaClientConfiguration(bootstrapServers: ["x"], extraProperties: ["no.such.property": "1"])
        )
        #expect {
            _ = try KafkaProducer(configuration: configuration, logger: logger)
        } throws: { error in
            guard let error = error as? KafkaError else { return false }
            return error.code == .configuration && error.reason.contains("no.such.property")
        }
    }

    @Test func sendReturnsDeliveryReportAndConsumerReceivesIt() async throws {
        let producer = try mockProducer()
        let report = try await producer.send(topic: "mock-roundtrip", string: "hello")
        #expect(report.offset == 0)
        let second = try await producer.send(topic: "mock-roundtrip", key: Array("k".utf8), value: Array("world".utf8))
        #expect(second.offset >= 0)  // the mock cluster auto-creates topics with several partitions

        let servers = try #require(producer.mockClusterBootstrapServers)
        var configuration = KafkaConsumerConfiguration(
            client: KafkaClientConfiguration(bootstrapServers: [servers]), groupID: "mock-group", topics: ["mock-roundtrip"]
        )
        configuration.sessionTimeout = .seconds(6)
        configuration.heartbeatInterval = .milliseconds(500)
        let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        var received: [String] = []
        for try await message in consumer.messages {
            received.append(String(decoding: message.value, as: UTF8.self))
            try await consumer.commit(message)
            if received.count == 2 { break }
        }
        #expect(received.sorted() == ["hello", "world"])
        await consumer.close()
        await producer.close()
    }

    @Test func oversizedMessageFailsWithMessageTooLarge() async throws {
        let producer = try mockProducer(messageMaxBytes: 1000)
        await #expect {
            try await producer.send(topic: "mock-big", value: [UInt8](repeating: 1, count: 5000))
        } throws: { error in
            (error as? KafkaError)?.code == .messageTooLarge
        }
        // The producer still works after the rejection.
        let report = try await producer.send(topic: "mock-big", string: "small")
        #expect(report.offset >= 0)
        await producer.close()
    }

    @Test func assignedConsumerResumesAfterItsCommittedOffsetWithoutJoining() async throws {
        let producer = try mockProducer()
        for index in 0..<4 { try await producer.send(topic: "mock-assigned", key: Array("k".utf8), value: Array("m\(index)".utf8)) }
        let servers = try #require(producer.mockClusterBootstrapServers)
        func reader() throws -> KafkaConsumer {
            var configuration = KafkaConsumerConfiguration(
                client: KafkaClientConfiguration(bootstrapServers: [servers]), groupID: "mock-assigned-group", topics: ["mock-assigned"]
            )
            configuration.assignment = .init(partitions: [0, 1, 2, 3], start: .committed)
            return try KafkaConsumer(configuration: configuration, logger: logger)
        }
        let first = try reader()
        var seen: [String] = []
        for try await message in first.messages {
            seen.append(String(decoding: message.value, as: UTF8.self))
            try await first.commit(message)
            if seen.count == 2 { break }
        }
        #expect(seen == ["m0", "m1"])
        await first.close()
        let second = try reader()
        seen = []
        for try await message in second.messages {
            seen.append(String(decoding: message.value, as: UTF8.self))
            if seen.count == 2 { break }
        }
        #expect(seen == ["m2", "m3"], "the second reader starts after the first one's commit")
        await second.close()
        await producer.close()
    }

    @Test func detachedSendsKeepTheirOrderAndReportDelivery() async throws {
        let producer = try mockProducer()
        let reports = Mutex<[Int64]>([])
        // One key, so all land on one partition, where their order must hold.
        for index in 0..<50 {
            try producer.sendDetached(topic: "mock-detached", key: Array("k".utf8), value: Array("\(index)".utf8)) { result in
                if case .success(let report) = result { reports.withLock { $0.append(report.offset) } }
            }
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while reports.withLock({ $0.count }) < 50 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        let offsets = reports.withLock { $0 }
        #expect(offsets.count == 50)
        #expect(offsets == offsets.sorted(), "delivery order is enqueue order on one partition")
        #expect(throws: KafkaError.self) {
            try producer.sendDetached(topic: "mock-detached", value: [UInt8](repeating: 1, count: 2_000_000)) { _ in Issue.record("no report for a rejected message") }
        }
        await producer.close()
        #expect(throws: KafkaError.self) {
            try producer.sendDetached(topic: "mock-detached", value: Array("late".utf8)) { _ in }
        }
    }

    /// Closing destroys librdkafka's handle (a daemon that exited with a live handle once
    /// aborted in librdkafka's thread), and nothing reaches the handle afterwards.
    @Test func closingDestroysTheHandleAndLaterCallsAreClosedErrors() async throws {
        let producer = try mockProducer()
        let servers = try #require(producer.mockClusterBootstrapServers)
        var configuration = KafkaConsumerConfiguration(
            client: KafkaClientConfiguration(bootstrapServers: [servers]), groupID: "mock-destroyed", topics: ["mock-destroyed"]
        )
        configuration.assignment = .init(partitions: [0], start: .committed)
        let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        let sent = try await producer.send(topic: "mock-destroyed", string: "one")
        await consumer.close()
        await producer.close()
        #expect(producer.mockClusterBootstrapServers == nil, "the producer's handle is destroyed")
        #expect(throws: KafkaError.self) { try consumer.commit(topic: "mock-destroyed", partition: 0, nextOffset: sent.offset + 1) }
        #expect(consumer.lag(after: KafkaConsumerMessage(topic: "mock-destroyed", partition: 0, offset: 0, key: nil, value: Data())) == nil)
        #expect(try await consumer.nextBatch(limit: 4).isEmpty)
        await consumer.close()  // a second close is a no-op
    }

    /// `destroy()` waits for the calls that hold the handle, and later calls do not get it.
    @Test func destroyWaitsForTheCallInProgress() async throws {
        let client = try RDKafkaClient(type: RD_KAFKA_PRODUCER, properties: ["test.mock.num.brokers": "1"], callbacks: RDKafkaCallbacks(logger: logger))
        let events = Mutex<[String]>([])
        let inside = Atomic<Bool>(false)
        let call = Thread {
            _ = client.withHandle { handle in
                inside.store(true, ordering: .releasing)
                usleep(200_000)
                _ = rd_kafka_outq_len(handle)  // still valid: destroy has not run
                events.withLock { $0.append("call returned") }
            }
        }
        call.start()
        while !inside.load(ordering: .acquiring) { try await Task.sleep(for: .milliseconds(5)) }
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                client.destroy()
                events.withLock { $0.append("destroyed") }
                continuation.resume()
            }
        }
        #expect(events.withLock { $0 } == ["call returned", "destroyed"])
        #expect(client.withHandle { _ in true } == nil)
        client.destroy()  // idempotent
    }

    @Test func sendAfterCloseFails() async throws {
        let producer = try mockProducer()
        await producer.close()
        await #expect {
            try await producer.send(topic: "mock-closed", string: "late")
        } throws: { error in
            (error as? KafkaError)?.code == .closed
        }
    }
}

@Suite("Delivery tracker")
struct DeliveryTrackerTests {
    @Test func eachContinuationResumesExactlyOnce() async throws {
        let tracker = DeliveryTracker()
        async let report: KafkaDeliveryReport = withCheckedThrowingContinuation { continuation in
            let id = tracker.register(continuation)!
            tracker.complete(id: id, with: .success(KafkaDeliveryReport(partition: 0, offset: 42)))
            // A duplicate report for the same id is ignored, not a double resume.
            tracker.complete(id: id, with: .success(KafkaDeliveryReport(partition: 0, offset: 43)))
        }
        #expect(try await report.offset == 42)
        #expect(tracker.pendingCount == 0)
    }

    @Test func closeFailsPendingAndRejectsNew() async throws {
        let tracker = DeliveryTracker()
        let failed = Task {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<KafkaDeliveryReport, Error>) in
                _ = tracker.register(continuation)
            }
        }
        while tracker.pendingCount == 0 { await Task.yield() }
        tracker.close()
        tracker.failAll(KafkaError(.closed, "closing"))
        await #expect(throws: KafkaError.self) { try await failed.value }
        let rejected: UInt? = await withCheckedContinuation { outer in
            Task {
                let id = try? await withCheckedThrowingContinuation { (continuation: CheckedContinuation<KafkaDeliveryReport, Error>) in
                    let id = tracker.register(continuation)
                    outer.resume(returning: id)
                    if id == nil { continuation.resume(throwing: KafkaError(.closed, "closed")) }
                }
                _ = id
            }
        }
        #expect(rejected == nil)
    }
}
