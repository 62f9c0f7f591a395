import ArgumentParser
import Foundation
import WhiskMessages

struct PackageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "package", abstract: "Work with packages.",
        subcommands: [Create.self, Update.self, Bind.self, Get.self, List.self, Delete.self]
    )

    /// What `create`, `update` and `bind` share.
    struct PackageOptions: ParsableArguments {
        @Option(name: [.customShort("p"), .customLong("param")], parsing: .upToNextOption, help: "Default parameter KEY VALUE (repeatable).") var param: [String] = []
        @Option(name: [.customShort("P"), .customLong("param-file")], help: "JSON file of default parameters.") var paramFile: String?
        @Option(name: [.customShort("a"), .customLong("annotation")], parsing: .upToNextOption, help: "Annotation KEY VALUE (repeatable).") var annotation: [String] = []
        @Option(help: "Share the package with other namespaces: yes or no.") var shared: String?

        func body(binding: (String, String)? = nil) throws -> JSONValue {
            var body = try ParameterParsing.keyValueFields(param: param, paramFile: paramFile, annotations: try ParameterParsing.pairs(annotation))
            if let shared {
                switch shared.lowercased() {
                case "yes", "true": body["publish"] = true
                case "no", "false": body["publish"] = false
                default: throw CLIError("--shared takes yes or no, not '\(shared)'")
                }
            }
            if let (namespace, name) = binding { body["binding"] = ["namespace": .string(namespace), "name": .string(name)] }
            return .object(body)
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a package.")
        @Argument var name: String
        @OptionGroup var package: PackageOptions
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let (namespace, name) = try splitName(self.name, allowPackage: false)
                _ = try await client.expectSuccess("PUT", "/api/v1/namespaces/\(escape(namespace))/packages/\(escape(name))", body: try package.body())
                Swift.print("ok: created package \(name)")
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Update (or create) a package.")
        @Argument var name: String
        @OptionGroup var package: PackageOptions
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let (namespace, name) = try splitName(self.name, allowPackage: false)
                _ = try await client.expectSuccess("PUT", "/api/v1/namespaces/\(escape(namespace))/packages/\(escape(name))", query: ["overwrite": "true"],
                                                   body: try package.body())
                Swift.print("ok: updated package \(name)")
            }
        }
    }

    struct Bind: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Bind a package (yours or a shared one) under a name of your own, with parameters of its own.")
        @Argument(help: "The package to bind: NAME or /NAMESPACE/NAME.") var package: String
        @Argument(help: "The binding's name.") var name: String
        @OptionGroup var packageOptions: PackageOptions
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let bound = try splitName(package, allowPackage: false)
                let (namespace, name) = try splitName(self.name, allowPackage: false)
                _ = try await client.expectSuccess("PUT", "/api/v1/namespaces/\(escape(namespace))/packages/\(escape(name))", body: try packageOptions.body(binding: bound))
                Swift.print("ok: created binding \(name)")
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a package and its actions.")
        @Argument var name: String
        @Flag(name: [.customShort("s"), .customLong("summary")], help: "Only its actions.") var summary = false
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let (namespace, name) = try splitName(self.name, allowPackage: false)
                let package = try await client.expectSuccess("GET", "/api/v1/namespaces/\(escape(namespace))/packages/\(escape(name))")
                guard summary else { return print(package) }
                Swift.print("package /\(package["namespace"]?.stringValue ?? namespace)/\(name)")
                for action in package["actions"]?.arrayValue ?? [] {
                    Swift.print("   action /\(package["namespace"]?.stringValue ?? namespace)/\(name)/\(action["name"]?.stringValue ?? "")")
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List packages (another namespace's: only those it shares).")
        @Argument(help: "A namespace, e.g. /whisk.system.") var namespace: String?
        @Option(name: [.customShort("l"), .customLong("limit")]) var limit = 30
        @Option(name: [.customShort("s"), .customLong("skip")]) var skip = 0
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let namespace = namespace.map { $0.hasPrefix("/") ? String($0.dropFirst()) : $0 } ?? "_"
                let list = try await client.expectSuccess("GET", "/api/v1/namespaces/\(escape(namespace))/packages", query: ["limit": String(limit), "skip": String(skip)])
                Swift.print("packages")
                for package in list.arrayValue ?? [] {
                    let shared = package["publish"]?.boolValue == true ? "shared" : "private"
                    let binding = package["binding"]?.objectValue != nil ? " (binding)" : ""
                    Swift.print("/\(package["namespace"]?.stringValue ?? "")/\(package["name"]?.stringValue ?? "")".padding(toLength: 50, withPad: " ", startingAt: 0) + shared + binding)
                }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a package (with --force, also its actions).")
        @Argument var name: String
        @Flag(help: "Delete the actions in it too.") var force = false
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let (namespace, name) = try splitName(self.name, allowPackage: false)
                _ = try await client.expectSuccess("DELETE", "/api/v1/namespaces/\(escape(namespace))/packages/\(escape(name))", query: force ? ["force": "true"] : [:])
                Swift.print("ok: deleted package \(name)")
            }
        }
    }
}

struct NamespaceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "namespace", abstract: "Work with namespaces.", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the namespaces your key may use.")
        @OptionGroup var options: GlobalOptions
        func run() async throws {
            try await withClient(options) { client in
                let list = try await client.expectSuccess("GET", "/api/v1/namespaces")
                Swift.print("namespaces")
                for namespace in list.arrayValue ?? [] { Swift.print(namespace.stringValue ?? "") }
            }
        }
    }
}
