/// The position a reader that finishes messages out of order may commit: the lowest offset still
/// in progress, or one past the highest started when none is. Committing it (instead of each
/// message as it starts) means a reader that dies re-reads everything it had not finished, and
/// never skips a message that a later, faster one overtook.
///
/// A pure value: every event returns the position to commit when it moved, nil otherwise.
public struct KafkaCommitWatermark: Sendable, Equatable {
    private var inProgress: Set<Int64> = []
    private var nextToStart: Int64?
    /// The position last returned for committing.
    public private(set) var committed: Int64?

    public init() {}

    /// A message is taken up. Offsets start in increasing order (one partition).
    public mutating func start(_ offset: Int64) {
        // The first offset read is where the reader resumes today: nothing below it to commit.
        if committed == nil { committed = offset }
        inProgress.insert(offset)
        nextToStart = max(nextToStart ?? offset + 1, offset + 1)
    }

    /// A message is done (run and acknowledged, or skipped); returns the new position to commit.
    public mutating func finish(_ offset: Int64) -> Int64? {
        guard inProgress.remove(offset) != nil, let nextToStart else { return nil }
        let position = inProgress.min() ?? nextToStart
        guard position > committed ?? Int64.min else { return nil }
        committed = position
        return position
    }

    /// Offsets started and not finished yet.
    public var pending: Int { inProgress.count }
}
