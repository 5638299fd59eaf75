// swift-tools-version: 6.1
import PackageDescription

// Benchmarks compare the library with its peers; a separate package so that the library never
// depends on Foundation or on benchmark code.
let package = Package(
    name: "Benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // Named, because a path dependency is otherwise known by its directory (a worktree's name varies).
        .package(name: "swift-multiprocessing", path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "CodecBenchmark",
            dependencies: [.product(name: "Multiprocessing", package: "swift-multiprocessing")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
