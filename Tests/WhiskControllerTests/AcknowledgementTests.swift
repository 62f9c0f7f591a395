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
        await controller.handleAcknowledgement(try WhiskMessageCoding.encode(result))
        let answered = await controller.waiters.wait(for: id, timeout: .seconds(5))
        #expect(answered?.activationId == id && answered?.logs == [], "the caller gets the result without waiting for logs")
        #expect(try await store.activation(namespace: "guest", id: id)?.logs == [], "kept (provisionally) until the record comes")

        let combined = AcknowledgementMessage.combined(transid: transid, response: .activation(activation(id, logs: ["a line"])),
                                                       isSystemError: false, instance: invoker)
        await controller.handleAcknowledgement(try WhiskMessageCoding.encode(combined))
        #expect(try await store.activation(namespace: "guest", id: id)?.logs == ["a line"], "the record with the logs replaces it")

        // A result that arrives after its record (reordered) does not replace it.
        await controller.handleAcknowledgement(try WhiskMessageCoding.encode(result))
        #expect(try await store.activation(namespace: "guest", id: id)?.logs == ["a line"])
    }
}
