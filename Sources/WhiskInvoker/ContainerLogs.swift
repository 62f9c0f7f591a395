import Logging
import Synchronization
import WhiskDocker
import WhiskHTTP

/// Every action container's log, followed from the container's start on one Docker stream, and cut
/// at the runtime's sentinels into one activation's lines.
///
/// Asking dockerd for a container's log after each activation (`docker logs --since`) cost
/// 5-10 ms per activation and grew with the container's age, as dockerd reads the log file from
/// its start; it was the largest part of a warm no-op's latency. With the log followed, the lines
/// are in memory by the time `/run` answers (or a few milliseconds later).
final class ContainerLogs: Sendable {
    static let sentinel = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"

    private let docker: DockerClient
    private let followers = Mutex<[String: LogFollower]>([:])
    private let maxBufferedBytes: Int
    private let logger: Logger

    /// - Parameter maxBufferedBytes: most bytes of log held per container between collections;
    ///   lines beyond are dropped (and counted in a notice).
    init(docker: DockerClient, maxBufferedBytes: Int = 16 * 1024 * 1024, logger: Logger) {
        self.docker = docker
        self.maxBufferedBytes = maxBufferedBytes
        self.logger = logger
    }

    /// Starts following a started container's log.
    func follow(_ containerID: String) {
        let follower = LogFollower(maxBufferedBytes: maxBufferedBytes)
        followers.withLock { $0[containerID] = follower }
        let logger = logger
        docker.followLogs(containerID, cancelled: follower.cancelled, onLine: { follower.append($0) }, onEnd: { error in
            if let error, !follower.cancelled.isSet {
                logger.warning("a container's log stream broke", metadata: ["container": "\(containerID)", "error": "\(error)"])
            }
            follower.end(error: follower.cancelled.isSet ? nil : error)
        })
    }

    /// Stops following a container (it is being removed).
    func stop(_ containerID: String) {
        let follower = followers.withLock { $0.removeValue(forKey: containerID) }
        follower?.cancelled.set()
        follower?.end(error: nil)
    }

    /// The lines of the activation that just ended in the container, as OpenWhisk records them
    /// (`TIMESTAMP stdout: text`, in time order): up to the sentinel on each stream, or what is
    /// there after `timeout` (an action that broke its stream, a runtime that died).
    func collect(_ containerID: String, timeout: Duration) async -> [String] {
        guard let follower = followers.withLock({ $0[containerID] }) else {
            return ["Logs are unavailable: the invoker does not follow this container's log."]
        }
        return await follower.next(timeout: timeout)
    }
}

/// One container's log between collections.
final class LogFollower: Sendable {
    private struct Entry {
        var timestamp: String
        var text: String
    }

    /// A stream's lines since the last collection; `nil` entries are sentinels.
    private struct State {
        var streams: [LogStream: [Entry?]] = [.stdout: [], .stderr: []]
        var bytes = 0
        var dropped = 0
        var ended = false
        var failure: String?
        var waiter: (id: Int, continuation: CheckedContinuation<[String], Never>)?
        var nextWaiterID = 0

        /// Both streams reached their sentinel, or no more lines will come.
        var ready: Bool {
            ended || (streams[.stdout]!.contains { $0 == nil } && streams[.stderr]!.contains { $0 == nil })
        }

        /// Takes each stream's lines up to and including its first sentinel (all, without one).
        mutating func take() -> [String] {
            var taken: [(Entry, LogStream)] = []
            for stream in [LogStream.stdout, .stderr] {
                let lines = streams[stream]!
                let end = lines.firstIndex { $0 == nil }
                taken += lines[..<(end ?? lines.endIndex)].compactMap { $0.map { ($0, stream) } }
                streams[stream] = end.map { Array(lines[($0 + 1)...]) } ?? []
            }
            bytes = streams.values.joined().reduce(0) { $0 + ($1?.text.utf8.count ?? 0) }
            // Docker's timestamps are fixed-width once padded, so they sort as strings.
            var lines = taken.enumerated().sorted { ($0.element.0.timestamp, $0.offset) < ($1.element.0.timestamp, $1.offset) }
                .map { "\($0.element.0.timestamp) \($0.element.1 == .stderr ? "stderr" : "stdout"): \($0.element.0.text)" }
            if dropped > 0 {
                lines.append("\(dropped) log lines were dropped: the container wrote more than the invoker holds between activations.")
                dropped = 0
            }
            // Every later activation of the container is told too: its lines are lost as well.
            if let failure {
                lines.append("Logs may be incomplete: the container's log stream broke: \(failure)")
            }
            return lines
        }
    }

    let cancelled = CancelFlag()
    private let state = Mutex(State())
    private let maxBufferedBytes: Int

    init(maxBufferedBytes: Int) {
        self.maxBufferedBytes = maxBufferedBytes
    }

    /// A line from Docker (`TIMESTAMP text`).
    func append(_ line: LogLine) {
        guard line.stream == .stdout || line.stream == .stderr else { return }
        let (timestamp, text) = Self.splitTimestamp(line.text)
        let resumed = state.withLock { state -> (CheckedContinuation<[String], Never>, [String])? in
            var entries: [Entry?] = []
            if text == ContainerLogs.sentinel {
                entries = [nil]
            } else if text.hasSuffix(ContainerLogs.sentinel) {
                // The action's last output had no newline: the sentinel ends its line.
                entries = [Entry(timestamp: timestamp, text: String(text.dropLast(ContainerLogs.sentinel.count))), nil]
            } else {
                entries = [Entry(timestamp: timestamp, text: text)]
            }
            for entry in entries {
                if let entry {
                    guard state.bytes + entry.text.utf8.count <= maxBufferedBytes else {
                        state.dropped += 1
                        continue
                    }
                    state.bytes += entry.text.utf8.count
                }
                state.streams[line.stream]!.append(entry)
            }
            // `ready` scans the buffer: only asked when a collection waits, not for every line.
            guard let waiter = state.waiter, state.ready else { return nil }
            state.waiter = nil
            return (waiter.continuation, state.take())
        }
        if let (continuation, lines) = resumed { continuation.resume(returning: lines) }
    }

    /// The stream ended: no more lines.
    func end(error: DockerError?) {
        let resumed = state.withLock { state -> (CheckedContinuation<[String], Never>, [String])? in
            state.ended = true
            if let error { state.failure = "\(error)" }
            guard let waiter = state.waiter else { return nil }
            state.waiter = nil
            return (waiter.continuation, state.take())
        }
        if let (continuation, lines) = resumed { continuation.resume(returning: lines) }
    }

    /// One activation's lines, once both sentinels arrived or `timeout` passed.
    func next(timeout: Duration) async -> [String] {
        if let lines = state.withLock({ $0.ready ? $0.take() : nil }) { return lines }
        let id = state.withLock { state -> Int in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            self?.expire(id)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { continuation in
            let lines = state.withLock { state -> [String]? in
                if state.ready { return state.take() }
                state.waiter = (id, continuation)
                return nil
            }
            if let lines { continuation.resume(returning: lines) }
        }
    }

    /// The wait `id` ran out: hand over what is there.
    private func expire(_ id: Int) {
        let resumed = state.withLock { state -> (CheckedContinuation<[String], Never>, [String])? in
            guard let waiter = state.waiter, waiter.id == id else { return nil }
            state.waiter = nil
            return (waiter.continuation, state.take())
        }
        if let (continuation, lines) = resumed { continuation.resume(returning: lines) }
    }

    /// Splits Docker's `TIMESTAMP text`; the timestamp's fraction is padded to 9 digits, since
    /// Docker trims trailing zeros and timestamps are compared as strings.
    static func splitTimestamp(_ line: String) -> (String, String) {
        guard let space = line.firstIndex(of: " ") else { return (line, "") }
        var timestamp = String(line[..<space])
        if let dot = timestamp.firstIndex(of: "."), timestamp.hasSuffix("Z") {
            let fraction = timestamp[timestamp.index(after: dot)..<timestamp.index(before: timestamp.endIndex)]
            timestamp = String(timestamp[...dot]) + fraction.padding(toLength: 9, withPad: "0", startingAt: 0) + "Z"
        }
        return (timestamp, String(line[line.index(after: space)...]))
    }
}
