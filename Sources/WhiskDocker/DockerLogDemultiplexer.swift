import Foundation

/// Splits Docker's multiplexed log stream: frames of an 8-byte header (stream byte, three zero
/// bytes, big-endian UInt32 length) followed by that many bytes.
public struct DockerLogDemultiplexer: Sendable {
    private var buffer = Data()

    public init() {}

    /// Feeds bytes in; returns the frames that are now complete (a frame may span feeds).
    public mutating func feed(_ bytes: Data) -> [(LogStream, Data)] {
        buffer.append(bytes)
        var frames: [(LogStream, Data)] = []
        var index = buffer.startIndex
        while buffer.endIndex - index >= 8 {
            let streamByte = buffer[index]
            let length = buffer[(index + 4)..<(index + 8)].reduce(0) { ($0 << 8) | Int($1) }
            guard buffer.endIndex - index - 8 >= length else { break }
            let payload = buffer[(index + 8)..<(index + 8 + length)]
            frames.append((LogStream(rawValue: streamByte) ?? .stdout, Data(payload)))
            index += 8 + length
        }
        buffer = Data(buffer[index...])
        return frames
    }

    /// Bytes of an incomplete last frame.
    public var pendingByteCount: Int { buffer.count }

    /// Demultiplexes a whole log and splits it into lines per stream, in order.
    public static func lines(from data: Data) -> [LogLine] {
        var demultiplexer = DockerLogDemultiplexer()
        var assembler = LogLineAssembler()
        return assembler.lines(from: demultiplexer.feed(data)) + assembler.flush()
    }
}

/// Joins demultiplexed frames into whole lines per stream: a line may span frames (Docker splits
/// long lines), and a frame may hold several lines.
public struct LogLineAssembler: Sendable {
    private var partial: [LogStream: String] = [:]

    public init() {}

    /// The lines that `frames` complete, in order.
    public mutating func lines(from frames: [(LogStream, Data)]) -> [LogLine] {
        var lines: [LogLine] = []
        for (stream, payload) in frames {
            let text = (partial[stream] ?? "") + String(decoding: payload, as: UTF8.self)
            var parts = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            partial[stream] = parts.removeLast()
            lines += parts.map { LogLine(stream: stream, text: $0) }
        }
        return lines
    }

    /// What is left of unterminated lines, as lines.
    public mutating func flush() -> [LogLine] {
        defer { partial.removeAll() }
        return [LogStream.stdout, .stderr].compactMap { stream in
            guard let rest = partial[stream], !rest.isEmpty else { return nil }
            return LogLine(stream: stream, text: rest)
        }
    }
}
