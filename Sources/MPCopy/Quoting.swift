// How mpcp shows a file name to a person: as GNU `ls --quoting-style=shell-escape` does (and,
// inside a sentence, GNU cp's messages with `shell-escape-always`), so that a name with spaces,
// quotes, a newline or bytes that are not text is visible, unambiguous, and can be pasted back
// into a shell.
import Glibc
public import SystemPackage
import MultiprocessingSystem

/// One piece of a name: a character shown as it is, or bytes shown as escapes.
private enum Piece {
    /// Bytes shown as they are (one ASCII character, or one printable multibyte character).
    case shown(ArraySlice<UInt8>, needsQuotes: Bool, fitsDoubleQuotes: Bool)
    /// A byte shown as `\n`-style or octal escape inside `$'...'`.
    case escaped(UInt8)
    /// A single quote.
    case quote
}

/// The name quoted as GNU's shell-escape style quotes it:
///
/// - a name of only harmless characters is shown bare (`plain`, `été` in a UTF-8 locale);
/// - otherwise it is put in single quotes (`'sp ace'`), or in double quotes when it holds a
///   single quote and nothing a double quote would change (`"it's"`);
/// - control characters and bytes that are not a printable character of the locale are written as
///   `$'\n'` or octal `$'\377'` segments between the quoted parts: `'bad'$'\377\n''name'`.
///
/// With `always`, a name is quoted even when it needs no quotes (`'plain'`), as GNU cp's messages
/// quote a name inside a sentence (`--quoting-style=shell-escape-always`).
///
/// Whether a byte sequence is a printable character follows the locale (`LC_CTYPE`), as GNU's
/// does: call `setlocale(LC_CTYPE, "")` once first.
///
/// - Parameters:
///   - name: the name's bytes.
///   - always: quote a name that needs no quotes too.
/// - Returns: the quoted name's bytes.
public func shellQuoted(_ name: [UInt8], always: Bool = false) -> [UInt8] {
    if name.isEmpty { return Array("''".utf8) }
    let pieces = split(name)
    var needsQuotes = false
    var fitsDoubleQuotes = true
    var hasQuote = false
    for piece in pieces {
        switch piece {
        case .shown(_, let needs, let fits):
            needsQuotes = needsQuotes || needs
            fitsDoubleQuotes = fitsDoubleQuotes && fits
        case .escaped:
            needsQuotes = true
            fitsDoubleQuotes = false
        case .quote:
            needsQuotes = true
            hasQuote = true
        }
    }
    if !needsQuotes && !always { return name }
    let doubleQuote = UInt8(ascii: "\""), singleQuote = UInt8(ascii: "'"), backslash = UInt8(ascii: "\\")
    if hasQuote && fitsDoubleQuotes { return [doubleQuote] + name + [doubleQuote] }
    var out: [UInt8] = [singleQuote]
    var inEscapes = false // inside a $'...' segment
    for piece in pieces {
        switch piece {
        case .shown(let bytes, _, _):
            if inEscapes { out += [singleQuote, singleQuote]; inEscapes = false }
            out += bytes
        case .quote:
            out += [singleQuote, backslash, singleQuote, singleQuote]
            inEscapes = false
        case .escaped(let byte):
            if !inEscapes { out += Array("'$'".utf8); inEscapes = true }
            out.append(backslash)
            switch byte {
            case 0x07: out.append(UInt8(ascii: "a"))
            case 0x08: out.append(UInt8(ascii: "b"))
            case 0x0C: out.append(UInt8(ascii: "f"))
            case 0x0A: out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "t"))
            case 0x0B: out.append(UInt8(ascii: "v"))
            default: out += [0x30 + (byte >> 6), 0x30 + ((byte >> 3) & 7), 0x30 + (byte & 7)]
            }
        }
    }
    out.append(singleQuote)
    return out
}

/// A path quoted for a message, as ``shellQuoted(_:always:)`` quotes its bytes. The result is
/// UTF-8 in a UTF-8 or the C locale, where every byte that is not part of a printable character is
/// escaped.
///
/// - Parameters:
///   - path: the path.
///   - always: quote a path that needs no quotes too.
public func shellQuoted(_ path: FilePath, always: Bool = false) -> String {
    String(decoding: shellQuoted(rawBytes(path), always: always), as: UTF8.self)
}

/// A path's bytes, unchanged (invalid UTF-8 and all), for quoting, JSON and resume markers.
public func rawBytes(_ path: FilePath) -> [UInt8] {
    path.withPlatformString { p in Array(UnsafeBufferPointer(start: p, count: strlen(p))).map { UInt8(bitPattern: $0) } }
}

/// Cuts a name into characters, deciding for each what GNU's quoting decides.
private func split(_ name: [UInt8]) -> [Piece] {
    var pieces: [Piece] = []
    let multibyte = system_multibyteLocale()
    var i = 0
    while i < name.count {
        let c = name[i]
        switch c {
        case 0x07, 0x08, 0x0C, 0x0A, 0x0D, 0x09, 0x0B:
            pieces.append(.escaped(c))
            i += 1
            continue
        case UInt8(ascii: "'"):
            pieces.append(.quote)
            i += 1
            continue
        default:
            break
        }
        if c < 0x80 {
            let ch = Character(Unicode.Scalar(c))
            if c < 0x20 || c == 0x7F {
                pieces.append(.escaped(c))
            } else if ch.isLetter || ch.isNumber || "%+,-./:]_@".contains(ch) {
                pieces.append(.shown(name[i...i], needsQuotes: false, fitsDoubleQuotes: true))
            } else if ch == "{" || ch == "}" {
                // Special only when it is the whole name.
                let alone = name.count == 1
                pieces.append(.shown(name[i...i], needsQuotes: alone, fitsDoubleQuotes: alone))
            } else if ch == "#" || ch == "~" {
                // Special only at the start.
                pieces.append(.shown(name[i...i], needsQuotes: i == 0, fitsDoubleQuotes: i == 0))
            } else {
                // Space and the shell's special characters: space alone may go in double quotes.
                pieces.append(.shown(name[i...i], needsQuotes: true, fitsDoubleQuotes: ch == " "))
            }
            i += 1
            continue
        }
        guard multibyte else {
            // A single-byte locale: the byte is a character of its own.
            if system_isprint(c) {
                pieces.append(.shown(name[i...i], needsQuotes: false, fitsDoubleQuotes: true))
            } else {
                pieces.append(.escaped(c))
            }
            i += 1
            continue
        }
        var printable = false
        let length = name[i...].withUnsafeBufferPointer { system_multibyteCharacter($0, printable: &printable) }
        if length == -2 {
            // A character cut short by the end of the name: every byte left is escaped.
            for byte in name[i...] { pieces.append(.escaped(byte)) }
            break
        }
        if length <= 0 {
            pieces.append(.escaped(c)) // not a character: this byte alone
            i += 1
            continue
        }
        if printable {
            pieces.append(.shown(name[i..<(i + length)], needsQuotes: false, fitsDoubleQuotes: true))
        } else {
            for byte in name[i..<(i + length)] { pieces.append(.escaped(byte)) }
        }
        i += length
    }
    return pieces
}
