import Foundation
import Testing
import WhiskKafka
import WhiskMessages

/// Against the real Tansu broker that scripts/test starts.
@Suite("Kafka client against the real broker", .serialized)
struct KafkaIntegrationTests {
    func consumer(_ client: KafkaClientConfiguration, group: String, topics: [String]) throws -> KafkaConsumer {
        var configuration = KafkaConsumerConfiguration(client: client, groupID: group, topics: topics)
        configuration.sessionTimeout = .seconds(6)
        configuration.heartbeatInterval = .milliseconds(500)
        configuration.maxPollInterval = .seconds(10)
        return try KafkaConsumer(configuration: configuration, logger: TestEnvironment.logger)
    }

    func producer(_ client: KafkaClientConfiguration) throws -> KafkaProducer {
        try KafkaProducer(configuration: KafkaProducerConfiguration(client: client), logger: TestEnvironment.logger)
    }

    /// Reads `count` messages, committing each after "processing" it.
    func take(_ count: Int, from consumer: KafkaConsumer) async throws -> [String] {
        var values: [String] = []
        for try await message in consumer.messages {
            values.append(String(decoding: message.value, as: UTF8.self))
            try await consumer.commit(message)
            if values.count == count { break }
        }
        return values
    }

    @Test func produceConsumeRoundTrip() async throws {
        try await withTopics(1) { client, topics in
            let producer = try producer(client)
            var offsets: [Int64] = []
            for index in 0..<20 {
                offsets.append(try await producer.send(topic: topics[0], string: "message-\(index)").offset)
            }
            #expect(offsets == Array(0..<20), "one partition: offsets follow the send order")
            let consumer = try consumer(client, group: TestEnvironment.uniqueName("group"), topics: topics)
            let values = try await take(20, from: consumer)
            #expect(values == (0..<20).map { "message-\($0)" })
            await consumer.close()
            await producer.close()
        }
    }

    @Test func twoGroupsEachReceiveEveryMessage() async throws {
        try await withTopics(1) { client, topics in
            let producer = try producer(client)
            let expected = (0..<10).map { "fanout-\($0)" }
            for value in expected { try await producer.send(topic: topics[0], string: value) }
            let first = try consumer(client, group: TestEnvironment.uniqueName("group-a"), topics: topics)
            let second = try consumer(client, group: TestEnvironment.uniqueName("group-b"), topics: topics)
            async let firstValues = take(10, from: first)
            async let secondValues = take(10, from: second)
            #expect(try await firstValues == expected)
            #expect(try await secondValues == expected)
            await first.close()
            await second.close()
            await producer.close()
        }
    }

    @Test func restartedConsumerResumesAfterLastCommit() async throws {
        try await withTopics(1) { client, topics in
            let producer = try producer(client)
            for index in 0..<6 { try await producer.send(topic: topics[0], string: "m\(index)") }
            let group = TestEnvironment.uniqueName("group")

            let before = try consumer(client, group: group, topics: topics)
            #expect(try await take(3, from: before) == ["m0", "m1", "m2"])
            await before.close()

            let after = try consumer(client, group: group, topics: topics)
            #expect(try await take(3, from: after) == ["m3", "m4", "m5"])
            await after.close()
            await producer.close()
        }
    }

    @Test func malformedAndOversizedMessagesDoNotStopConsumption() async throws {
        try await withTopics(1) { client, topics in
            let producer = try producer(client)
            // Larger than the producer's 1,054,644-byte limit: a clear error, nothing sent.
            await #expect {
                try await producer.send(topic: topics[0], value: [UInt8](repeating: 0x41, count: 2_000_000))
            } throws: { error in
                (error as? KafkaError)?.code == .messageTooLarge
            }
            try await producer.send(topic: topics[0], string: "{ this is not an activation")
            try await producer.send(topic: topics[0], value: [0xff, 0xfe, 0x00, 0x01])
            let ping = PingMessage(name: InvokerInstanceId(instance: 0, userMemory: .megabytes(2048)))
            try await producer.send(topic: topics[0], value: try WhiskMessageCoding.encode(ping))

            let consumer = try consumer(client, group: TestEnvironment.uniqueName("group"), topics: topics)
            var errors: [WhiskMessageError] = []
            var pings: [PingMessage] = []
            for try await message in consumer.messages {
                do {
                    pings.append(try WhiskMessageCoding.decode(PingMessage.self, from: message.value))
                } catch let error as WhiskMessageError {
                    errors.append(error)
                }
                try await consumer.commit(message)
                if pings.count == 1 { break }
            }
            #expect(errors.count == 2)
            #expect(errors.allSatisfy { $0.code == .malformed && $0.reason.contains("PingMessage") })
            #expect(pings.first?.name.instance == 0)
            await consumer.close()
            await producer.close()
        }
    }

    /// An invoker treats the activations below its topic's end at start as possibly run by its
    /// previous run. Tansu answers ListOffsets with its last record batch's base offset plus one:
    /// messages sent together (one batch) must all count.
    @Test func theHighWatermarkCountsEveryMessageOfTheLastBatch() async throws {
        try await withTopics(1) { client, topics in
            var configuration = KafkaProducerConfiguration(client: client)
            configuration.linger = .milliseconds(50)  // each round of seven goes as one batch
            let producer = try KafkaProducer(configuration: configuration, logger: TestEnvironment.logger)
            var offsets: [Int64] = []
            for round in 0..<3 {
                offsets += try await withThrowingTaskGroup(of: Int64.self) { group in
                    for index in 0..<7 {
                        group.addTask { try await producer.send(topic: topics[0], string: "r\(round)-\(index)").offset }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
            }
            #expect(offsets.sorted() == Array(0..<21))
            let consumer = try consumer(client, group: TestEnvironment.uniqueName("group"), topics: topics)
            #expect(try await consumer.highWatermark(topic: topics[0], partition: 0) == 21)
            try await producer.send(topic: topics[0], string: "alone")
            #expect(try await consumer.highWatermark(topic: topics[0], partition: 0) == 22)
            await consumer.close()
            await producer.close()
        }
    }

    @Test func aTopicIsCreatedWithTheConfigsGiven() async throws {
        let configuration = try TestEnvironment.requireBrokers()
        let admin = try KafkaAdmin(configuration: configuration, logger: TestEnvironment.logger)
        let plain = TestEnvironment.uniqueName("whiskmesh-test")
        let sized = TestEnvironment.uniqueName("whiskmesh-test")
        defer { Task { try? await admin.deleteTopic(plain); try? await admin.deleteTopic(sized); await admin.close() } }
        try await admin.createTopic(plain)
        try await admin.createTopic(sized, configs: KafkaAdmin.activationTopicConfigs)
        // Positive control: a topic created without configs does not report the value.
        #expect(try await admin.topicConfigs(plain)["max.message.bytes"] != "1054644")
        #expect(try await admin.topicConfigs(sized)["max.message.bytes"] == "1054644")
    }

    @Test func creatingAnExistingTopicIsNotAnError() async throws {
        try await withTopics(1) { client, topics in
            let admin = try KafkaAdmin(configuration: client, logger: TestEnvironment.logger)
            try await admin.createTopic(topics[0])
            await admin.close()
        }
    }
}
