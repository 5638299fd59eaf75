// swift-tools-version: 6.1
// Benchmarks live in their own package so that the library's build and CI stay light.
// Build: swift build -c release --package-path Benchmarks
import Foundation
import PackageDescription

/// A path dependency's identity is its folder's name, which differs between clones: derive it.
let library = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "Benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
    ],
    targets: [
        // Start→join latency of each start method, beside posix_spawn and Python's multiprocessing.
        .executableTarget(
            name: "StartBenchmark",
            dependencies: [.product(name: "Multiprocessing", package: library)],
            path: "Sources/StartBenchmark"
        ),
        // Manager call latency and throughput, beside Python's multiprocessing.Manager().dict().
        .executableTarget(
            name: "ManagerBenchmark",
            dependencies: [
                .product(name: "Multiprocessing", package: library),
                .product(name: "MultiprocessingManager", package: library),
            ],
            path: "Sources/ManagerBenchmark",
            exclude: ["manager_peer.py"]
        ),
    ]
)
