import ArgumentParser
import Foundation
import WhiskMessages

/// `wsk`: a CLI for the OpenWhisk REST API with WhiskMesh's extras.
public struct WskCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "wsk",
        abstract: "WhiskMesh command-line interface (OpenWhisk-compatible).",
        subcommands: [PropertyCommand.self, NamespaceCommand.self, PackageCommand.self, ActionCommand.self, ActivationCommand.self, TriggerCommand.self,
                      RuleCommand.self, AddressMapCommand.self,
                      InvokerCommand.self, AdminCommand.self]
    )
    public init() {}
}

/// Flags every command that talks to the API takes.
public struct GlobalOptions: ParsableArguments {
    @Option(name: .customLong("apihost"), help: "API host, e.g. 127.0.0.1:3233.") public var apiHost: String?
    @Option(name: [.customShort("u"), .customLong("auth")], help: "Authorization key UUID:KEY.") public var auth: String?
    @Flag(name: [.customShort("i"), .customLong("insecure")], help: "Accepted for compatibility (no TLS here).") public var insecure = false
    public init() {}

    func client() -> WskClient {
        let environment = ProcessInfo.processInfo.environment
        let properties = WskProperties.load()
        let host = apiHost ?? environment["WHISK_APIHOST"] ?? properties.values["APIHOST"] ?? "127.0.0.1:3233"
        return WskClient(apiHost: host, auth: auth ?? environment["WHISK_AUTH"] ?? properties.values["AUTH"])
    }
}

/// Runs `body` with a client, printing CLIErrors as `error: ...` and exiting non-zero.
func withClient(_ options: GlobalOptions, _ body: (WskClient) async throws -> Void) async throws {
    let client = options.client()
    do {
        try await body(client)
        await client.shutdown()
    } catch let error as CLIError {
        await client.shutdown()
        FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
        throw ExitCode(error.exitCode)
    }
}

func print(_ value: JSONValue) { Swift.print(value.pretty) }

/// A name as wsk accepts it: `name`, `pkg/name`, `/ns/name` or `/ns/pkg/name`; returns the
/// namespace (`_` when none is given) and the rest (`name` or `pkg/name`).
func splitName(_ qualified: String, allowPackage: Bool = true) throws -> (String, String) {
    let parts = qualified.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    let absolute = qualified.hasPrefix("/")
    let segments = absolute ? Array(parts.dropFirst()) : parts
    guard !segments.contains(where: \.isEmpty) else { throw CLIError("'\(qualified)' is not a valid name (use NAME, PACKAGE/NAME or /NAMESPACE/[PACKAGE/]NAME)") }
    switch (absolute, segments.count) {
    case (false, 1): return ("_", segments[0])
    case (false, 2) where allowPackage: return ("_", "\(segments[0])/\(segments[1])")
    case (true, 2): return (segments[0], segments[1])
    case (true, 3) where allowPackage: return (segments[0], "\(segments[1])/\(segments[2])")
    default: throw CLIError("'\(qualified)' is not a valid name (use NAME, PACKAGE/NAME or /NAMESPACE/[PACKAGE/]NAME)")
    }
}

func escape(_ segment: String) -> String {
    segment.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? segment
}

/// `pkg/name` or `name` for a URL: each segment escaped, the slash kept.
func escapePath(_ path: String) -> String {
    path.split(separator: "/").map { escape(String($0)) }.joined(separator: "/")
}

// MARK: property

struct PropertyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "property", abstract: "Work with the CLI properties.", subcommands: [Set.self, Get.self])

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set properties in ~/.wskprops.")
        @Option(name: .customLong("apihost")) var apiHost: String?
        @Option(name: [.customShort("u"), .customLong("auth")]) var auth: String?
        func run() async throws {
            var properties = WskProperties.load()
            if let apiHost { properties.values["APIHOST"] = apiHost; Swift.print("ok: whisk API host set to \(apiHost)") }
            if let auth { properties.values["AUTH"] = auth; Swift.print("ok: whisk auth set") }
            guard apiHost != nil || auth != nil else { throw ValidationError("nothing to set: give --apihost and/or --auth") }
            try properties.save()
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show properties.")
        @Flag(name: .customLong("apihost")) var apiHost = false
        @Flag(name: [.customShort("u"), .customLong("auth")]) var auth = false
        func run() async throws {
            let properties = WskProperties.load()
            let all = !apiHost && !auth
            if apiHost || all { Swift.print("whisk API host\t\(properties.values["APIHOST"] ?? "")") }
            if auth || all { Swift.print("whisk auth\t\t\(properties.values["AUTH"] ?? "")") }
        }
    }
}

// MARK: invoker, admin

struct InvokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "invoker", abstract: "Show invokers.", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List invokers with their health and memory.")
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let invokers = try await client.expectSuccess("GET", "/invokers", query: ["details": "true"], authenticated: false)
                Swift.print("instance  name          state       memory (free/total MB)")
                for invoker in ((invokers).arrayValue ?? []) {
                    let instance = invoker["instance"]?.int64Value ?? -1
                    let name = invoker["name"]?.stringValue ?? ""
                    let state = invoker["state"]?.stringValue ?? ""
                    Swift.print("\(String(instance).padding(toLength: 10, withPad: " ", startingAt: 0))\(name.padding(toLength: 14, withPad: " ", startingAt: 0))\(state.padding(toLength: 12, withPad: " ", startingAt: 0))\(invoker["freeMemoryMB"]?.int64Value ?? 0)/\(invoker["userMemoryMB"]?.int64Value ?? 0)")
                }
            }
        }
    }
}

struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "admin", abstract: "Administration (like wskadmin).", subcommands: [Namespace.self])

    struct Namespace: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Manage namespaces.", subcommands: [Create.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Create a namespace and print its new UUID:KEY.")
            @Argument var name: String
            @Option(help: "The controller's internal token (default: $WHISK_INTERNAL_TOKEN).") var token: String?
            @OptionGroup var options: GlobalOptions
            func run() async throws {
                try await withClient(options) { client in
                    guard let secret = token ?? ProcessInfo.processInfo.environment["WHISK_INTERNAL_TOKEN"], !secret.isEmpty else {
                        throw CLIError("the controller's internal token is needed: --token or WHISK_INTERNAL_TOKEN")
                    }
                    let identity = try await client.expectSuccess("PUT", "/internal/v1/namespaces/\(escape(name))", headers: ["X-Whisk-Internal-Token: \(secret)"], authenticated: false)
                    Swift.print("\(identity["uuid"]?.stringValue ?? ""):\(identity["key"]?.stringValue ?? "")")
                }
            }
        }
    }
}

extension WskCommand {
    /// Entry point for the `wsk` executable: parses the arguments and runs the chosen command.
    public static func runMain(_ arguments: [String]? = nil) async {
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
