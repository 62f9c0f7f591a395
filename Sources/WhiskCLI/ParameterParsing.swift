import Foundation
import WhiskMessages

/// How `wsk` turns `-p KEY VALUE` pairs and `-P file` into the JSON parameter object.
public enum ParameterParsing {
    /// A value that parses as JSON is that JSON value, anything else a string (as wsk does).
    public static func value(_ text: String) -> JSONValue {
        if let data = text.data(using: .utf8), let value = try? JSONDecoder().decode(JSONValue.self, from: data) {
            return value
        }
        return .string(text)
    }

    /// Pairs up the flat list `[key, value, key, value, ...]` collected from repeated `-p`.
    public static func pairs(_ flat: [String]) throws -> [String: JSONValue] {
        guard flat.count.isMultiple(of: 2) else {
            throw CLIError("Arguments for '-p' must be a key/value pair")
        }
        var result: [String: JSONValue] = [:]
        for index in stride(from: 0, to: flat.count, by: 2) {
            result[flat[index]] = value(flat[index + 1])
        }
        return result
    }

    /// `-P file`: a JSON object; then the `-p` pairs, which win.
    public static func parameters(flat: [String], file: String?) throws -> [String: JSONValue] {
        var result: [String: JSONValue] = [:]
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw CLIError("File '\(file)' is not a valid file or it does not exist")
            }
            guard case .object(let object) = try? JSONDecoder().decode(JSONValue.self, from: data) else {
                throw CLIError("Invalid parameter file '\(file)': it must hold a JSON object")
            }
            result = object
        }
        for (key, value) in try pairs(flat) { result[key] = value }
        return result
    }

    /// The `parameters` and `annotations` fields of an entity's PUT body (actions, packages,
    /// triggers), as `[{"key", "value"}]` in key order; absent when none were given.
    public static func keyValueFields(param: [String], paramFile: String?, annotations: [String: JSONValue]) throws -> [String: JSONValue] {
        var body: [String: JSONValue] = [:]
        let parameters = try parameters(flat: param, file: paramFile)
        if !parameters.isEmpty || !param.isEmpty || paramFile != nil {
            body["parameters"] = .array(parameters.keys.sorted().map { ["key": .string($0), "value": parameters[$0] ?? .null] })
        }
        if !annotations.isEmpty {
            body["annotations"] = .array(annotations.keys.sorted().map { ["key": .string($0), "value": annotations[$0] ?? .null] })
        }
        return body
    }
}

/// A CLI failure: printed as `error: ...`, exit code non-zero.
public struct CLIError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var exitCode: Int32
    public init(_ message: String, exitCode: Int32 = 1) {
        self.message = message
        self.exitCode = exitCode
    }
    public var description: String { message }
}
