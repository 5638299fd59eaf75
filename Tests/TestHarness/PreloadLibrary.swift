import Foundation

/// Builds an `LD_PRELOAD` library from a C fixture (`Tests/Fixtures/<name>`) with `cc -shared`,
/// once per source text (the library's name carries a hash of it), and returns its path.
/// `testFile` is the caller's `#filePath`: the fixture is found beside its test directory.
public func preloadLibrary(fixture: String, testFile: String = #filePath) throws -> String {
    let source = URL(fileURLWithPath: testFile).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/\(fixture)").path
    guard let text = FileManager.default.contents(atPath: source) else { throw PreloadLibraryError("cannot read \(source)") }
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    let stem = URL(fileURLWithPath: source).deletingPathExtension().lastPathComponent
    let library = "\(NSTemporaryDirectory())/mp-\(stem)-\(String(hash, radix: 16)).so"
    if FileManager.default.fileExists(atPath: library) { return library }
    let partial = "\(library).\(getpid())"
    let output = try runProgram("/bin/sh", ["-c", #"cc=$(command -v cc || command -v clang) && "$cc" -std=gnu11 -Wall -Wextra -Werror -O2 -shared -fPIC -o "$1" "$2" -ldl"#,
                                            "sh", partial, source])
    guard output.status == 0 else { throw PreloadLibraryError("cannot build \(source): \(output.stderr)") }
    guard rename(partial, library) == 0 else { throw PreloadLibraryError("cannot rename \(partial)") }
    return library
}

/// A fixture library that could not be built.
public struct PreloadLibraryError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
