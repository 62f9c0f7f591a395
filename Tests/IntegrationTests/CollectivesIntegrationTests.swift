import Foundation
import Testing
import WhiskMessages

/// The SDK's collectives among instances spread over two invokers.
@Suite("SDK collectives end to end", .serialized)
struct CollectivesIntegrationTests {
    /// Starts one activation per member (non-blocking) and returns every record once all ended.
    func runGroup(_ platform: Platform, size: Int, extra: [String: JSONValue] = [:]) async throws -> [JSONValue] {
        let ids = (0..<size).map { JSONValue.string("w\($0)") }
        var activations: [String] = []
        for index in 0..<size {
            var parameters: [String: JSONValue] = ["ids": .array(ids), "instanceID": .string("w\(index)"), "timeout": 60]
            parameters.merge(extra) { $1 }
            let reply = try await platform.invoke("collectives", .object(parameters), blocking: false)
            #expect(reply.status == 202, "\(reply.json)")
            activations.append(try #require(reply.json["activationId"]?.stringValue))
        }
        var records: [JSONValue] = []
        try await waitUntil("all \(size) members finished", timeout: .seconds(180)) {
            records = []
            for id in activations {
                let reply = try await platform.request("GET", "/api/v1/namespaces/_/activations/\(id)")
                guard reply.status == 200 else { return false }
                records.append(reply.json)
            }
            return true
        }
        return records
    }

    func createAction(_ platform: Platform) async throws {
        let code = try OverlayIntegrationTests.source("examples/collectives.py")
        let reply = try await platform.request("PUT", "/api/v1/namespaces/_/actions/collectives",
                                               json: ["exec": ["kind": "python:3", "code": .string(code)], "limits": ["memory": 128, "timeout": 120_000]])
        #expect(reply.status == 200, "\(reply.json)")
    }

    @Test(arguments: [1, 2, 17])
    func everyCollectiveIsCorrect(size: Int) async throws {
        try await withPlatform { platform in
            try await createAction(platform)
            let records = try await runGroup(platform, size: size)
            let results = records.map { $0["response"]?["result"] ?? .null }
            for result in results {
                #expect(result["error"] == nil, "\(result)")
                #expect(result["chunkOK"] == true)
                #expect(result["allreduce"] == [.int(Int64(size)), .int(Int64(size * (size - 1) / 2))])
                for check in ["ringOK", "chainOK", "allgatherOK", "alltoallOK"] {
                    #expect(result[check] == true, "\(check): \(result)")
                }
            }
            #expect(Set(results.compactMap { $0["digest"]?.stringValue }).count == 1, "every member got the root's broadcast")
            #expect(results.first { $0["rank"] == 0 }?["gatheredOK"] == true)
            #expect(Set(results.compactMap { $0["rank"]?.int64Value }) == Set((0..<Int64(size))))
            if size == 17 {
                // 17 × 128 MB is more than one invoker's 2,048 MB: the group spans both.
                let root = try #require(results.first { $0["rank"] == 0 })
                let placement = root["invokers"]?.objectValue ?? [:]
                #expect(placement.count == 17)
                #expect(Set(placement.values) == [0, 1], "members on both invokers: \(placement)")
            }
        }
    }

    @Test func aMissingPeerFailsTheOthersWithAClearError() async throws {
        try await withPlatform(invokers: 1) { platform in
            try await createAction(platform)
            let records = try await runGroup(platform, size: 3, extra: ["skip": "w2", "timeout": 5])
            let errors = records.compactMap { $0["response"]?["result"]?["error"]?.stringValue }
            #expect(errors.count == 2, "\(records.map { $0["response"] ?? .null })")
            // Both members that did join name the one that did not (a mesh, not a star around a root).
            #expect(errors.allSatisfy { $0.contains("did not join the group") && $0.contains("w2") }, "\(errors)")
        }
    }
}
