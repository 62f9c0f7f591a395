import Foundation

/// Writes a ustar archive in memory: the build context for ``DockerClient/buildImage(context:tag:labels:)``.
public struct TarArchive: Sendable {
    private(set) public var data = Data()

    public init() {}

    /// Adds a regular file; `path` is relative, at most 100 bytes.
    public mutating func addFile(path: String, contents: Data, mode: Int = 0o644) throws {
        let name = Array(path.utf8)
        guard !name.isEmpty, name.count <= 100 else {
            throw DockerError(.build, "tar entry name '\(path)' must be 1-100 bytes")
        }
        var header = [UInt8](repeating: 0, count: 512)
        func put(_ bytes: [UInt8], at offset: Int) {
            for (index, byte) in bytes.enumerated() { header[offset + index] = byte }
        }
        func octal(_ value: Int, width: Int) -> [UInt8] {
            Array(String(value, radix: 8).leftPadded(to: width - 1).utf8) + [0]
        }
        put(name, at: 0)
        put(octal(mode, width: 8), at: 100)
        put(octal(0, width: 8), at: 108)
        put(octal(0, width: 8), at: 116)
        put(octal(contents.count, width: 12), at: 124)
        put(octal(0, width: 12), at: 136)
        put(Array("        ".utf8), at: 148)  // checksum counts as spaces while summing
        header[156] = UInt8(ascii: "0")
        put(Array("ustar\u{0}00".utf8), at: 257)
        let checksum = header.reduce(0) { $0 + Int($1) }
        put(Array(String(checksum, radix: 8).leftPadded(to: 6).utf8) + [0, 0x20], at: 148)
        data.append(contentsOf: header)
        data.append(contents)
        let padding = (512 - contents.count % 512) % 512
        data.append(Data(count: padding))
    }

    /// The archive with its two closing zero blocks.
    public var finished: Data { data + Data(count: 1024) }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
