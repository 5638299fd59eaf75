// swift-tools-version: 6.1
import PackageDescription

// Benchmarks: a separate package so that the library's own build stays free of peers and
// Foundation. Build with `swift build -c release --package-path Benchmarks`.
let package = Package(
    name: "swift-multiprocessing-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // Named, because a path dependency is otherwise known by its folder name (a worktree differs).
        .package(name: "swift-multiprocessing", path: ".."),
    ],
    targets: [
        // Locks and threads: our Lock against Mutex, NSLock and Python's locks; CPU scaling.
        .executableTarget(
            name: "SyncBenchmark",
            dependencies: [.product(name: "Multiprocessing", package: "swift-multiprocessing")],
            exclude: ["sync_peer.py"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
