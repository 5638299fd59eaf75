public import CMultiprocessing
public import Glibc

// The locale's character classes, for quoting names as GNU does (Quoting.swift).

/// Whether the locale's characters can be longer than one byte (`MB_CUR_MAX > 1`, as in UTF-8).
@inlinable package func system_multibyteLocale() -> Bool { cmp_mb_cur_max() > 1 }

/// `isprint(3)` of one byte in a single-byte locale.
@inlinable package func system_isprint(_ byte: UInt8) -> Bool { Glibc.isprint(CInt(byte)) != 0 }

/// `mbrtowc(3)` and `iswprint(3)` of the character at the start of `bytes`: its length, -1 when
/// the first byte starts no character, -2 when the character is cut short by the end.
@inlinable package func system_multibyteCharacter(_ bytes: UnsafeBufferPointer<UInt8>, printable: inout Bool) -> Int {
    guard let base = bytes.baseAddress else { return -1 }
    var flag: CInt = 0
    let length = base.withMemoryRebound(to: CChar.self, capacity: bytes.count) { Int(cmp_mb_char($0, bytes.count, &flag)) }
    printable = flag != 0
    return length
}
