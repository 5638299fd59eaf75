// swift-tools-version: 6.1
// libFuzzer targets for the manager server's request decoder and handlers. A package of its own,
// so that the library's build never sees -sanitize=fuzzer. Build and run with Fuzz/run.sh (see
// docs/managers.md, Fuzzing).
import PackageDescription

let package = Package(
    name: "ManagerFuzz",
    dependencies: [
        // Named, because a path dependency is otherwise known by its directory (a clone's name varies).
        .package(name: "swift-multiprocessing", path: ".."),
    ],
    targets: [
        // LLVMFuzzerTestOneInput over ManagerFuzzing: libFuzzer supplies main.
        .executableTarget(
            name: "ManagerRequestFuzzer",
            dependencies: [.product(name: "MultiprocessingManager", package: "swift-multiprocessing")],
            path: "Sources/ManagerRequestFuzzer"
        ),
    ],
    swiftLanguageModes: [.v6]
)
