import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization
import Testing
import WhiskHTTP

/// Holds every request until `count` have arrived, then lets them all answer: it only finishes if
/// the client has `count` requests in flight at once. Gives up after `patience` (503).
actor Gate {
    let count: Int
    private var arrived = 0
    private var waiting: [CheckedContinuation<Bool, Never>] = []

    init(count: Int) { self.count = count }

    func pass(patience: Duration) async -> Bool {
        arrived += 1
        if arrived >= count {
            for waiter in waiting { waiter.resume(returning: true) }
            waiting.removeAll()
            return true
        }
        let timer = Task { [weak self] in
            try? await Task.sleep(for: patience)
            await self?.giveUp()
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { waiting.append($0) }
    }

    private func giveUp() {
        for waiter in waiting { waiter.resume(returning: false) }
        waiting.removeAll()
    }
}

/// Counts requests in the handler at once.
actor Concurrency {
    private(set) var current = 0
    private(set) var highest = 0
    func enter() { current += 1; highest = max(highest, current) }
    func leave() { current -= 1 }
}

/// A real HTTP server on loopback for the duration of `body`.
func withServer(_ configure: (Router<BasicRequestContext>) -> Void, _ body: (String) async throws -> Void) async throws {
    let router = Router()
    configure(router)
    let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
    var logger = Logger(label: "whiskmesh.test-server")
    logger.logLevel = .critical  // a cancelled server logs its shutdown as errors
    let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                          onServerRunning: { channel in portContinuation.yield(channel.localAddress?.port ?? 0) }, logger: logger)
    let server = Task { try await app.runService(gracefulShutdownSignals: []) }
    defer { server.cancel() }
    var ports = portStream.makeAsyncIterator()
    let port = try #require(await ports.next())
    try await body("http://127.0.0.1:\(port)")
}

@Suite("libcurl HTTP client")
struct CurlHTTPClientTests {
    /// The regression: with a pool of 64 blocking threads, the 65th request waited for one of the
    /// first 64 to end; requests that wait for each other (instances of one group) deadlocked.
    @Test func moreRequestsInFlightThanAnyThreadPool() async throws {
        let total = 150
        let gate = Gate(count: total)
        try await withServer({ router in
            router.get("/gate") { _, _ -> Response in
                await gate.pass(patience: .seconds(30)) ? Response(status: .ok) : Response(status: .serviceUnavailable)
            }
        }) { base in
            let client = CurlHTTPClient()
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<total {
                    group.addTask { try await client.perform(WhiskHTTP.HTTPRequest(method: "GET", url: "\(base)/gate", timeout: .seconds(60))).status }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            await client.shutdown()
            #expect(statuses.count == total)
            #expect(statuses.allSatisfy { $0 == 200 }, "some requests were not in flight together: \(statuses.filter { $0 != 200 }.count) gave up")
        }
    }

    @Test func maxInFlightBoundsConcurrentTransfers() async throws {
        let concurrency = Concurrency()
        try await withServer({ router in
            router.get("/slow") { _, _ -> Response in
                await concurrency.enter()
                try await Task.sleep(for: .milliseconds(100))
                await concurrency.leave()
                return Response(status: .ok)
            }
        }) { base in
            let client = CurlHTTPClient(maxInFlight: 2)
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<8 {
                    group.addTask { try await client.perform(WhiskHTTP.HTTPRequest(method: "GET", url: "\(base)/slow", timeout: .seconds(30))).status }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            await client.shutdown()
            #expect(statuses == Array(repeating: 200, count: 8))
            let highest = await concurrency.highest
            #expect(highest >= 1 && highest <= 2)
        }
    }

    @Test func bodyRoundTripsBothWays() async throws {
        try await withServer({ router in
            router.post("/echo") { request, _ -> Response in
                let body = try await request.body.collect(upTo: 16 << 20)
                return Response(status: .ok, body: .init(byteBuffer: body))
            }
        }) { base in
            let client = CurlHTTPClient()
            var payload = Data(count: 3 << 20)
            for index in stride(from: 0, to: payload.count, by: 4096) { payload[index] = UInt8(index / 4096 % 251) }
            let response = try await client.perform(WhiskHTTP.HTTPRequest(method: "POST", url: "\(base)/echo", headers: ["Content-Type: application/octet-stream"],
                                                                body: payload, timeout: .seconds(30)))
            await client.shutdown()
            #expect(response.status == 200)
            #expect(response.body == payload)
        }
    }

    @Test func timeoutIsATransportErrorMarkedAsTimeout() async throws {
        try await withServer({ router in
            router.get("/never") { _, _ -> Response in
                try await Task.sleep(for: .seconds(20))
                return Response(status: .ok)
            }
        }) { base in
            let client = CurlHTTPClient()
            await #expect {
                _ = try await client.perform(WhiskHTTP.HTTPRequest(method: "GET", url: "\(base)/never", timeout: .milliseconds(300)))
            } throws: { error in
                (error as? HTTPTransportError)?.isTimeout == true
            }
            await client.shutdown()
        }
    }

    @Test func cancellingTheTaskEndsTheTransfer() async throws {
        let concurrency = Concurrency()
        try await withServer({ router in
            router.get("/never") { _, _ -> Response in
                await concurrency.enter()
                try await Task.sleep(for: .seconds(20))
                return Response(status: .ok)
            }
        }) { base in
            let client = CurlHTTPClient()
            let call = Task { try await client.perform(WhiskHTTP.HTTPRequest(method: "GET", url: "\(base)/never", timeout: .seconds(60))) }
            while await concurrency.current == 0 { try await Task.sleep(for: .milliseconds(10)) }  // the request reached the server
            call.cancel()
            await #expect(throws: CancellationError.self) { _ = try await call.value }
            // The client still works after a cancellation.
            do {
                let other = try? await client.perform(WhiskHTTP.HTTPRequest(method: "GET", url: "\(base)/missing", timeout: .seconds(10)))
                #expect(other?.status == 404)
            }
            await client.shutdown()
        }
    }

    /// Streams (Docker's events, every container's log) run on the client's one thread next to
    /// requests, take none of `maxInFlight`'s slots, and end when their flag is set.
    @Test func streamsTakeNoRequestSlotAndEndWhenCancelled() async throws {
        try await withServer({ router in
            router.get("/stream") { _, _ -> Response in
                Response(status: .ok, body: ResponseBody { writer in
                    for _ in 0..<400 {
                        try await writer.write(ByteBuffer(string: "tick\n"))
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    try await writer.finish(nil)
                })
            }
        }) { base in
            let client = CurlHTTPClient(maxInFlight: 1)
            let chunks = Mutex(0)
            let flags = [CancelFlag(), CancelFlag()]
            let (ends, endContinuation) = AsyncStream.makeStream(of: Result<Int, HTTPTransportError>.self)
            for flag in flags {
                client.stream(WhiskHTTP.HTTPRequest(method: "GET", url: "\(base)/stream"), cancelled: flag,
                              onChunk: { _ in chunks.withLock { $0 += 1 } }, onEnd: { endContinuation.yield($0) })
            }
            // With both streams open, a request still gets the one slot.
            let reply = try await client.perform(WhiskHTTP.HTTPRequest(method: "GET", url: "\(base)/missing", timeout: .seconds(10)))
            #expect(reply.status == 404)
            while chunks.withLock({ $0 }) < 4 { try await Task.sleep(for: .milliseconds(20)) }
            for flag in flags { flag.set() }
            var ended: [Result<Int, HTTPTransportError>] = []
            for await end in ends {
                ended.append(end)
                if ended.count == 2 { break }
            }
            #expect(ended.allSatisfy { (try? $0.get()) == 0 }, "a cancelled stream ends quietly: \(ended)")
            await client.shutdown()
        }
    }

    @Test func refusedConnectionIsATransportError() async throws {
        let client = CurlHTTPClient()
        await #expect {
            _ = try await client.perform(WhiskHTTP.HTTPRequest(method: "GET", url: "http://127.0.0.1:1/", timeout: .seconds(10)))
        } throws: { error in
            (error as? HTTPTransportError)?.isTimeout == false
        }
        await client.shutdown()
    }

    @Test func requestsAfterShutdownFail() async throws {
        let client = CurlHTTPClient()
        await client.shutdown()
        await #expect(throws: HTTPTransportError.self) {
            _ = try await client.perform(WhiskHTTP.HTTPRequest(method: "GET", url: "http://127.0.0.1:1/", timeout: .seconds(10)))
        }
        await client.shutdown()  // twice is harmless
    }
}
