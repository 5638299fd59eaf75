#if os(Linux)
// The parts of `ManagerPlatform` (MultiprocessingSystem) that need the core: Connection's frame
// header and the thread starter that throws the core's error.
package import MultiprocessingSystem

extension ManagerPlatform {
    /// Starts a detached POSIX thread (256 KiB of stack) named `name`.
    package static func startThread(name: String, _ body: @escaping @Sendable () -> Void) throws(MultiprocessingError) {
        try spawnHelperThread(name: name, body)
    }

    // MARK: framing (Connection's 16-byte frame header, see FrameHeader)

    /// The size of a frame header.
    package static let frameHeaderSize = FrameHeader.size

    /// Writes the header of a raw-bytes frame of `length` bytes into `buffer[0..<16]`.
    package static func writeFrameHeader(length: Int, into buffer: UnsafeMutableRawBufferPointer) {
        FrameHeader(kind: .bytes, descriptorCount: 0, length: length).write(to: buffer)
    }

    /// Checks a frame header and returns its body length. A manager frame is a raw-bytes frame
    /// with no descriptors; anything else throws ``MultiprocessingError/Code/malformedFrame``.
    package static func parseFrameHeader(_ raw: UnsafeRawBufferPointer, maximumMessageSize: Int) throws(MultiprocessingError) -> Int {
        let header = try FrameHeader.parse(raw, maximumMessageSize: maximumMessageSize)
        guard header.kind == .bytes, header.descriptorCount == 0 else {
            throw MultiprocessingError(.malformedFrame, "A manager frame must carry raw bytes and no descriptors.")
        }
        return header.length
    }
}
#endif
