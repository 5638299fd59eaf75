import Glibc
import Multiprocessing

/// Turns SIGINT, SIGTERM and SIGHUP (the terminal went away) into a call on a thread of their own,
/// where any work is safe.
///
/// Signals are blocked in the calling thread (and so in every thread it starts afterwards) and a
/// dedicated thread waits for them with `sigwait(3)`: no code runs in a signal handler.
public enum InterruptWatcher {
    /// Starts watching. Call it first thing in `main`, before any other thread exists.
    ///
    /// - Parameter handler: called on the watcher thread with the signal number for the first
    ///   SIGINT, SIGTERM or SIGHUP. A second one ends the process at once.
    public static func start(_ handler: @escaping @Sendable (CInt) -> Void) {
        let signals = [SIGINT, SIGTERM, SIGHUP]
        system_blockSignals(signals)
        // A daemon thread: it must not keep the process alive at exit.
        _ = try? startThread("mpcp-signals", daemon: true) {
            let first = system_sigwait(signals)
            handler(first)
            let second = system_sigwait(signals)
            exitBySignal(second)
        }
    }

    /// Ends the process by `signal` with its default action, so that the parent sees the usual
    /// "killed by SIGINT" status (the shell's 130), after the caller has cleaned up.
    ///
    /// - Parameter signal: the signal that stopped the copy.
    public static func exitBySignal(_ signal: CInt) -> Never {
        system_defaultAndUnblock(signal)
        system_raise(signal)
        // Unreachable unless the signal is ignored by force: exit with the shell's convention.
        exit(128 + signal)
    }

    /// This process's command line as a shell command that finishes an interrupted copy: every
    /// argument as it was (raw bytes, quoted), with `-u` after the program name unless it is
    /// there, so that what is already complete is kept.
    public static func resumeCommand() -> String {
        var words: [[UInt8]] = []
        for index in 0..<Int(CommandLine.argc) {
            guard let p = CommandLine.unsafeArgv[index] else { continue }
            words.append(Array(UnsafeBufferPointer(start: p, count: strlen(p))).map { UInt8(bitPattern: $0) })
        }
        let options = words.dropFirst().prefix { $0 != Array("--".utf8) }
        if !options.contains(Array("-u".utf8)) && !options.contains(Array("--update".utf8)) {
            words.insert(Array("-u".utf8), at: min(1, words.count))
        }
        return words.map(shellQuoted).joined(separator: " ")
    }

    /// `bytes` as one shell word, quoted the way GNU `ls` and `cp` quote names: as they are when
    /// only safe characters appear, else in single quotes, with `'` as `\'` and any byte that
    /// is not printable (a control character, invalid UTF-8) as `$'\ooo'`, so that the word is
    /// unambiguous and pastes back into a shell byte for byte: `'bad'$'\377\n''name'`.
    public static func shellQuoted(_ bytes: [UInt8]) -> String {
        func isSafe(_ b: UInt8) -> Bool {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): return true
            default: return Array("_@%+=:,./-".utf8).contains(b)
            }
        }
        if bytes.isEmpty { return "''" }
        if bytes.allSatisfy(isSafe) { return String(decoding: bytes, as: UTF8.self) }
        var out: [UInt8] = []
        enum Segment { case none, quoted, escaped }
        var segment = Segment.none
        func enter(_ next: Segment) {
            if segment == next { return }
            if segment != .none { out.append(UInt8(ascii: "'")) }
            switch next {
            case .quoted: out.append(UInt8(ascii: "'"))
            case .escaped: out += Array("$'".utf8)
            case .none: break
            }
            segment = next
        }
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            let printable = printableLength(bytes, at: i)
            if b == UInt8(ascii: "'") {
                enter(.none)
                out += Array("\\'".utf8)
                i += 1
            } else if printable > 0 {
                enter(.quoted)
                out += bytes[i..<(i + printable)]
                i += printable
            } else {
                enter(.escaped)
                switch b {
                case 0x0A: out += Array("\\n".utf8)
                case 0x09: out += Array("\\t".utf8)
                case 0x0D: out += Array("\\r".utf8)
                default:
                    out.append(UInt8(ascii: "\\"))
                    for shift in [6, 3, 0] { out.append(UInt8(ascii: "0") + (b >> UInt8(shift)) & 7) }
                }
                i += 1
            }
        }
        enter(.none)
        return String(decoding: out, as: UTF8.self)
    }

    /// The length of the printable character at `bytes[i]`: 1 for printable ASCII, the length
    /// of a valid UTF-8 sequence that is not a C1 control, else 0.
    private static func printableLength(_ bytes: [UInt8], at i: Int) -> Int {
        let b = bytes[i]
        if b >= 0x20 && b < 0x7F { return 1 }
        let length = b >= 0xF0 && b <= 0xF4 ? 4 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xC2 && b <= 0xDF ? 2 : 0
        guard length > 0, i + length <= bytes.count,
              let text = String(validating: bytes[i..<(i + length)], as: UTF8.self),
              let scalar = text.unicodeScalars.first, !(0x80...0x9F).contains(scalar.value) else { return 0 }
        return length
    }
}
