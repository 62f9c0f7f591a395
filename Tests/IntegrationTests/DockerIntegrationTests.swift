import Foundation
import Testing
import WhiskDocker

/// Against the real Docker Engine (swarm mode, for overlay networks) that scripts/setup starts.
@Suite("Docker Engine client against the real engine")
struct DockerIntegrationTests {
    @Test func engineAnswers() async throws {
        try await withDocker { docker in
            let version = try await docker.client.version()
            #expect(!version.version.isEmpty)
            #expect(try await docker.client.ping())
        }
    }

    @Test func containerLifecycle() async throws {
        try await withDocker { docker in
            let client = docker.client
            var spec = docker.containerSpec(["sh", "-c", "echo to-stdout; echo to-stderr >&2; echo \"env=$WHISK_TEST_VALUE\"; exec sleep 300"])
            spec.environment = ["WHISK_TEST_VALUE": "42"]
            spec.memoryBytes = 64 * 1024 * 1024
            spec.cpuShares = 256
            let id = try await client.createContainer(spec)
            try await client.startContainer(id)

            let running = try await client.inspectContainer(id)
            #expect(running.state.running)
            #expect(running.labels["org.whiskmesh.test"] == docker.runLabel)
            #expect(running.ipAddress(onNetwork: "bridge") != nil)

            var lines: [LogLine] = []
            try await waitUntil("the container printed its three lines") {
                lines = try await client.containerLogs(id)
                return lines.count >= 3
            }
            #expect(lines.contains(LogLine(stream: .stdout, text: "to-stdout")))
            #expect(lines.contains(LogLine(stream: .stderr, text: "to-stderr")))
            #expect(lines.contains(LogLine(stream: .stdout, text: "env=42")))

            try await client.pauseContainer(id)
            #expect(try await client.inspectContainer(id).state.paused)
            try await client.unpauseContainer(id)
            // Under load the engine can report the old state for a moment after unpause returns.
            try await waitUntil("the container is unpaused") {
                try await client.inspectContainer(id).state.paused == false
            }

            try await client.stopContainer(id, timeout: .seconds(1))
            let exitCode = try await client.waitContainer(id)
            #expect(exitCode != 0, "sleep was ended by a signal")
            #expect(try await client.inspectContainer(id).state.running == false)

            try await client.removeContainer(id)
            await #expect {
                _ = try await client.inspectContainer(id)
            } throws: { error in
                (error as? DockerError)?.isNotFound == true
            }
        }
    }

    @Test func waitReturnsExitCode() async throws {
        try await withDocker { docker in
            let id = try await docker.client.createContainer(docker.containerSpec(["sh", "-c", "exit 7"]))
            try await docker.client.startContainer(id)
            #expect(try await docker.client.waitContainer(id) == 7)
        }
    }

    @Test func overlayNetworkConnectsTwoContainers() async throws {
        try await withDocker { docker in
            let client = docker.client
            var network = NetworkSpec(name: TestEnvironment.uniqueName("whiskmesh-test-overlay"))
            network.labels = docker.labels
            network.subnet = "10.213.0.0/22"
            let networkID = try await client.createNetwork(network)
            // Swarm creates the network in its store first: an inspect right after create can
            // still show an empty driver and no IPAM.
            var inspected = try await client.inspectNetwork(networkID)
            try await waitUntil("the new overlay network is fully visible") {
                inspected = try await client.inspectNetwork(networkID)
                return inspected.driver == "overlay" && !inspected.subnets.isEmpty
            }
            #expect(inspected.driver == "overlay")
            #expect(inspected.attachable)
            #expect(inspected.subnets == ["10.213.0.0/22"])
            #expect(try await client.listNetworks(labels: [docker.labelFilter]).map(\.id) == [networkID])

            // The server starts on the bridge, as action containers do, and is attached afterwards.
            let server = try await client.createContainer(docker.containerSpec(["sh", "-c", "echo hello-over-overlay | nc -l -p 7000"]))
            try await client.startContainer(server)
            try await client.connect(container: server, toNetwork: network.name)
            let serverInspect = try await client.inspectContainer(server)
            let serverIP = try #require(serverInspect.ipAddress(onNetwork: network.name))
            #expect(serverIP.hasPrefix("10.213."))
            #expect(serverInspect.ipAddress(onNetwork: "bridge") != serverIP)

            // The peer starts on the overlay itself and prints its own address there.
            let clientScript = "hostname -i; for i in $(seq 1 100); do nc \(serverIP) 7000 </dev/null && exit 0; sleep 0.1; done; exit 1"
            let peer = try await client.createContainer(docker.containerSpec(["sh", "-c", clientScript], network: network.name))
            try await client.startContainer(peer)
            #expect(try await client.waitContainer(peer, timeout: .seconds(60)) == 0)
            let received = try await client.containerLogs(peer).map(\.text)
            #expect(received.contains("hello-over-overlay"))
            let peerIP = received.first ?? ""
            #expect(peerIP.hasPrefix("10.213.") && peerIP != serverIP, "peer address \(peerIP)")

            try await client.disconnect(container: server, fromNetwork: network.name)
            #expect(try await client.inspectContainer(server).ipAddress(onNetwork: network.name) == nil)
        }
    }

    @Test func connectToMissingNetworkIsAClearError() async throws {
        try await withDocker { docker in
            // A running container, as the invoker attaches: for one that is only created, swarm-mode
            // Docker answers 200 and defers the failure to start.
            let id = try await docker.client.createContainer(docker.containerSpec(["sleep", "30"]))
            try await docker.client.startContainer(id)
            await #expect {
                try await docker.client.connect(container: id, toNetwork: "whiskmesh-no-such-network")
            } throws: { error in
                guard let error = error as? DockerError, let status = error.status else { return false }
                return status >= 400 && error.message.contains("whiskmesh-no-such-network") && error.message.contains("not found")
            }
            await #expect {
                _ = try await docker.client.inspectNetwork("whiskmesh-no-such-network")
            } throws: { error in
                (error as? DockerError)?.isNotFound == true
            }
        }
    }

    /// Without the event the loop below would wait forever: the time limit turns that into a failure.
    @Test(.timeLimit(.minutes(1))) func eventsReportAKilledContainer() async throws {
        try await withDocker { docker in
            let client = docker.client
            let since = Date()
            let events = client.containerEvents(actions: ["die"], labels: [docker.labelFilter], since: since)
            let id = try await client.createContainer(docker.containerSpec(["sleep", "300"]))
            try await client.startContainer(id)
            try await client.killContainer(id)
            var died: DockerEvent?
            for try await event in events where event.containerID == id {
                died = event
                break
            }
            #expect(died?.action == "die")
            #expect(died?.actor.attributes["org.whiskmesh.test"] == docker.runLabel)
            #expect(died?.actor.attributes["exitCode"] == "137")
        }
    }

    @Test func buildImageFromTarContext() async throws {
        try await withDocker { docker in
            var context = TarArchive()
            try context.addFile(path: "Dockerfile", contents: Data("FROM \(TestEnvironment.testImage)\nCOPY greeting.txt /greeting.txt\nCMD [\"cat\", \"/greeting.txt\"]\n".utf8))
            try context.addFile(path: "greeting.txt", contents: Data("built by whiskmesh\n".utf8))
            let tag = "whiskmesh-test/\(docker.runLabel):latest"
            try await docker.client.buildImage(context: context.finished, tag: tag, labels: docker.labels)
            let image = try await docker.client.inspectImage(tag)
            #expect(image.repoTags.contains(tag))
            #expect(image.labels["org.whiskmesh.test"] == docker.runLabel)

            var spec = ContainerSpec(image: tag)
            spec.labels = docker.labels
            let id = try await docker.client.createContainer(spec)
            try await docker.client.startContainer(id)
            #expect(try await docker.client.waitContainer(id) == 0)
            #expect(try await docker.client.containerLogs(id).map(\.text) == ["built by whiskmesh"])
            try await docker.client.removeContainer(id)
        }
    }

    @Test func failedBuildIsAClearError() async throws {
        try await withDocker { docker in
            var context = TarArchive()
            try context.addFile(path: "Dockerfile", contents: Data("FROM \(TestEnvironment.testImage)\nRUN exit 3\n".utf8))
            await #expect {
                try await docker.client.buildImage(context: context.finished, tag: "whiskmesh-test/broken:\(docker.runLabel)", labels: docker.labels)
            } throws: { error in
                (error as? DockerError)?.code == .build
            }
        }
    }

    @Test func fixtureRemovesEverythingItLabelled() async throws {
        var label = ""
        try await withDocker { docker in
            label = docker.labelFilter
            _ = try await docker.client.createContainer(docker.containerSpec(["sleep", "30"]))
            var network = NetworkSpec(name: TestEnvironment.uniqueName("whiskmesh-test-cleanup"))
            network.labels = docker.labels
            _ = try await docker.client.createNetwork(network)
        }
        try await withDocker { docker in
            let containers = try await docker.client.listContainers(labels: [label])
            let networks = try await docker.client.listNetworks(labels: [label])
            #expect(containers.isEmpty)
            #expect(networks.isEmpty)
        }
    }
}

@Suite("Docker log demultiplexing and tar")
struct DockerUnitTests {
    func frame(_ stream: UInt8, _ text: String) -> Data {
        let bytes = Array(text.utf8)
        let length = UInt32(bytes.count)
        return Data([stream, 0, 0, 0, UInt8(length >> 24), UInt8((length >> 16) & 0xff), UInt8((length >> 8) & 0xff), UInt8(length & 0xff)] + bytes)
    }

    @Test func framesSplitAcrossFeedsAreReassembled() {
        let data = frame(1, "hello\n") + frame(2, "oops\n")
        var demultiplexer = DockerLogDemultiplexer()
        var frames: [(LogStream, Data)] = []
        for byte in data { frames += demultiplexer.feed(Data([byte])) }
        #expect(frames.map(\.0) == [.stdout, .stderr])
        #expect(frames.map { String(decoding: $0.1, as: UTF8.self) } == ["hello\n", "oops\n"])
        #expect(demultiplexer.pendingByteCount == 0)
    }

    @Test func linesAreSplitPerStream() {
        let data = frame(1, "a\nb") + frame(2, "x\n") + frame(1, "c\n")
        #expect(DockerLogDemultiplexer.lines(from: data) == [
            LogLine(stream: .stdout, text: "a"), LogLine(stream: .stderr, text: "x"), LogLine(stream: .stdout, text: "bc"),
        ])
    }

    @Test func tarEntryNameIsChecked() {
        var archive = TarArchive()
        #expect(throws: DockerError.self) { try archive.addFile(path: String(repeating: "n", count: 101), contents: Data()) }
    }
}
