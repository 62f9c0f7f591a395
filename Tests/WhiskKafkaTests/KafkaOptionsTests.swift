import Testing
import WhiskDaemonOptions
import WhiskKafka

@Suite("The daemons' Kafka options")
struct KafkaOptionsTests {
    @Test func defaultsWaitLittleOnTheActivationPathAndLongerOnTheControlPlane() throws {
        let client = try KafkaOptions.parse(["--kafka", "127.0.0.1:1,127.0.0.1:2"]).clientConfiguration(clientID: "invoker0")
        #expect(client.bootstrapServers == ["127.0.0.1:1", "127.0.0.1:2"])
        #expect(client.clientID == "invoker0")
        #expect(client.fetchWait == .milliseconds(3))
        #expect(client.controlFetchWait == .milliseconds(20))
        #expect(client.minimumFetchWait == .zero)
    }

    @Test func eachWaitIsSetOnItsOwn() throws {
        let client = try KafkaOptions.parse(["--kafka-fetch-wait", "7", "--kafka-control-fetch-wait", "40", "--kafka-min-fetch-wait", "5"])
            .clientConfiguration(clientID: "controller0")
        #expect(client.fetchWait == .milliseconds(7))
        #expect(client.controlFetchWait == .milliseconds(40))
        #expect(client.minimumFetchWait == .milliseconds(5))
    }

    @Test(arguments: ["--kafka-fetch-wait", "--kafka-control-fetch-wait", "--kafka-min-fetch-wait"])
    func aNegativeWaitIsRefused(flag: String) {
        #expect(throws: (any Error).self) { try KafkaOptions.parse(["\(flag)=-1"]) }
    }
}
