// swift-tools-version: 6.2
// A user's package, as a newcomer writes one: it depends on swift-multiprocessing by path, and its
// tests start children whose task types the test target declares, with Swift Testing and XCTest,
// and without calling bootstrap() anywhere. CI runs `swift test` here (Tests/Fixtures/run-user-package.sh).
import PackageDescription

let package = Package(
    name: "UserPackage",
    dependencies: [
        .package(name: "swift-multiprocessing", path: "../../.."),
    ],
    targets: [
        .target(
            name: "Squares",
            dependencies: [.product(name: "Multiprocessing", package: "swift-multiprocessing")]
        ),
        .testTarget(
            name: "SquaresTests",
            dependencies: ["Squares", .product(name: "Multiprocessing", package: "swift-multiprocessing")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
