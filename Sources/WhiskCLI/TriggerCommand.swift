import ArgumentParser
import Foundation
import WhiskMessages

struct TriggerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trigger", abstract: "Work with triggers.", subcommands: [Create.self, Update.self, Fire.self, Get.self, List.self, Delete.self]
    )

    struct TriggerOptions: ParsableArguments {
        @Argument var name: String
        @Option(name: [.customShort("p"), .customLong("param")], parsing: .upToNextOption, help: "Default parameter KEY VALUE (repeatable).") var param: [String] = []
        @Option(name: [.customShort("P"), .customLong("param-file")], help: "JSON file of default parameters.") var paramFile: String?
        @Option(name: [.customShort("a"), .customLong("annotation")], parsing: .upToNextOption, help: "Annotation KEY VALUE (repeatable).") var annotation: [String] = []

        func body() throws -> JSONValue {
            .object(try ParameterParsing.keyValueFields(param: param, paramFile: paramFile, annotations: try ParameterParsing.pairs(annotation)))
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a trigger.")
        @OptionGroup var trigger: TriggerOptions
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let (namespace, name) = try splitName(trigger.name, allowPackage: false)
                _ = try await client.expectSuccess("PUT", "/api/v1/namespaces/\(escape(namespace))/triggers/\(escape(name))", body: try trigger.body())
                Swift.print("ok: created trigger \(name)")
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Update (or create) a trigger.")
        @OptionGroup var trigger: TriggerOptions
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let (namespace, name) = try splitName(trigger.name, allowPackage: false)
                _ = try await client.expectSuccess("PUT", "/api/v1/namespaces/\(escape(namespace))/triggers/\(escape(name))", query: ["overwrite": "true"],
                                                   body: try trigger.body())
                Swift.print("ok: updated trigger \(name)")
            }
        }
    }

    struct Fire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Fire a trigger: its active rules' actions run with its parameters and these.")
        @Argument var name: String
        @Option(name: [.customShort("p"), .customLong("param")], parsing: .upToNextOption, help: "Parameter KEY VALUE (repeatable).") var param: [String] = []
        @Option(name: [.customShort("P"), .customLong("param-file")], help: "JSON file of parameters.") var paramFile: String?
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let (namespace, name) = try splitName(self.name, allowPackage: false)
                let parameters = try ParameterParsing.parameters(flat: param, file: paramFile)
                let reply = try await client.send("POST", "/api/v1/namespaces/\(escape(namespace))/triggers/\(escape(name))", body: .object(parameters))
                switch reply.status {
                case 202: Swift.print("ok: triggered /\(namespace)/\(name) with id \(reply.json["activationId"]?.stringValue ?? "")")
                case 204: Swift.print("ok: triggered /\(namespace)/\(name); it has no active rule, so nothing ran")
                default: throw CLIError(WskClient.message(reply), exitCode: reply.status == 404 ? 148 : 1)
                }
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a trigger and its rules.")
        @Argument var name: String
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let (namespace, name) = try splitName(self.name, allowPackage: false)
                print(try await client.expectSuccess("GET", "/api/v1/namespaces/\(escape(namespace))/triggers/\(escape(name))"))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List triggers.")
        @Option(name: [.customShort("l"), .customLong("limit")]) var limit = 30
        @Option(name: [.customShort("s"), .customLong("skip")]) var skip = 0
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let list = try await client.expectSuccess("GET", "/api/v1/namespaces/_/triggers", query: ["limit": String(limit), "skip": String(skip)])
                Swift.print("triggers")
                for trigger in list.arrayValue ?? [] {
                    Swift.print("/\(trigger["namespace"]?.stringValue ?? "")/\(trigger["name"]?.stringValue ?? "")".padding(toLength: 50, withPad: " ", startingAt: 0) + "private")
                }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a trigger.")
        @Argument var name: String
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let (namespace, name) = try splitName(self.name, allowPackage: false)
                _ = try await client.expectSuccess("DELETE", "/api/v1/namespaces/\(escape(namespace))/triggers/\(escape(name))")
                Swift.print("ok: deleted trigger \(name)")
            }
        }
    }
}

struct RuleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rule", abstract: "Work with rules.", subcommands: [Create.self, Update.self, Enable.self, Disable.self, Status.self, Get.self, List.self, Delete.self]
    )

    /// What the API takes for a rule's trigger and action: fully qualified, as upstream's wsk
    /// sends them (`name` and `pkg/name` are in the caller's namespace, `_`).
    static func qualified(_ name: String) -> String {
        name.hasPrefix("/") ? name : "/_/\(name)"
    }

    /// `POST` of a rule's new status (enable, disable).
    static func setStatus(_ name: String, _ status: String, options: GlobalOptions, said: String) async throws {
        try await withClient(options) { client in
            _ = try await client.expectSuccess("POST", try RuleCommand.path(name), body: ["status": .string(status)])
            Swift.print("ok: \(said) rule \(name)")
        }
    }

    static func path(_ name: String) throws -> String {
        let (namespace, rule) = try splitName(name, allowPackage: false)
        return "/api/v1/namespaces/\(escape(namespace))/rules/\(escape(rule))"
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a rule: when TRIGGER fires, ACTION runs.")
        @Argument var name: String
        @Argument var trigger: String
        @Argument var action: String
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                _ = try await client.expectSuccess("PUT", try RuleCommand.path(name), body: ["trigger": .string(RuleCommand.qualified(trigger)), "action": .string(RuleCommand.qualified(action))])
                Swift.print("ok: created rule \(name)")
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Update (or create) a rule.")
        @Argument var name: String
        @Argument var trigger: String
        @Argument var action: String
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                _ = try await client.expectSuccess("PUT", try RuleCommand.path(name), query: ["overwrite": "true"], body: ["trigger": .string(RuleCommand.qualified(trigger)), "action": .string(RuleCommand.qualified(action))])
                Swift.print("ok: updated rule \(name)")
            }
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a rule.")
        @Argument var name: String
        @OptionGroup var options: GlobalOptions
        func run() async throws { try await RuleCommand.setStatus(name, "active", options: options, said: "enabled") }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a rule.")
        @Argument var name: String
        @OptionGroup var options: GlobalOptions
        func run() async throws { try await RuleCommand.setStatus(name, "inactive", options: options, said: "disabled") }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show whether a rule is active.")
        @Argument var name: String
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let rule = try await client.expectSuccess("GET", try RuleCommand.path(name))
                Swift.print("ok: rule \(name) is \(rule["status"]?.stringValue ?? "unknown")")
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a rule.")
        @Argument var name: String
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in print(try await client.expectSuccess("GET", try RuleCommand.path(name))) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List rules.")
        @Option(name: [.customShort("l"), .customLong("limit")]) var limit = 30
        @Option(name: [.customShort("s"), .customLong("skip")]) var skip = 0
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let list = try await client.expectSuccess("GET", "/api/v1/namespaces/_/rules", query: ["limit": String(limit), "skip": String(skip)])
                Swift.print("rules")
                for rule in list.arrayValue ?? [] {
                    Swift.print("/\(rule["namespace"]?.stringValue ?? "")/\(rule["name"]?.stringValue ?? "")".padding(toLength: 50, withPad: " ", startingAt: 0)
                                + "private \(rule["status"]?.stringValue ?? "")")
                }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a rule.")
        @Argument var name: String
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                _ = try await client.expectSuccess("DELETE", try RuleCommand.path(name))
                Swift.print("ok: deleted rule \(name)")
            }
        }
    }
}
