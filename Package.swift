// swift-tools-version:6.0
// Herald: an HTTP/WebSocket gateway that lets web clients use Redis as a message broker.
import PackageDescription

let package = Package(
    name: "Herald",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "herald", targets: ["herald"]),
        .library(name: "Herald", targets: ["Herald"]),
    ],
    dependencies: [
        // SHA-1 for the WebSocket handshake (RFC 6455 §4.2.2) and HMAC-SHA256 for tokens. 4.x
        // builds on FoundationEssentials, so the binary carries no ICU data.
        .package(url: "https://github.com/apple/swift-crypto.git", exact: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log.git", exact: "1.16.2"),
        // HDR latency histograms for herald-bench.
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", exact: "0.2.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // TLS to Redis (rediss://): Debian's OpenSSL 3, as hiredis 0.14 has none. swift-crypto's
        // BoringSSL prefixes its symbols, so the two link side by side.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        // permessage-deflate (RFC 7692): Debian's zlib.
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(
            name: "Herald",
            dependencies: [
                "CHiredis",
                "COpenSSL",
                "CZlib",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "herald",
            dependencies: [
                "Herald",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "herald-bench",
            dependencies: [
                "Herald",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .target(
            name: "HeraldTestSupport",
            dependencies: ["Herald", .product(name: "Logging", package: "swift-log")],
            path: "Tests/HeraldTestSupport"
        ),
        .testTarget(
            name: "HeraldTests",
            dependencies: ["Herald", "HeraldTestSupport", "CZlib"],
            path: "Tests/HeraldTests"
        ),
    ]
)
