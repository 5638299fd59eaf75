// swift-tools-version: 6.2
// Benchmarks compare the library with its peers. They live in their own package so that the
// library's build and CI stay light, and the library never depends on benchmark code.
// Build: swift build -c release --package-path Benchmarks
import PackageDescription

/// Every benchmark executable depends on the library only.
let library: Target.Dependency = .product(name: "Multiprocessing", package: "swift-multiprocessing")

let package = Package(
    name: "Benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // Named, because a path dependency is otherwise known by its directory (a clone's name varies).
        .package(name: "swift-multiprocessing", path: ".."),
    ],
    targets: [
        // Shared by the benchmarks: clock, median, running the Python peer.
        .target(name: "BenchmarkSupport", path: "Sources/BenchmarkSupport"),
        // Start→join latency of each start method, beside posix_spawn and Python's multiprocessing.
        .executableTarget(name: "StartBenchmark", dependencies: [library, "BenchmarkSupport"], path: "Sources/StartBenchmark"),
        // WireEncoder/WireDecoder against JSONEncoder and PropertyListEncoder.
        .executableTarget(name: "CodecBenchmark", dependencies: [library], path: "Sources/CodecBenchmark"),
        // Locks and threads: our Lock against Mutex, NSLock and Python's locks; CPU scaling.
        .executableTarget(name: "SyncBenchmark", dependencies: [library], path: "Sources/SyncBenchmark",
                          exclude: ["sync_peer.py"]),
        // Pipes and queues: messages/s and round-trip latency against Python's multiprocessing.
        .executableTarget(name: "QueueBenchmark", dependencies: [library, "BenchmarkSupport"], path: "Sources/QueueBenchmark",
                          exclude: ["peer.py"]),
        // Async twins' waits: uncontended calls, contended round trips, bursts of waiters.
        .executableTarget(name: "AsyncWaitBenchmark", dependencies: [library, "BenchmarkSupport"], path: "Sources/AsyncWaitBenchmark"),
        // Manager call latency and throughput, beside Python's multiprocessing.Manager().dict().
        .executableTarget(
            name: "ManagerBenchmark",
            dependencies: [
                library,
                "BenchmarkSupport",
                .product(name: "MultiprocessingManager", package: "swift-multiprocessing"),
            ],
            path: "Sources/ManagerBenchmark",
            exclude: ["manager_peer.py"]
        ),
        // The CPU cost of a manager call (client and server), and what WireEncoder would add to it.
        .executableTarget(
            name: "ManagerProtocolBenchmark",
            dependencies: [library, .product(name: "MultiprocessingManager", package: "swift-multiprocessing")],
            path: "Sources/ManagerProtocolBenchmark"
        ),
        // ProcessPool map, latency, recycling and start, beside Python's Pool and ProcessPoolExecutor.
        .executableTarget(name: "PoolBenchmark", dependencies: [library, "BenchmarkSupport", "PoolFloor"], path: "Sources/PoolBenchmark",
                          exclude: ["pool_peer.py", "latency_peer.py"]),
        // The floor under recycling: fork + _exit + waitpid in C, run by PoolBenchmark in a fresh copy of itself.
        .target(name: "PoolFloor", path: "Sources/PoolFloor"),
    ]
)
