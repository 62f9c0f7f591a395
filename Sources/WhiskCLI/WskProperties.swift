import Foundation

/// `~/.wskprops` (or `$WSK_CONFIG_FILE`): `KEY=VALUE` lines with `APIHOST` and `AUTH`, as the
/// OpenWhisk CLI keeps them; `WHISK_APIHOST` and `WHISK_AUTH` override.
public struct WskProperties: Sendable, Equatable {
    public var values: [String: String]
    public let path: String

    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        environment["WSK_CONFIG_FILE"] ?? ((environment["HOME"] ?? NSHomeDirectory()) + "/.wskprops")
    }

    public init(path: String, contents: String) {
        self.path = path
        var values: [String: String] = [:]
        for line in contents.split(whereSeparator: \.isNewline) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#"), let equals = trimmed.firstIndex(of: "=") else { continue }
            values[String(trimmed[..<equals]).trimmingCharacters(in: .whitespaces)] = String(trimmed[trimmed.index(after: equals)...]).trimmingCharacters(in: .whitespaces)
        }
        self.values = values
    }

    public static func load(path: String = defaultPath()) -> WskProperties {
        WskProperties(path: path, contents: (try? String(contentsOfFile: path, encoding: .utf8)) ?? "")
    }

    public func save() throws {
        let text = values.keys.sorted().map { "\($0)=\(values[$0] ?? "")" }.joined(separator: "\n") + "\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        // The file holds a secret.
        _ = chmod(path, 0o600)
    }

    /// The base URL of the API: `APIHOST` (given `http://` when it names loopback without a scheme,
    /// else `https://`, as wsk does) + `/api/v1`.
    public static func baseURL(apiHost: String) -> String {
        var host = apiHost
        if !host.hasPrefix("http://") && !host.hasPrefix("https://") {
            let loopback = host.hasPrefix("127.") || host.hasPrefix("localhost") || host.hasPrefix("[::1]")
            host = (loopback ? "http://" : "https://") + host
        }
        while host.hasSuffix("/") { host.removeLast() }
        return host
    }
}
