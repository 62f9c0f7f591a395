// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "WhiskMesh",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "WhiskMessages", targets: ["WhiskMessages"]),
        .library(name: "WhiskKafka", targets: ["WhiskKafka"]),
        .library(name: "WhiskDocker", targets: ["WhiskDocker"]),
        .executable(name: "whiskmesh", targets: ["whiskmesh"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C-facing targets: modulemaps and shims only.
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .target(name: "CWhiskShims", dependencies: ["CCurl"]),

        // Pure OpenWhisk wire formats, no I/O.
        .target(name: "WhiskMessages"),
        // librdkafka wrapper.
        .target(
            name: "WhiskKafka",
            dependencies: [
                "CRdKafka",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // HTTP over libcurl (TCP or a unix socket), off the cooperative pool.
        .target(
            name: "WhiskHTTP",
            dependencies: ["CCurl", "CWhiskShims"]
        ),
        // Docker Engine API over libcurl and the unix socket.
        .target(
            name: "WhiskDocker",
            dependencies: [
                "WhiskHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // Metrics (swift-metrics) and their Prometheus exposition at /metrics.
        .target(
            name: "WhiskMetrics",
            dependencies: [
                "WhiskMessages",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // The controller: REST API, store, load balancer, invoker health.
        .target(
            name: "WhiskController",
            dependencies: [
                "WhiskKafka", "WhiskMessages", "WhiskMetrics",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The invoker: container pool, action-runtime protocol, acks, heartbeats.
        .target(
            name: "WhiskInvoker",
            dependencies: [
                "WhiskKafka", "WhiskDocker", "WhiskHTTP", "WhiskMessages", "WhiskMetrics",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The wsk-like CLI as a library, so its parsing is unit-tested.
        .target(
            name: "WhiskCLI",
            dependencies: [
                "WhiskHTTP", "WhiskMessages",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The options both daemons share.
        .target(
            name: "WhiskDaemonOptions",
            dependencies: [
                "WhiskKafka",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "whisk-controller",
            dependencies: [
                "WhiskController", "WhiskMetrics", "WhiskDaemonOptions",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "whisk-invoker",
            dependencies: [
                "WhiskInvoker", "WhiskMetrics", "WhiskDaemonOptions",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "wsk", dependencies: ["WhiskCLI"]),
        .executableTarget(
            name: "whiskmesh",
            dependencies: [
                "WhiskKafka", "WhiskDocker", "WhiskMessages",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Unit tests: no services.
        .testTarget(
            name: "WhiskMessagesTests",
            dependencies: ["WhiskMessages"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(name: "WhiskKafkaTests", dependencies: ["WhiskKafka", "WhiskDaemonOptions"]),
        .testTarget(
            name: "WhiskControllerTests",
            dependencies: ["WhiskController", .product(name: "HummingbirdTesting", package: "hummingbird")]
        ),
        .testTarget(name: "WhiskCLITests", dependencies: ["WhiskCLI"]),
        .testTarget(name: "WhiskHTTPTests", dependencies: [
            "WhiskHTTP", .product(name: "Hummingbird", package: "hummingbird"), .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "WhiskInvokerTests", dependencies: ["WhiskInvoker", "WhiskMessages"]),
        // Integration tests: the real broker and the real Docker Engine.
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["WhiskKafka", "WhiskDocker", "WhiskMessages", "WhiskHTTP", "WhiskInvoker"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
