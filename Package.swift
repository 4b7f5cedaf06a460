// swift-tools-version:6.2
import PackageDescription

/// Every target builds in the Swift 6 language mode with the upcoming features the
/// Swift server ecosystem recommends: explicit `any`, imports that stay internal
/// unless a dependency's type is part of public API.
let strictness: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "gatehouse",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gatehouse", targets: ["gatehouse"]),
        .executable(name: "gatehouse-bench", targets: ["gatehouse-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/vapor/sql-kit.git", from: "3.36.0"),
        .package(url: "https://github.com/vapor/sqlite-kit.git", from: "4.5.2"),
        .package(url: "https://github.com/vapor/postgres-kit.git", from: "2.17.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        .target(
            name: "GatehouseCore",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictness
        ),
        /// JOSE primitives on swift-crypto: compact JWS, JWK and JWKS, signing and verification keys.
        .target(
            name: "GatehouseJOSE",
            dependencies: [
                "GatehouseCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: strictness
        ),
        .target(name: "GatehouseMapping", dependencies: ["GatehouseCore"], swiftSettings: strictness),
        .target(
            name: "GatehouseDirectory",
            dependencies: [
                "GatehouseCore",
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "SQLiteKit", package: "sqlite-kit"),
                .product(name: "PostgresKit", package: "postgres-kit"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictness
        ),
        .target(
            name: "GatehouseIssuer",
            dependencies: [
                "GatehouseCore", "GatehouseJOSE",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: strictness
        ),
        .target(
            name: "GatehouseOIDC",
            dependencies: [
                "GatehouseCore", "GatehouseJOSE",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictness
        ),
        /// libxml2, libxmlsec1 (OpenSSL backend, linked directly) and OpenSSL, seen through one header.
        .systemLibrary(
            name: "CXMLSec",
            pkgConfig: "xmlsec1-openssl",
            providers: [.apt(["libxmlsec1-dev", "libxml2-dev", "libssl-dev"])]
        ),
        .target(
            name: "GatehouseSAML",
            dependencies: [
                "GatehouseCore", "CXMLSec",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: strictness
        ),
        .target(
            name: "GatehouseServer",
            dependencies: [
                "GatehouseCore", "GatehouseMapping", "GatehouseDirectory", "GatehouseIssuer", "GatehouseOIDC", "GatehouseSAML",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strictness
        ),
        .executableTarget(
            name: "gatehouse",
            dependencies: [
                "GatehouseServer", "GatehouseOIDC", "GatehouseSAML", "GatehouseDirectory", "GatehouseIssuer", "GatehouseCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictness
        ),
        /// A real OpenID provider on loopback for end-to-end tests and benchmarks: discovery,
        /// JWKS, authorize and token endpoints, with switches for the misbehaviours tests need.
        .target(
            name: "GatehouseTestSupport",
            dependencies: [
                "GatehouseCore", "GatehouseJOSE", "GatehouseServer", "GatehouseDirectory", "GatehouseOIDC", "GatehouseSAML",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: strictness
        ),
        .executableTarget(
            name: "gatehouse-bench",
            dependencies: [
                .product(name: "NIOHTTP1", package: "swift-nio"),
                "GatehouseServer", "GatehouseTestSupport", "GatehouseOIDC", "GatehouseIssuer", "GatehouseSAML",
                "GatehouseDirectory", "GatehouseCore", "GatehouseMapping",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictness
        ),
        .testTarget(name: "GatehouseCoreTests", dependencies: ["GatehouseCore"]),
        .testTarget(name: "GatehouseMappingTests", dependencies: ["GatehouseMapping", "GatehouseCore"]),
        .testTarget(
            name: "GatehouseDirectoryTests",
            dependencies: ["GatehouseDirectory", "GatehouseCore", "GatehouseTestSupport", .product(name: "Logging", package: "swift-log")],
        ),
        .testTarget(
            name: "GatehouseIssuerTests",
            dependencies: ["GatehouseIssuer", "GatehouseJOSE", "GatehouseCore", "GatehouseTestSupport"],
        ),
        .testTarget(
            name: "GatehouseOIDCTests",
            dependencies: ["GatehouseOIDC", "GatehouseJOSE", "GatehouseIssuer", "GatehouseCore", "GatehouseTestSupport",
                           .product(name: "AsyncHTTPClient", package: "async-http-client")],
        ),
        .testTarget(
            name: "GatehouseServerTests",
            dependencies: [
                "GatehouseServer", "GatehouseTestSupport", "GatehouseDirectory", "GatehouseIssuer", "GatehouseOIDC",
                "GatehouseJOSE", "GatehouseCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
        ),
        .testTarget(
            name: "GatehouseSAMLTests",
            dependencies: [
                "GatehouseSAML", "GatehouseCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "GatehouseCLITests",
            dependencies: ["gatehouse", "GatehouseTestSupport", "GatehouseJOSE", "GatehouseCore"]
        ),
    ]
)
