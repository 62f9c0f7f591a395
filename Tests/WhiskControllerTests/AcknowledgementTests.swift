import Foundation
import Logging
import Testing
@testable import WhiskController
import WhiskKafka
import WhiskMessages

/// The controller's handling of `completed{C}`: a blocking caller's result ahead of the record
/// (upstream's result message), then the combined message with the logs.
@Suite("acknowledgements")
struct AcknowledgementTests {
    func controller() async throws -> (Controller, SQLiteEntityStore) {
        // The producer connects lazily; nothing here publishes, so no broker is needed.
        let kafka = KafkaClientConfiguration(bootstrapServers: ["127.0.0.1:1"])
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let store = try SQLiteEntityStore(path: nil)
        return (try await Controller(configuration: ControllerConfiguration(kafka: kafka, internalToken: "t"), store: store, logger: logger), store)
    }

    func activation(_ id: ActivationId, logs: [String]) -> WhiskActivation {
        WhiskActivation(namespace: EntityPath("guest")!, name: EntityName("a")!, subject: "guest", activationId: id,
                        start: 1, end: 2, response: .success(["ok": true]), logs: logs)
    }

    @Test func theResultAnswersTheCallerAndTheCombinedMessageStoresTheLogs() async throws {
        let (controller, store) = try await controller()
        let id = ActivationId.generate()
        let transid = TransactionId.generate()
        let invoker = InvokerInstanceId(instance: 0, userMemory: ByteSize(bytes: 1 << 30))
        controller.waiters.register(id)

        let result = AcknowledgementMessage.result(transid: transid, response: .activation(activation(id, logs: [])))
        await controller.handleAcknowledgements([try WhiskMessageCoding.encode(result)])
        let answered = await controller.waiters.wait(for: id, timeout: .seconds(5))
        #expect(answered?.activationId == id && answered?.logs == [], "the caller gets the result without waiting for logs")
        #expect(try await store.activation(namespace: "guest", id: id)?.logs == [], "kept (provisionally) until the record comes")

        let combined = AcknowledgementMessage.combined(transid: transid, response: .activation(activation(id, logs: ["a line"])),
                                                       isSystemError: false, instance: invoker)
        await controller.handleAcknowledgements([try WhiskMessageCoding.encode(combined)])
        #expect(try await store.activation(namespace: "guest", id: id)?.logs == ["a line"], "the record with the logs replaces it")

        // A result that arrives after its record (reordered) does not replace it.
        await controller.handleAcknowledgements([try WhiskMessageCoding.encode(result)])
        #expect(try await store.activation(namespace: "guest", id: id)?.logs == ["a line"])
    }

    /// A busy controller handles what arrived as one batch with one store transaction: each ack
    /// counts as it would alone, in order, and junk in the batch costs the others nothing.
    @Test func aBatchStoresEveryRecordInOrderAndSkipsJunk() async throws {
        let (controller, store) = try await controller()
        let invoker = InvokerInstanceId(instance: 0, userMemory: ByteSize(bytes: 1 << 30))
        let transid = TransactionId.generate()
        let ids = (0..<3).map { _ in ActivationId.generate() }
        for id in ids { controller.waiters.register(id) }
        let batch: [Data] = [
            try WhiskMessageCoding.encode(AcknowledgementMessage.result(transid: transid, response: .activation(activation(ids[0], logs: [])))),
            Data("not an acknowledgement".utf8),
            try WhiskMessageCoding.encode(AcknowledgementMessage.combined(transid: transid, response: .activation(activation(ids[0], logs: ["zero"])),
                                                                           isSystemError: false, instance: invoker)),
            try WhiskMessageCoding.encode(AcknowledgementMessage.combined(transid: transid, response: .activation(activation(ids[1], logs: ["one"])),
                                                                           isSystemError: false, instance: invoker)),
            Data("{}".utf8),
            try WhiskMessageCoding.encode(AcknowledgementMessage.combined(transid: transid, response: .activation(activation(ids[2], logs: ["two"])),
                                                                           isSystemError: false, instance: invoker)),
        ]
        await controller.handleAcknowledgements(batch)
        for (id, logs) in zip(ids, [["zero"], ["one"], ["two"]]) {
            #expect(try await store.activation(namespace: "guest", id: id)?.logs == logs, "the record, not the provisional result, stays")
            #expect(await controller.waiters.wait(for: id, timeout: .seconds(5))?.activationId == id, "its caller is answered")
        }
    }
}
