// swift-tools-version: 6.1
import PackageDescription

// Benchmarks against peers. A separate package so that the library's own build stays lean;
// build with `swift build -c release` and run the executables from .build/release.
let package = Package(
    name: "swift-multiprocessing-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "swift-multiprocessing", path: ".."),
    ],
    targets: [
        // Pipes and queues: messages/s and round-trip latency against Python's multiprocessing.
        .executableTarget(
            name: "QueueBenchmark",
            dependencies: [.product(name: "Multiprocessing", package: "swift-multiprocessing")],
            exclude: ["peer.py"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
