// swift-tools-version:6.0
// Herald's fuzz targets (libFuzzer + AddressSanitizer). A separate package on purpose: the
// executables only link with `-sanitize=fuzzer` (they call `LLVMFuzzerRunDriver`), so they must
// stay out of the root package's `swift build` / `swift test`. Build and run with
// `scripts/fuzz.sh` (or `make fuzz` / `make fuzz-ci`), which uses its own scratch path:
//   swift build -c debug -Xswiftc -sanitize=fuzzer,address --scratch-path .build-fuzz
import Foundation
import PackageDescription

// SwiftPM names a path dependency after its folder (lowercased), whatever the clone is called.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
let rootIdentity = root.lastPathComponent.lowercased()
let herald = Target.Dependency.product(name: "Herald", package: rootIdentity)

func fuzzTarget(_ name: String) -> Target {
    .executableTarget(name: name, dependencies: [herald, "FuzzSupport"])
}

let package = Package(
    name: "HeraldFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
    ],
    targets: [
        // The C declaration of libFuzzer's entry point (the runtime comes with -sanitize=fuzzer).
        .target(name: "CFuzzDriver"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzDriver"]),
        fuzzTarget("FuzzHTTPParser"),
        fuzzTarget("FuzzWebSocket"),
        fuzzTarget("FuzzJSON"),
        fuzzTarget("FuzzConfig"),
        fuzzTarget("FuzzAuth"),
    ]
)
