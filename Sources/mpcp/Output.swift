// What mpcp prints: the progress line, the --stats summary and the --json document
// (its schema is docs/mpcp-json.md).
import MPCopy
import MultiprocessingSystem
import SystemPackage

/// Writes `bytes` to `fd` with the package's one write loop; errors are dropped (a closed stdout
/// must not stop a copy).
func writeAll(_ fd: CInt, _ bytes: [UInt8]) {
    bytes.withUnsafeBytes { b in _ = try? system_writeAll(fd, b) }
}

func printError(_ message: String) { writeAll(systemStderr, Array((message + "\n").utf8)) }

/// `path: operation: why`, the path quoted as GNU quotes names, as bytes (a single-byte locale's
/// printable bytes stay as they are).
func failureLine(_ failure: CopyFailure) -> [UInt8] {
    let why = failure.detail ?? failure.errno.map { "\($0)" } ?? "failed"
    return Array("mpcp: ".utf8) + shellQuoted(rawBytes(failure.path)) + Array(": \(failure.operation): \(why)\n".utf8)
}

// MARK: - numbers

func human(_ bytes: Double) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = bytes
    var unit = 0
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(Int(value)) B" : fixed(value, 1) + " " + units[unit]
}

func fixed(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else { return "-" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = Int((value * scale).rounded())
    let whole = scaled / Int(scale)
    let fraction = String(abs(scaled) % Int(scale))
    return digits == 0 ? "\(whole)" : "\(whole)." + String(repeating: "0", count: digits - fraction.count) + fraction
}

/// 1234567 as "1,234,567".
func grouped(_ n: Int64) -> String {
    let digits = Array(String(n.magnitude))
    var out = ""
    for (i, d) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(d)
    }
    return (n < 0 ? "-" : "") + out
}

private func clock(_ seconds: Double) -> String {
    let s = Int(seconds.rounded(.up))
    let (h, m, r) = (s / 3600, s / 60 % 60, s % 60)
    let mm = h > 0 && m < 10 ? "0\(m)" : "\(m)"
    return (h > 0 ? "\(h):" : "") + mm + ":" + (r < 10 ? "0" : "") + "\(r)"
}

// MARK: - progress

/// `45%  1.2 GiB/2.0 GiB  5166/20003 files  12.3 MiB/s  ETA 0:05`: the percentage and ETA count
/// files as well as bytes (``CopyProgress/fractionDone``).
func progressText(_ p: CopyProgress) -> String {
    progressFields(p).joined(separator: "  ")
}

/// The parts of ``progressText(_:)``: percentage, bytes, files, rate, ETA.
func progressFields(_ p: CopyProgress) -> [String] {
    let rate = p.seconds > 0 ? Double(p.bytesDone) / p.seconds : 0
    let eta = p.secondsLeft.map(clock) ?? "--:--"
    return ["\(fixed(p.fractionDone * 100, 0))%", "\(human(Double(p.bytesDone)))/\(human(Double(p.bytesFound)))",
            "\(p.filesDone)/\(p.filesFound) files", "\(human(rate))/s", "ETA \(eta)"]
}

/// The bar on a terminal, redrawn in place. It must fit on one line of the terminal: a longer
/// line wraps, and each redraw then replaces only its last part, leaving a new line behind
/// every time (an 80-column terminal scrolled a line per redraw). The width is read at each
/// redraw, so a resized terminal is followed.
func drawProgress(_ p: CopyProgress) {
    let line = progressBarLine(p, columns: system_terminalColumns(systemStderr))
    writeAll(systemStderr, Array("\r\(line)\u{1B}[K".utf8))
}

/// `[#####-------] 45%  1.2 GiB/2.0 GiB  ...` in at most `columns - 1` characters (a character in
/// the last column makes some terminals wrap): the bar narrows first (to 24 at most, 5 at
/// least), then goes; then the rate and the file counts go; then the rest is cut. An unknown
/// width counts as 80.
func progressBarLine(_ p: CopyProgress, columns: Int?) -> String {
    let room = max((columns ?? 80) - 1, 1)
    var fields = progressFields(p)
    let text = fields.joined(separator: "  ")
    let barWidth = min(24, room - text.count - 3)
    if barWidth >= 5 {
        let filled = min(barWidth, max(0, Int(p.fractionDone * Double(barWidth))))
        return "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: barWidth - filled) + "] " + text
    }
    for dropped in [3, 2] where fields.joined(separator: "  ").count > room { fields.remove(at: dropped) }
    return String(fields.joined(separator: "  ").prefix(room))
}

/// One line per tick where stderr is not a terminal (a log, a pipe), as `rsync --info=progress2`.
func printProgressLine(_ p: CopyProgress) {
    writeAll(systemStderr, Array("mpcp: progress: \(progressText(p))\n".utf8))
}

// MARK: - --stats

/// The summary of `--stats`.
func statsText(_ r: CopyReport) -> String {
    let rate = r.seconds > 0 ? Double(r.bytes) / r.seconds : 0
    var lines = [
        "Files copied: \(grouped(Int64(r.files))) (\(grouped(Int64(r.hardLinks))) hard links, \(grouped(Int64(r.symlinks))) symlinks, "
            + "\(grouped(Int64(r.directories))) directories)",
        "Files skipped: \(grouped(Int64(r.skipped))) up to date, \(grouped(Int64(r.excluded))) excluded",
        "Bytes copied: \(grouped(r.bytes)) (\(human(Double(r.bytes))))",
        "Time: \(fixed(r.seconds, 3)) s",
        "Rate: \(human(rate))/s",
        "Errors: \(r.failures.count)",
    ]
    if r.dryRun { lines.insert("Dry run: nothing was written", at: 0) }
    if r.interrupted { lines.append("Interrupted: yes") }
    return lines.joined(separator: "\n") + "\n"
}

// MARK: - --json

/// A JSON string literal of valid UTF-8 text.
func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F || scalar.value == 0x2028 || scalar.value == 0x2029 {
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

private let base64Alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

/// Standard base64 (RFC 4648, with padding).
func base64(_ bytes: [UInt8]) -> String {
    var out: [UInt8] = []
    var i = 0
    while i < bytes.count {
        let n = min(3, bytes.count - i)
        let b0 = bytes[i], b1 = n > 1 ? bytes[i + 1] : 0, b2 = n > 2 ? bytes[i + 2] : 0
        out.append(base64Alphabet[Int(b0 >> 2)])
        out.append(base64Alphabet[Int((b0 & 3) << 4 | b1 >> 4)])
        out.append(n > 1 ? base64Alphabet[Int((b1 & 15) << 2 | b2 >> 6)] : UInt8(ascii: "="))
        out.append(n > 2 ? base64Alphabet[Int(b2 & 63)] : UInt8(ascii: "="))
        i += 3
    }
    return String(decoding: out, as: UTF8.self)
}

/// `"path":"..."` when the path is UTF-8, else `"path_b64":"..."` with its bytes: lossless either way.
func jsonPathMember(_ path: FilePath) -> String {
    let bytes = rawBytes(path)
    if let text = String(validating: bytes, as: UTF8.self) { return "\"path\":" + jsonString(text) }
    return "\"path_b64\":" + jsonString(base64(bytes))
}

/// The one document `--json` prints (docs/mpcp-json.md).
func jsonDocument(_ r: CopyReport, copied: [FilePath]?) -> String {
    let failures = r.failures.map { f in
        "{" + jsonPathMember(f.path) + ",\"operation\":\(jsonString(f.operation)),"
            + "\"error\":\(jsonString(f.detail ?? f.errno.map { "\($0)" } ?? "failed")),"
            + "\"errno\":\(f.errno.map { "\($0.rawValue)" } ?? "null")}"
    }
    let rate = r.seconds > 0 ? Double(r.bytes) / r.seconds : 0
    var document = "{\"files\":\(r.files),\"bytes\":\(r.bytes),\"directories\":\(r.directories),\"symlinks\":\(r.symlinks),"
        + "\"hardLinks\":\(r.hardLinks),\"skipped\":\(r.skipped),\"excluded\":\(r.excluded),\"failed\":\(r.failures.count),"
        + "\"seconds\":\(fixed(r.seconds, 3)),\"bytesPerSecond\":\(Int(rate)),\"interrupted\":\(r.interrupted),"
        + "\"dryRun\":\(r.dryRun),\"failures\":[\(failures.joined(separator: ","))]"
    if let copied {
        document += ",\"copied\":[" + copied.map { "{" + jsonPathMember($0) + "}" }.joined(separator: ",") + "]"
    }
    return document + ",\"schema\":1}"
}
