#if os(Linux)
public import CMultiprocessing
public import SystemPackage

// The size seals of shared memory. A region's memfd is sealed against shrinking and growing once
// its size is set, and a received one is mapped only if it carries those seals: any process that
// holds the descriptor could otherwise ftruncate it under the others' mappings, and their next
// access past the new end is a SIGBUS.

/// Seals `fd`'s size (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL). `fd` is a memfd made by
/// ``system_memfdCreate(_:)`` (created with MFD_ALLOW_SEALING).
@inlinable package func system_sealSize(_ fd: CInt) throws(Errno) {
    _ = try negatedErrno(retryOnInterrupt: false) { cmp_seal_size(fd) }
}

/// What a received descriptor's seals say about its size.
@usableFromInline package enum SizeSeals: Equatable, Sendable {
    /// Sealed against shrinking and growing: its size is fixed for every holder.
    case fixed
    /// A memfd or shmem file whose size some holder may still change (the seals it has, F_GET_SEALS).
    case resizable(CInt)
    /// Not a memfd (a regular file, a pipe...): it has no seals at all.
    case notAMemfd(Errno)
}

/// The size seals of `fd`.
@inlinable package func system_sizeSeals(_ fd: CInt) -> SizeSeals {
    let r = cmp_get_seals(fd)
    if r < 0 { return .notAMemfd(Errno(rawValue: -r)) }
    let wanted = cmp_seal_fixed_size()
    return r & wanted == wanted ? .fixed : .resizable(r)
}
#endif
