import Foundation
import Testing
import WhiskHTTP
import WhiskMessages

/// `/metrics` on the controller and on an invoker: Prometheus text that moves with activations.
@Suite("Metrics", .serialized)
struct MetricsIntegrationTests {
    /// The samples of a Prometheus text exposition: `name{labels}` → value.
    static func samples(_ text: String) -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
        return samples
    }

    static func scrape(_ http: CurlHTTPClient, _ url: String) async throws -> (status: Int, text: String, samples: [String: Double]) {
        let response = try await http.perform(HTTPRequest(method: "GET", url: url, timeout: .seconds(10)))
        let text = String(decoding: response.body, as: UTF8.self)
        return (response.status, text, samples(text))
    }

    @Test func controllerAndInvokerCountersMoveAfterAnActivation() async throws {
        try await withPlatform(invokers: 1) { platform in
            let metricsPort = try Platform.freePort()
            await platform.terminate(invoker: 0)
            try platform.startInvoker(0, extra: ["--metrics-port", String(metricsPort)])
            try await waitUntil("invoker0 is up", timeout: .seconds(60)) { (try? await platform.invokerStates())?["invoker0/0"] == "up" }
            let http = CurlHTTPClient()
            defer { Task { await http.shutdown() } }
            let controllerURL = platform.apiHost + "/metrics"
            let invokerURL = "http://127.0.0.1:\(metricsPort)/metrics"

            try await waitUntil("the invoker's metrics endpoint answers", timeout: .seconds(30)) {
                (try? await Self.scrape(http, invokerURL).status) == 200
            }
            let controllerBefore = try await Self.scrape(http, controllerURL)
            let invokerBefore = try await Self.scrape(http, invokerURL)
            #expect(controllerBefore.status == 200 && invokerBefore.status == 200)
            #expect(controllerBefore.samples.isEmpty || controllerBefore.text.contains("# TYPE"), "Prometheus text")
            let success = #"whisk_activations_total{kind="python:3",status="success"}"#
            let failure = #"whisk_activations_total{kind="python:3",status="application_error"}"#

            try await platform.createAction("greet", code: PlatformIntegrationTests.greet)
            try await platform.createAction("fails", code: "def main(args):\n    return {'error': 'no'}\n")
            // Counted as the records say (a cold start on a loaded machine may end otherwise).
            var statuses: [String] = []
            for n in 0..<3 {
                let reply = try await platform.invoke("greet", ["name": .string("m\(n)")])
                statuses.append(reply.json["response"]?["status"]?.stringValue ?? "none")
            }
            #expect(statuses.contains("success"), "\(statuses)")
            let failed = try await platform.invoke("fails")
            #expect(failed.status == 502 && failed.json["response"]?["status"] == "application error", "\(failed.json)")

            for (who, url, before) in [("controller", controllerURL, controllerBefore), ("invoker", invokerURL, invokerBefore)] {
                let scraped = try await Self.scrape(http, url)
                #expect(scraped.text.contains("# TYPE whisk_activations_total counter"), "\(who)")
                let after = scraped.samples
                let successes = Double(statuses.filter { $0 == "success" }.count)
                #expect((after[success] ?? 0) - (before.samples[success] ?? 0) == successes, "\(who): \(after.filter { $0.key.hasPrefix("whisk_activations") }), replies \(statuses)")
                #expect((after[failure] ?? 0) - (before.samples[failure] ?? 0) == 1, "\(who)")
                #expect((after[#"whisk_activation_run_seconds_count{kind="python:3"}"#] ?? 0) >= 4, "\(who)")
                #expect(after[#"whisk_activation_wait_seconds_count{kind="python:3"}"#] != nil, "\(who)")
                #expect(after.keys.contains { $0.hasPrefix("whisk_kafka_consumer_lag{") }, "\(who): consumer lag")
            }
            let controller = try await Self.scrape(http, controllerURL).samples
            #expect((controller[#"whisk_activation_end_to_end_seconds_count{kind="python:3"}"#] ?? 0) >= 4)
            let invoker = try await Self.scrape(http, invokerURL).samples
            #expect(invoker[#"whisk_containers{state="warm"}"#].map { $0 >= 1 } == true, "\(invoker.filter { $0.key.hasPrefix("whisk_containers") })")
            #expect(invoker[#"whisk_activation_init_seconds_count{kind="python:3"}"#].map { $0 >= 1 } == true, "cold starts have an init time")

            // An activation with an instance ID, long enough to outlive a heartbeat: its entry
            // reaches the maps, with a publication lag.
            try await platform.createAction("linger", code: "import time\ndef main(args):\n    time.sleep(2)\n    return {}\n")
            _ = try await platform.invoke("linger", ["instanceID": "metrics-0"], result: true)
            try await waitUntil("the invoker reports a publication lag", timeout: .seconds(20)) {
                ((try? await Self.scrape(http, invokerURL).samples["whisk_addressmap_publication_lag_seconds_count"]) ?? 0) >= 1
            }
            #expect(try await Self.scrape(http, controllerURL).samples["whisk_addressmap_entries"] != nil)
        }
    }
}
