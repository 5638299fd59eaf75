// swift-tools-version: 6.2
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
        // Managers live in their own library so that only their users link swift-crypto.
        .library(name: "MultiprocessingManager", targets: ["MultiprocessingManager"]),
        // Authenticated listeners and clients (Python's multiprocessing.connection): they link
        // swift-crypto, so they are a library of their own too.
        .library(name: "MultiprocessingConnection", targets: ["MultiprocessingConnection"]),
        .library(name: "MPCopy", targets: ["MPCopy"]),
        .executable(name: "mpcp", targets: ["mpcp"]),
        // MPI: only with the trait (`swift build --traits MPI`); see docs/distributed.md.
        .library(name: "MultiprocessingMPI", targets: ["MultiprocessingMPI"]),
    ],
    traits: [
        .trait(name: "MPI", description: "Build MultiprocessingMPI against the MPI that pkg-config's mpi-c names (Open MPI or MPICH)."),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.0.0"),
    ],
    targets: [
        // What Swift cannot call: _GNU_SOURCE functions, variadic calls and macros.
        .target(name: "CMultiprocessing"),
        // The one home for system calls: every `system_` wrapper of the libraries and of mpcp, over
        // libc and the C shim. Internal to the package (no product), as NIOPosix is to swift-nio.
        .target(
            name: "MultiprocessingSystem",
            dependencies: [
                "CMultiprocessing",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strictSettings
        ),
        // The library: processes, threads, primitives, pipes and queues. No Foundation.
        .target(
            name: "Multiprocessing",
            dependencies: [
                "CMultiprocessing",
                "MultiprocessingSystem",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strictSettings
        ),
        // Listener and client over Unix sockets and TCP, and the mutual HMAC-SHA256 handshake
        // that they and the managers share. With the manager, the only targets that link Crypto.
        .target(
            name: "MultiprocessingConnection",
            dependencies: [
                "Multiprocessing",
                "MultiprocessingSystem",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strictSettings
        ),
        // Managers: a server process that owns shared objects, typed proxies, HMAC-SHA256
        // authentication (MultiprocessingConnection's handshake).
        .target(
            name: "MultiprocessingManager",
            dependencies: [
                "Multiprocessing",
                "MultiprocessingConnection",
                "MultiprocessingSystem",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strictSettings
        ),
        // mpcp's engine: parallel walk, chunked copy, temp+rename. A library shared by the CLI and tests.
        .target(
            name: "MPCopy",
            dependencies: [
                "Multiprocessing",
                "MultiprocessingSystem",
                "CMultiprocessing",
                .product(name: "SystemPackage", package: "swift-system"),
                // mpcp --mpi (issue 17): only with the trait.
                .target(name: "MultiprocessingMPI", condition: .when(traits: ["MPI"])),
            ],
            swiftSettings: strictSettings
        ),
        // The thin mpcp command line.
        .executableTarget(
            name: "mpcp",
            dependencies: [
                "MPCopy",
                "Multiprocessing",
                "MultiprocessingSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strictSettings
        ),

        // MPI (issue 16), only with the trait: without it nothing depends on CMPI or CMPIShim, so a plain
        // build needs no MPI and links no MPI_ symbol. CMPI is pkg-config's mpi-c with no link line, so
        // -lmpi (Open MPI) or -lmpich comes from the .pc file; CMPIShim wraps the handles that are
        // macros in one implementation and pointers or ints in the other.
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "mpi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .target(name: "CMPIShim", dependencies: [.target(name: "CMPI", condition: .when(traits: ["MPI"]))]),
        .target(
            name: "MultiprocessingMPI",
            dependencies: [
                "Multiprocessing",
                "MultiprocessingSystem",
                .target(name: "CMPI", condition: .when(traits: ["MPI"])),
                .target(name: "CMPIShim", condition: .when(traits: ["MPI"])),
            ],
            swiftSettings: strictSettings
        ),
        // The MPI demo: `swift run --traits MPI mpi-map 1000000`, under mpirun or alone.
        .executableTarget(
            name: "mpi-map",
            dependencies: [
                "Multiprocessing",
                .target(name: "MultiprocessingMPI", condition: .when(traits: ["MPI"])),
            ],
            path: "Examples/mpi-map",
            swiftSettings: strictSettings
        ),

        // The seed tutorial's examples, one subcommand each: `swift run examples NAME`.
        .executableTarget(
            name: "examples",
            dependencies: [
                "Multiprocessing",
                "MultiprocessingManager",
                "MPCopy",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Examples",
            exclude: ["mpi-map"],
            swiftSettings: strictSettings
        ),

        // Tests. A test's children run the test binary itself (the library enters a child before
        // the test runner's main). Task types live in TestSupport so that mp-test-helper (a parent
        // in scenarios that need a clean main, or another program to run children in) knows them too.
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
        // Parent-side test utilities (Foundation): finding built binaries, reading /proc.
        .target(name: "TestHarness", path: "Tests/TestHarness", swiftSettings: strictSettings),
        .testTarget(
            name: "MultiprocessingTests",
            dependencies: ["Multiprocessing", "MultiprocessingSystem", "TestSupport", "TestHarness", "mp-test-helper", "examples"],
            swiftSettings: strictSettings
        ),

        // Manager tests: their own task types and helper, so the core helper never links Crypto.
        .target(
            name: "ManagerTestSupport",
            dependencies: ["Multiprocessing", "MultiprocessingManager"],
            path: "Tests/ManagerTestSupport",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "mp-manager-helper",
            dependencies: ["Multiprocessing", "MultiprocessingManager", "ManagerTestSupport"],
            path: "Tests/mp-manager-helper",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "ManagerTests",
            dependencies: ["Multiprocessing", "MultiprocessingManager", "MultiprocessingConnection", "MultiprocessingSystem", "ManagerTestSupport", "TestHarness", "mp-manager-helper", "examples"],
            swiftSettings: strictSettings
        ),
        // Listener, client and their handshake: real sockets, real child processes (the test
        // binary itself), so the task types live in the test target.
        .testTarget(
            name: "ConnectionTests",
            dependencies: ["Multiprocessing", "MultiprocessingConnection", "TestHarness"],
            swiftSettings: strictSettings
        ),
        // End-to-end tests of the seed's examples: they run the built `examples` binary.
        .testTarget(
            name: "ExamplesTests",
            dependencies: ["examples", "TestHarness"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MPCopyTests",
            dependencies: ["MPCopy", "mpcp", "TestHarness", "Multiprocessing"],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)

// The API reference (`docs/build-docs.sh`): swift-docc-plugin only when asked for, so that neither
// a user of the libraries nor a plain `swift build` resolves, fetches or builds it.
if Context.environment["MULTIPROCESSING_DOCC"] != nil {
    package.dependencies.append(.package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"))
}
