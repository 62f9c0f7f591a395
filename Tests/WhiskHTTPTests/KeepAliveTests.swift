import Foundation
import Synchronization
import Testing
import WhiskHTTP

#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.1 server on a loopback port, on a thread of its own, that keeps connections
/// alive and counts the connections it accepted. Each answer's body is the server's `name`.
/// `vanish()` resets every open connection and stops listening, as a removed container does.
final class KeepAliveServer: Sendable {
    let port: UInt16
    let name: String
    private let listener: Int32
    private let state = Mutex<(accepted: Int, open: [Int32], stopped: Bool, closedByClient: Int)>((0, [], false, 0))

    init(name: String, port: UInt16 = 0) throws {
        self.name = name
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 16) == 0 else { close(listener); throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        self.listener = listener
        self.port = UInt16(bigEndian: address.sin_port)
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    var accepted: Int { state.withLock { $0.accepted } }
    /// Connections the client closed (the server read their end).
    var closedByClient: Int { state.withLock { $0.closedByClient } }

    private func acceptLoop() {
        while true {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            let stopped = state.withLock { state -> Bool in
                if state.stopped { return true }
                state.accepted += 1
                state.open.append(connection)
                return false
            }
            if stopped { close(connection); return }
            let thread = Thread { [self] in serve(connection) }
            thread.start()
        }
    }

    /// Answers every request on `connection` (headers, then a Content-Length body) until it closes.
    private func serve(_ connection: Int32) {
        var pending = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(connection, &buffer, buffer.count, 0)
            guard count > 0 else {
                if count == 0 { state.withLock { $0.closedByClient += 1 } }
                return
            }
            pending += buffer[0..<count]
            while let end = headerEnd(pending) {
                let head = String(decoding: pending[0..<end], as: UTF8.self).lowercased()
                let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                guard pending.count >= end + 4 + length else { break }
                pending.removeFirst(end + 4 + length)
                let body = Array(name.utf8)
                let reply = Array("HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
                _ = reply.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
        }
    }

    private func headerEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4) where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index
        }
        return nil
    }

    /// Resets every open connection (SO_LINGER 0) and closes the listener.
    func vanish() {
        let open = state.withLock { state -> [Int32] in
            state.stopped = true
            defer { state.open = [] }
            return state.open
        }
        var reset = linger(l_onoff: 1, l_linger: 0)
        for connection in open {
            setsockopt(connection, SOL_SOCKET, SO_LINGER, &reset, socklen_t(MemoryLayout<linger>.size))
            shutdown(connection, Int32(SHUT_RDWR))
            close(connection)
        }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }
}

@Suite("libcurl HTTP client: kept-alive connections")
struct KeepAliveTests {
    private func post(_ client: CurlHTTPClient, _ port: UInt16) async throws -> HTTPResponse {
        try await client.perform(HTTPRequest(method: "POST", url: "http://127.0.0.1:\(port)/run", headers: ["Content-Type: application/json"],
                                             body: Data(#"{"value":{}}"#.utf8), timeout: .seconds(10)))
    }

    @Test func sequentialRequestsShareOneConnection() async throws {
        let server = try KeepAliveServer(name: "a")
        defer { server.vanish() }
        let client = CurlHTTPClient()
        for _ in 0..<5 {
            let response = try await post(client, server.port)
            #expect(response.status == 200)
            #expect(String(decoding: response.body, as: UTF8.self) == "a")
        }
        #expect(server.accepted == 1, "five requests, one after another, over one connection")
        await client.shutdown()
    }

    /// A request that closes its connection takes the kept one and closes it after: what the
    /// invoker sends a container before it removes it, so that the FIN reaches a live peer.
    @Test func aClosingRequestClosesTheKeptConnection() async throws {
        let server = try KeepAliveServer(name: "a")
        defer { server.vanish() }
        let client = CurlHTTPClient()
        #expect(try await post(client, server.port).status == 200)
        let closing = try await client.perform(HTTPRequest(method: "GET", url: "http://127.0.0.1:\(server.port)/", timeout: .seconds(10),
                                                           closesConnection: true))
        #expect(closing.status == 200)
        #expect(server.accepted == 1, "the closing request went over the kept connection")
        let deadline = ContinuousClock.now + .seconds(10)
        while server.closedByClient == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(server.closedByClient == 1, "the client closed the connection after the closing request")
        #expect(try await post(client, server.port).status == 200)
        #expect(server.accepted == 2, "the next request needed a new connection")
        await client.shutdown()
    }

    /// A container removed and another given its address: the kept connection is dead, and the
    /// request goes, on a new connection, to the address it was meant for (the new server).
    @Test func aConnectionWhosePeerVanishedIsReplacedNotFailed() async throws {
        let first = try KeepAliveServer(name: "first")
        let client = CurlHTTPClient()
        #expect(try await post(client, first.port).status == 200)
        #expect(try await post(client, first.port).status == 200)
        #expect(first.accepted == 1, "the client holds a kept connection to the first server")
        first.vanish()
        let second = try KeepAliveServer(name: "second", port: first.port)
        defer { second.vanish() }
        let response = try await post(client, second.port)
        #expect(response.status == 200)
        #expect(String(decoding: response.body, as: UTF8.self) == "second")
        #expect(second.accepted == 1)
        await client.shutdown()
    }
}

/// A loopback listener that never accepts, with its one-place accept queue filled: further
/// connections are never answered (their SYNs are dropped), as an address whose container just
/// vanished answers none.
final class SilentListener {
    let port: UInt16
    private let listener: Int32
    private let filler: Int32

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ready = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && listen(listener, 0) == 0 && getsockname(listener, $0, &length) == 0
            }
        }
        guard ready else { close(listener); throw POSIXError(.EADDRINUSE) }
        // The one connection the queue holds.
        let filler = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(filler, $0, length) == 0 }
        }
        guard connected else { close(filler); close(listener); throw POSIXError(.ECONNREFUSED) }
        self.listener = listener
        self.filler = filler
        self.port = UInt16(bigEndian: address.sin_port)
    }

    deinit {
        close(filler)
        close(listener)
    }
}

@Suite("libcurl HTTP client: connect timeout")
struct ConnectTimeoutTests {
    /// A connection not made within `connectTimeout` is a connect failure (the caller may try
    /// again), not the request's timeout; without a connect timeout the same request times out.
    @Test func aConnectionNotMadeInTimeIsAConnectFailureNotATimeout() async throws {
        let silent = try SilentListener()
        let client = CurlHTTPClient()
        let url = "http://127.0.0.1:\(silent.port)/init"
        let began = ContinuousClock.now
        let connectFailure = await #expect(throws: HTTPTransportError.self) {
            try await client.perform(HTTPRequest(method: "POST", url: url, body: Data("{}".utf8), timeout: .seconds(20), connectTimeout: .milliseconds(300)))
        }
        #expect(ContinuousClock.now - began < .seconds(10), "it ended at the connect timeout, not the request's")
        #expect(connectFailure?.isConnectFailure == true && connectFailure?.isTimeout == false, "\(String(describing: connectFailure))")
        // Positive control: the same silent address without a connect timeout is the request's timeout.
        let timeout = await #expect(throws: HTTPTransportError.self) {
            try await client.perform(HTTPRequest(method: "POST", url: url, body: Data("{}".utf8), timeout: .milliseconds(300)))
        }
        #expect(timeout?.isTimeout == true && timeout?.isConnectFailure == false, "\(String(describing: timeout))")
        await client.shutdown()
    }
}
