import Testing
import WhiskDocker
@testable import WhiskInvoker

@Suite("Log follower")
struct LogFollowerTests {
    static let sentinel = ContainerLogs.sentinel

    func line(_ stream: LogStream, _ time: Int, _ text: String) -> LogLine {
        LogLine(stream: stream, text: "2026-12-06T12:00:00.\(String(time))Z \(text)")
    }

    @Test func cutsAtTheSentinelOfEachStreamAndKeepsWhatFollowsForTheNextActivation() async {
        let follower = LogFollower(maxBufferedBytes: 1 << 20)
        follower.append(line(.stdout, 1, "a"))
        follower.append(line(.stderr, 2, "b"))
        follower.append(line(.stdout, 3, Self.sentinel))
        // The next activation's line on stdout comes before this one's stderr sentinel.
        follower.append(line(.stdout, 4, "next"))
        follower.append(line(.stderr, 5, Self.sentinel))
        let first = await follower.next(timeout: .seconds(5))
        #expect(first == ["2026-12-06T12:00:00.100000000Z stdout: a", "2026-12-06T12:00:00.200000000Z stderr: b"])
        follower.append(line(.stdout, 6, Self.sentinel))
        follower.append(line(.stderr, 7, Self.sentinel))
        #expect(await follower.next(timeout: .seconds(5)) == ["2026-12-06T12:00:00.400000000Z stdout: next"])
    }

    @Test func waitsForTheSentinelsThatArriveAfterTheCall() async {
        let follower = LogFollower(maxBufferedBytes: 1 << 20)
        follower.append(line(.stdout, 1, "early"))
        // The timeout hands over the same lines, so only the time tells the two apart: the
        // sentinels must answer long before it (a broken wake-up fails after 2 minutes).
        let timeout = Duration.seconds(120)
        let clock = ContinuousClock()
        let started = clock.now
        async let lines = follower.next(timeout: timeout)
        try? await Task.sleep(for: .milliseconds(50))
        follower.append(line(.stdout, 2, "tail" + Self.sentinel))  // no newline before the sentinel
        follower.append(line(.stderr, 3, Self.sentinel))
        #expect(await lines == ["2026-12-06T12:00:00.100000000Z stdout: early", "2026-12-06T12:00:00.200000000Z stdout: tail"])
        #expect(clock.now - started < timeout / 2, "answered by the sentinels, not the timeout")
    }

    @Test func withoutSentinelsTheWaitEndsWithWhatIsThere() async {
        let follower = LogFollower(maxBufferedBytes: 1 << 20)
        follower.append(line(.stderr, 1, "only stderr, no sentinels"))
        #expect(await follower.next(timeout: .milliseconds(100)) == ["2026-12-06T12:00:00.100000000Z stderr: only stderr, no sentinels"])
        // Taken: the next activation does not see it again.
        #expect(await follower.next(timeout: .milliseconds(10)) == [])
    }

    @Test func anEndedStreamAnswersAtOnceAndSaysWhyItBroke() async {
        let follower = LogFollower(maxBufferedBytes: 1 << 20)
        follower.append(line(.stdout, 1, "before the break"))
        follower.end(error: DockerError(.transport, "connection reset"))
        let lines = await follower.next(timeout: .seconds(30))
        #expect(lines.first == "2026-12-06T12:00:00.100000000Z stdout: before the break")
        #expect(lines.count == 2 && lines[1].contains("connection reset"), "\(lines)")
        // Nothing more arrives, and every later collection says why.
        #expect(await follower.next(timeout: .seconds(30)) == [lines[1]])
    }

    @Test func linesBeyondTheBufferAreDroppedAndCounted() async {
        let follower = LogFollower(maxBufferedBytes: 10)
        for i in 1...5 { follower.append(line(.stdout, i, "12345")) }
        follower.append(line(.stdout, 6, Self.sentinel))
        follower.append(line(.stderr, 7, Self.sentinel))
        let lines = await follower.next(timeout: .seconds(5))
        #expect(lines.count == 3, "\(lines)")
        #expect(lines.last == "3 log lines were dropped: the container wrote more than the invoker holds between activations.")
        // Room again once taken.
        follower.append(line(.stdout, 8, "12345"))
        follower.append(line(.stdout, 9, Self.sentinel))
        follower.append(line(.stderr, 9, Self.sentinel))
        #expect(await follower.next(timeout: .seconds(5)) == ["2026-12-06T12:00:00.800000000Z stdout: 12345"])
    }
}
