import Foundation
import Testing
@testable import WhiskCLI
import WhiskMessages

@Suite("wsk argument parsing")
struct CLITests {
    @Test func paramValuesAreJSONWhenValidElseStrings() throws {
        let parameters = try ParameterParsing.pairs(["name", "Jane", "count", "3", "tags", "[\"a\"]", "flag", "true", "quoted", "\"x\"", "obj", "{\"a\":1}", "bad", "{nope"])
        #expect(parameters["name"] == "Jane")
        #expect(parameters["count"] == 3)
        #expect(parameters["tags"] == ["a"])
        #expect(parameters["flag"] == true)
        #expect(parameters["quoted"] == "x")
        #expect(parameters["obj"] == ["a": 1])
        #expect(parameters["bad"] == "{nope")
    }

    @Test func oddParamListIsAnError() {
        #expect(throws: CLIError.self) { try ParameterParsing.pairs(["name"]) }
    }

    @Test func invokeParsesRepeatedParamsAndInstanceID() throws {
        let command = try WskCommand.parseAsRoot(["action", "invoke", "hello", "-p", "a", "1", "-p", "b", "two", "--instance-id", "7", "-r"])
        let invoke = try #require(command as? ActionCommand.Invoke)
        #expect(invoke.name == "hello")
        #expect(invoke.param == ["a", "1", "b", "two"])
        #expect(invoke.instanceID == "7")
        #expect(invoke.result && !invoke.blocking)
    }

    @Test func createBuildsThePutBody() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("wsk-test-\(UUID().uuidString).py").path
        try "def main(a): return a".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let command = try WskCommand.parseAsRoot(["action", "create", "hello", file, "--timeout", "3000", "--memory", "128", "-p", "greeting", "hi"])
        let create = try #require(command as? ActionCommand.Create)
        let body = try create.action.body(requireCode: true)
        #expect(body["exec"]?["kind"] == "python:3")
        #expect(body["exec"]?["code"] == "def main(a): return a")
        #expect(body["limits"] == ["timeout": 3000, "memory": 128])
        #expect(body["parameters"] == [["key": "greeting", "value": "hi"]])
    }

    @Test func sequenceBody() throws {
        let command = try WskCommand.parseAsRoot(["action", "create", "seq", "--sequence", "a, /guest/b"])
        let create = try #require(command as? ActionCommand.Create)
        #expect(try create.action.body(requireCode: true)["exec"] == ["kind": "sequence", "components": ["/_/a", "/guest/b"]])
        #expect(try create.action.body(requireCode: true)["annotations"] == nil)
    }

    @Test func p2pSequenceBodyCarriesTheAnnotation() throws {
        let command = try WskCommand.parseAsRoot(["action", "create", "seq", "--sequence", "a,b", "--p2p"])
        let create = try #require(command as? ActionCommand.Create)
        #expect(try create.action.body(requireCode: true)["annotations"] == [["key": "p2p", "value": true]])
        let plain = try #require(try WskCommand.parseAsRoot(["action", "create", "x", "x.py", "--p2p"]) as? ActionCommand.Create)
        #expect(throws: CLIError.self) { try plain.action.body(requireCode: false) }
    }

    @Test func missingFileIsAClearError() throws {
        let command = try WskCommand.parseAsRoot(["action", "create", "x", "/no/such/file.py"])
        let create = try #require(command as? ActionCommand.Create)
        #expect(throws: CLIError.self) { try create.action.body(requireCode: true) }
    }

    @Test func qualifiedNames() throws {
        #expect(try splitName("hello") == ("_", "hello"))
        #expect(try splitName("/guest/hello") == ("guest", "hello"))
        #expect(try splitName("utils/echo") == ("_", "utils/echo"))
        #expect(try splitName("/guest/utils/echo") == ("guest", "utils/echo"))
        #expect(escapePath("my pkg/echo") == "my%20pkg/echo")
        #expect(throws: CLIError.self) { try splitName("/a/b/c/d") }
        #expect(throws: CLIError.self) { try splitName("a//b") }
        #expect(throws: CLIError.self) { try splitName("utils/echo", allowPackage: false) }
    }

    @Test func packageBodies() throws {
        let command = try WskCommand.parseAsRoot(["package", "bind", "/guest/utils", "mine", "-p", "greeting", "hi", "--shared", "no"])
        let bind = try #require(command as? PackageCommand.Bind)
        let body = try bind.packageOptions.body(binding: try splitName(bind.package, allowPackage: false))
        #expect(body["binding"] == ["namespace": "guest", "name": "utils"])
        #expect(body["parameters"] == [["key": "greeting", "value": "hi"]])
        #expect(body["publish"] == false)
        let bad = try #require(try WskCommand.parseAsRoot(["package", "create", "p", "--shared", "maybe"]) as? PackageCommand.Create)
        #expect(throws: CLIError.self) { try bad.package.body() }
    }

    @Test func propertiesFile() {
        let properties = WskProperties(path: "/tmp/x", contents: "# comment\nAPIHOST=127.0.0.1:3233\nAUTH = uuid:key\n\nBROKEN\n")
        #expect(properties.values == ["APIHOST": "127.0.0.1:3233", "AUTH": "uuid:key"])
        #expect(WskProperties.baseURL(apiHost: "127.0.0.1:3233") == "http://127.0.0.1:3233")
        #expect(WskProperties.baseURL(apiHost: "openwhisk.example/") == "https://openwhisk.example")
        #expect(WskProperties.baseURL(apiHost: "http://localhost:3233") == "http://localhost:3233")
    }
}
