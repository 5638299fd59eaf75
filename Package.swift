// swift-tools-version: 6.1
import PackageDescription

/// Strict settings shared by every target: Swift 6 mode is the default for tools 6.x,
/// so this only adds what 6 mode leaves off.
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "swift-multiprocessing",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Multiprocessing", targets: ["Multiprocessing"]),
        .library(name: "MPCopy", targets: ["MPCopy"]),
        .executable(name: "mpcp", targets: ["mpcp"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // What Swift cannot call: _GNU_SOURCE functions, variadic calls and macros.
        .target(name: "CMultiprocessing"),
        // The library: processes, threads, primitives, pipes and queues. No Foundation.
        .target(
            name: "Multiprocessing",
            dependencies: [
                "CMultiprocessing",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strictSettings
        ),
        // mpcp's engine: parallel walk, chunked copy, temp+rename. A library shared by the CLI and tests.
        .target(
            name: "MPCopy",
            dependencies: [
                "Multiprocessing",
                "CMultiprocessing",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strictSettings
        ),
        // The thin mpcp command line.
        .executableTarget(
            name: "mpcp",
            dependencies: [
                "MPCopy",
                "Multiprocessing",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strictSettings
        ),

        // The seed tutorial's examples, one subcommand each: `swift run examples NAME`.
        .executableTarget(
            name: "examples",
            dependencies: [
                "Multiprocessing",
                "MPCopy",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Examples",
            swiftSettings: strictSettings
        ),

        // Tests. Task types live in TestSupport so that both the test runner (the parent) and
        // mp-test-helper (the child, or a parent in scenarios that need a clean main) know them.
        .target(
            name: "TestSupport",
            dependencies: ["Multiprocessing"],
            path: "Tests/TestSupport",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "mp-test-helper",
            dependencies: ["Multiprocessing", "TestSupport"],
            path: "Tests/mp-test-helper",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MultiprocessingTests",
            dependencies: ["Multiprocessing", "TestSupport", "mp-test-helper", "examples"],
            swiftSettings: strictSettings
        ),
        // End-to-end tests of the seed's examples: they run the built `examples` binary.
        .testTarget(
            name: "ExamplesTests",
            dependencies: ["examples"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MPCopyTests",
            dependencies: ["MPCopy", "mpcp"],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
