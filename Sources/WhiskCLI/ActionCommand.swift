import ArgumentParser
import Foundation
import WhiskMessages

struct ActionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "action", abstract: "Work with actions.",
        subcommands: [Create.self, Update.self, Get.self, List.self, Delete.self, Invoke.self]
    )

    /// What `create` and `update` share.
    struct ActionOptions: ParsableArguments {
        @Argument(help: "Action name.") var name: String
        @Argument(help: "File with the action's code.") var file: String?
        @Option(help: "Runtime kind (default python:3).") var kind: String?
        @Option(help: "Entry function (default main).") var main: String?
        @Option(name: [.customShort("p"), .customLong("param")], parsing: .upToNextOption, help: "Default parameter KEY VALUE (repeatable).") var param: [String] = []
        @Option(name: [.customShort("P"), .customLong("param-file")], help: "JSON file of default parameters.") var paramFile: String?
        @Option(name: [.customShort("a"), .customLong("annotation")], parsing: .upToNextOption, help: "Annotation KEY VALUE (repeatable).") var annotation: [String] = []
        @Option(name: [.customShort("t"), .customLong("timeout")], help: "Time limit in ms.") var timeout: Int?
        @Option(name: [.customShort("m"), .customLong("memory")], help: "Memory limit in MB.") var memory: Int?
        @Option(help: "Comma-separated action names: create a sequence.") var sequence: String?
        @Option(help: "Make it a web action: true, false or raw (the request's query and body passed as they came).") var web: String?
        @Flag(help: "With --sequence: pass intermediate results from one component's instance straight to the next over the namespace's overlay (annotation p2p).") var p2p = false

        /// The PUT body; `requireCode` for create.
        func body(requireCode: Bool) throws -> JSONValue {
            var body: [String: JSONValue] = [:]
            if let sequence {
                let components = sequence.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                guard !components.isEmpty else { throw CLIError("--sequence needs at least one action") }
                body["exec"] = ["kind": "sequence", "components": .array(components.map { .string($0.hasPrefix("/") ? $0 : "/_/\($0)") })]
            } else if let file {
                guard let data = FileManager.default.contents(atPath: file) else {
                    throw CLIError("File '\(file)' is not a valid file or it does not exist")
                }
                var exec: [String: JSONValue] = ["kind": .string(kind ?? "python:3")]
                if file.hasSuffix(".zip") {
                    exec["code"] = .string(data.base64EncodedString())
                    exec["binary"] = true
                } else {
                    exec["code"] = .string(String(decoding: data, as: UTF8.self))
                }
                if let main { exec["main"] = .string(main) }
                body["exec"] = .object(exec)
            } else if requireCode {
                throw CLIError("An action file or --sequence is required")
            }
            var annotations = try ParameterParsing.pairs(annotation)
            if let web {
                // As upstream's wsk: web-export, raw-http and final.
                switch web.lowercased() {
                case "true", "yes": annotations["web-export"] = true; annotations["raw-http"] = false; annotations["final"] = true
                case "raw": annotations["web-export"] = true; annotations["raw-http"] = true; annotations["final"] = true
                case "false", "no": annotations["web-export"] = false; annotations["raw-http"] = false
                default: throw CLIError("--web takes true, false or raw, not '\(web)'")
                }
            }
            if p2p {
                guard sequence != nil else { throw CLIError("--p2p is an option of --sequence") }
                annotations["p2p"] = true
            }
            body.merge(try ParameterParsing.keyValueFields(param: param, paramFile: paramFile, annotations: annotations)) { $1 }
            var limits: [String: JSONValue] = [:]
            if let timeout { limits["timeout"] = .int(Int64(timeout)) }
            if let memory { limits["memory"] = .int(Int64(memory)) }
            if !limits.isEmpty { body["limits"] = .object(limits) }
            return .object(body)
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an action.")
        @OptionGroup var action: ActionOptions
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let (namespace, name) = try splitName(action.name)
                _ = try await client.expectSuccess("PUT", "/api/v1/namespaces/\(escape(namespace))/actions/\(escapePath(name))", body: try action.body(requireCode: true))
                Swift.print("ok: created action \(name)")
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Update (or create) an action.")
        @OptionGroup var action: ActionOptions
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let (namespace, name) = try splitName(action.name)
                _ = try await client.expectSuccess("PUT", "/api/v1/namespaces/\(escape(namespace))/actions/\(escapePath(name))", query: ["overwrite": "true"],
                                                   body: try action.body(requireCode: false))
                Swift.print("ok: updated action \(name)")
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an action.")
        @Argument var name: String
        @Flag(help: "Print only the action's URL.") var url = false
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let (namespace, action) = try splitName(name)
                let path = "/api/v1/namespaces/\(escape(namespace))/actions/\(escapePath(action))"
                let document = try await client.expectSuccess("GET", path)
                if url {
                    // As upstream's wsk: a web action's web URL, else the action's under its own namespace.
                    let owner = document["namespace"]?.stringValue?.split(separator: "/").first.map(String.init) ?? namespace
                    Swift.print("ok: got action \(action)")
                    let exported = document["annotations"]?.arrayValue?.contains { $0["key"] == "web-export" && $0["value"] == true } == true
                    if exported {
                        let parts = action.split(separator: "/").map(String.init)
                        let (package, name) = parts.count == 2 ? (parts[0], parts[1]) : ("default", parts[0])
                        Swift.print("\(client.baseURL)/api/v1/web/\(escape(owner))/\(escape(package))/\(escape(name))")
                    } else {
                        Swift.print("\(client.baseURL)/api/v1/namespaces/\(escape(owner))/actions/\(escapePath(action))")
                    }
                } else {
                    print(document)
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List actions.")
        @Option(name: [.customShort("l"), .customLong("limit")]) var limit = 30
        @Option(name: [.customShort("s"), .customLong("skip")]) var skip = 0
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let list = try await client.expectSuccess("GET", "/api/v1/namespaces/_/actions", query: ["limit": String(limit), "skip": String(skip)])
                Swift.print("actions")
                for action in ((list).arrayValue ?? []) {
                    let kind = action["annotations"]?.arrayValue?.first(where: { $0["key"] == "exec" })?["value"]?.stringValue ?? ""
                    Swift.print("/\(action["namespace"]?.stringValue ?? "")/\(action["name"]?.stringValue ?? "")".padding(toLength: 50, withPad: " ", startingAt: 0) + "private \(kind)")
                }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an action.")
        @Argument var name: String
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let (namespace, action) = try splitName(name)
                _ = try await client.expectSuccess("DELETE", "/api/v1/namespaces/\(escape(namespace))/actions/\(escapePath(action))")
                Swift.print("ok: deleted action \(action)")
            }
        }
    }

    struct Invoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Invoke an action.")
        @Argument var name: String
        @Option(name: [.customShort("p"), .customLong("param")], parsing: .upToNextOption, help: "Parameter KEY VALUE (repeatable).") var param: [String] = []
        @Option(name: [.customShort("P"), .customLong("param-file")], help: "JSON file of parameters.") var paramFile: String?
        @Option(name: .customLong("instance-id"), help: "The instance ID this activation owns in its namespace.") var instanceID: String?
        @Flag(name: [.customShort("b"), .customLong("blocking")], help: "Wait for the result.") var blocking = false
        @Flag(name: [.customShort("r"), .customLong("result")], help: "Wait and print only the result.") var result = false
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await withClient(options) { client in
                let (namespace, action) = try splitName(name)
                var parameters = try ParameterParsing.parameters(flat: param, file: paramFile)
                if let instanceID { parameters["instanceID"] = .string(instanceID) }
                let wait = blocking || result
                let reply = try await client.send("POST", "/api/v1/namespaces/\(escape(namespace))/actions/\(escapePath(action))",
                                                  query: ["blocking": String(wait), "result": String(result)], body: .object(parameters))
                switch reply.status {
                case 200:
                    if !result { Swift.print("ok: invoked /\(namespace)/\(action) with id \(reply.json["activationId"]?.stringValue ?? "")") }
                    print(reply.json)
                case 202:
                    let id = reply.json["activationId"]?.stringValue ?? ""
                    Swift.print(wait ? "ok: invoked /\(namespace)/\(action), but the request has not yet finished, with id \(id)"
                                     : "ok: invoked /\(namespace)/\(action) with id \(id)")
                case 502:
                    FileHandle.standardError.write(Data("error: the action failed\n\(reply.json.pretty)\n".utf8))
                    throw CLIError("the action returned an error", exitCode: 2)
                default:
                    throw CLIError(WskClient.message(reply), exitCode: reply.status == 404 ? 148 : 1)
                }
            }
        }
    }
}

struct ActivationCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "activation", abstract: "Work with activations.", subcommands: [List.self, Get.self, Result.self, Logs.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List activations.")
        @Argument(help: "Only activations of this action.") var name: String?
        @Option(name: [.customShort("l"), .customLong("limit")]) var limit = 30
        @Option(name: [.customShort("s"), .customLong("skip")]) var skip = 0
        @Option(help: "Since (epoch ms).") var since: Int64?
        @Option(help: "Up to (epoch ms).") var upto: Int64?
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                var query = ["limit": String(limit), "skip": String(skip)]
                if let name { query["name"] = name }
                if let since { query["since"] = String(since) }
                if let upto { query["upto"] = String(upto) }
                let list = try await client.expectSuccess("GET", "/api/v1/namespaces/_/activations", query: query)
                Swift.print("activations")
                for activation in ((list).arrayValue ?? []) {
                    let status = activation["statusCode"]?.int64Value == 0 ? "success" : "error"
                    Swift.print("\(activation["activationId"]?.stringValue ?? "") \(activation["name"]?.stringValue ?? "") \(status) \(activation["duration"]?.int64Value ?? 0)ms")
                }
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an activation.")
        @Argument var id: String
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                print(try await client.expectSuccess("GET", "/api/v1/namespaces/_/activations/\(escape(id))"))
            }
        }
    }

    struct Result: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an activation's result.")
        @Argument var id: String
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let response = try await client.expectSuccess("GET", "/api/v1/namespaces/_/activations/\(escape(id))/result")
                print(response["result"] ?? response)
            }
        }
    }

    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an activation's logs.")
        @Argument var id: String
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let logs = try await client.expectSuccess("GET", "/api/v1/namespaces/_/activations/\(escape(id))/logs")
                for line in ((logs["logs"] ?? .null).arrayValue ?? []) {
                    Swift.print(line.stringValue ?? "")
                }
            }
        }
    }
}
