/// Settings shared by every Kafka client; mapped to librdkafka's keys in ``librdkafkaProperties``.
public struct KafkaClientConfiguration: Sendable {
    /// `host:port` of one or more brokers.
    public var bootstrapServers: [String]
    public var clientID: String
    /// Extra librdkafka properties, applied last (they win over the typed settings).
    public var extraProperties: [String: String]
    /// The least time any consumer of this client lets the broker hold a fetch, whatever the
    /// consumer asks for. Zero on the memory broker; a broker whose reads are slower than a short
    /// wait needs more: Tansu on S3 answers a fetch whose wait ran out before its storage read
    /// finished with no data, so a consumer polling at 5-10 ms while SeaweedFS took 50-100 ms
    /// (2 cores, three Docker hosts busy) received nothing at all and fell behind for good.
    public var minimumFetchWait: Duration = .zero
    /// When set, how long the consumers of activations and their acknowledgements
    /// (``KafkaConsumerConfiguration/Traffic/activations``) let the broker hold a fetch, instead of
    /// their own choice (still at least `minimumFetchWait`).
    public var fetchWait: Duration?
    /// The same for the control plane's consumers (``KafkaConsumerConfiguration/Traffic/control``:
    /// heartbeats, address-map publications).
    public var controlFetchWait: Duration?

    public init(bootstrapServers: [String], clientID: String = "whiskmesh", extraProperties: [String: String] = [:]) {
        self.bootstrapServers = bootstrapServers
        self.clientID = clientID
        self.extraProperties = extraProperties
    }
}

/// How a ``KafkaProducer`` sends.
public struct KafkaProducerConfiguration: Sendable {
    public var client: KafkaClientConfiguration
    /// How long to wait for more messages before sending a batch; zero favours latency.
    public var linger: Duration = .zero
    /// Largest message the producer accepts; larger ones fail with ``KafkaError/Code/messageTooLarge``.
    public var messageMaxBytes: Int = 1_054_644
    /// How long a message may wait for the broker's acknowledgement before its delivery fails.
    public var messageTimeout: Duration = .seconds(30)
    /// Broker acknowledgements to wait for (OpenWhisk uses 1).
    public var acks: Int = 1
    /// The partition every message goes to; nil lets librdkafka's partitioner choose. WhiskMesh's
    /// topics have one partition and its readers read partition 0: a broker that auto-creates a
    /// topic with more (Tansu's memory engine, restarted under running clients, made four) would
    /// otherwise scatter pings and activations where nobody reads them.
    public var partition: Int32?

    public init(client: KafkaClientConfiguration) { self.client = client }
}

/// Where the consumer starts when its group has no committed offset.
public enum KafkaOffsetReset: String, Sendable {
    case earliest, latest
}

/// How a ``KafkaConsumer`` joins its group and consumes.
public struct KafkaConsumerConfiguration: Sendable {
    public var client: KafkaClientConfiguration
    public var groupID: String
    public var topics: [String]
    public var autoOffsetReset: KafkaOffsetReset = .earliest
    public var sessionTimeout: Duration = .seconds(30)
    public var heartbeatInterval: Duration = .seconds(3)
    public var maxPollInterval: Duration = .seconds(300)
    /// Largest message the consumer fetches.
    public var fetchMaxBytes: Int = 52_428_800
    /// Partitions to read without joining a group (no rebalance wait: Tansu takes 3-6 s to
    /// admit a new member, and a member that vanishes while joining can stall the group). For
    /// broadcast topics that every reader needs whole, such as pings, and for topics with one
    /// reader by design, such as `invokerN`. nil subscribes as a member of `groupID`.
    public var assignment: Assignment?

    public struct Assignment: Sendable, Equatable {
        public var partitions: [Int32]
        public var start: Start

        /// Where reading starts.
        public enum Start: Sendable, Equatable {
            /// Only what is new.
            case end
            case beginning
            /// After the offset last committed for `groupID` (commits work without membership),
            /// or where `autoOffsetReset` says when there is none.
            case committed
            /// At this offset.
            case offset(Int64)
        }

        public init(partitions: [Int32] = [0], start: Start = .end) {
            self.partitions = partitions
            self.start = start
        }
    }

    /// How long the broker may hold a fetch waiting for data. librdkafka's 500 ms default adds up
    /// to that much latency per hop on a quiet topic; activations and acks want it low.
    public var fetchMaxWait: Duration = .milliseconds(10)
    /// Which of the client's fetch-wait overrides applies to this consumer.
    public var traffic: Traffic = .activations

    /// What a consumer reads, for the fetch wait: a broker that does not answer a waiting fetch
    /// when data arrives (Tansu) costs every hop up to the wait and every idle consumer a fetch
    /// per wait, so the activation path and the control plane are tuned apart.
    public enum Traffic: Sendable {
        /// Activations and acknowledgements: a blocking caller waits on each hop.
        case activations
        /// Heartbeats and address-map publications: tens of milliseconds are within the map's
        /// propagation budget, and their consumers are idle most of the time.
        case control
    }
    /// How long one poll waits before checking for cancellation or close.
    public var pollInterval: Duration = .milliseconds(100)

    public init(client: KafkaClientConfiguration, groupID: String, topics: [String]) {
        self.client = client
        self.groupID = groupID
        self.topics = topics
    }
}

extension Duration {
    var milliseconds: Int {
        let (seconds, attoseconds) = components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }
}

extension KafkaClientConfiguration {
    var baseProperties: [String: String] {
        ["bootstrap.servers": bootstrapServers.joined(separator: ","), "client.id": clientID]
    }
}

extension KafkaProducerConfiguration {
    /// The one place where producer settings become librdkafka properties.
    var librdkafkaProperties: [String: String] {
        var properties = client.baseProperties
        properties["linger.ms"] = String(linger.milliseconds)
        properties["message.max.bytes"] = String(messageMaxBytes)
        properties["message.timeout.ms"] = String(messageTimeout.milliseconds)
        properties["acks"] = String(acks)
        properties.merge(client.extraProperties) { _, extra in extra }
        return properties
    }
}

extension KafkaConsumerConfiguration {
    /// The one place where consumer settings become librdkafka properties.
    var librdkafkaProperties: [String: String] {
        var properties = client.baseProperties
        properties["group.id"] = groupID
        properties["enable.auto.commit"] = "false"
        properties["auto.offset.reset"] = autoOffsetReset.rawValue
        properties["session.timeout.ms"] = String(sessionTimeout.milliseconds)
        properties["heartbeat.interval.ms"] = String(heartbeatInterval.milliseconds)
        properties["max.poll.interval.ms"] = String(maxPollInterval.milliseconds)
        properties["fetch.max.bytes"] = String(fetchMaxBytes)
        properties["enable.partition.eof"] = "false"
        let override = traffic == .activations ? client.fetchWait : client.controlFetchWait
        properties["fetch.wait.max.ms"] = String(max(override ?? fetchMaxWait, client.minimumFetchWait).milliseconds)
        properties.merge(client.extraProperties) { _, extra in extra }
        return properties
    }
}
