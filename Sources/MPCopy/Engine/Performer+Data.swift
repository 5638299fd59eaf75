import CMultiprocessing
import Glibc
import Synchronization
import SystemPackage
import MultiprocessingSystem

// Data movement: the bytes of a file (FICLONE, copy_file_range with SEEK_DATA/SEEK_HOLE,
// read/write as a fallback), the check that the source did not change, and --verify's read-back.

extension Performer {
    /// A short read before the size the file had: it shrank while it was copied.
    static func shrank(expected: Int64, at offset: Int64) -> StepError {
        StepError(operation: "copy", errno: nil,
                  detail: "the file changed while it was copied (it ended at byte \(offset), before byte \(expected)); not copied")
    }

    /// Throws unless the source `input` is still the file the scan saw (`stat`, its `statx`): the
    /// same inode, still a regular file, with the same size, modification time and change time.
    /// Otherwise it changed since the scan, maybe while it was copied, and the copy may hold
    /// content it never had (a zero tail, a mix of old and new), so it must not take its final
    /// name. Comparing with the scan's statx instead of an fstat when the file is opened costs one
    /// call per file instead of two, and also catches a change between the scan and the open.
    func checkUnchanged(_ input: CInt, _ stat: SourceStat) throws(StepError) {
        let now: cmp_stat_t
        do throws(Errno) { now = try system_fstatx(input) } catch { throw StepError(operation: "stat", errno: error) }
        var what: [String] = []
        // Renamed over by another file (a large file's chunks and its finish each open the name,
        // and a small file is opened by its name after the scan).
        if now.ino != stat.ino || (now.dev_major << 32 | now.dev_minor) != stat.dev { what.append("it was replaced") }
        if now.mode & modeTypeMask != modeRegular {
            what.append("it is no longer a regular file")
        } else {
            if Int64(now.size) != stat.size { what.append("its size went from \(stat.size) to \(now.size) bytes") }
            if now.mtime_sec != stat.mtime || now.mtime_nsec != stat.mtimeNanoseconds { what.append("it was modified") }
        }
        if what.isEmpty, now.ctime_sec != stat.ctime || now.ctime_nsec != stat.ctimeNanoseconds { what.append("its inode changed") }
        guard what.isEmpty else {
            throw StepError(operation: "copy", errno: nil,
                            detail: "the file changed while it was copied (\(what.joined(separator: ", "))); not copied")
        }
    }

    /// Whether `fd` is a regular file: asked only before a failed clone or copy_file_range turns
    /// that call off for the rest of the run, since a FIFO or device put in a file's place since
    /// the scan fails them too, and must not cost every later file its fast path.
    func isRegularFile(_ fd: CInt) -> Bool {
        (try? system_fstatx(fd)).map { $0.mode & modeTypeMask == modeRegular } ?? false
    }

    /// Copies the data of a whole file (or, from chunks, a range), keeping holes.
    func copyContents(_ input: CInt, _ output: CInt, _ stat: SourceStat, whole: Bool) throws(StepError) -> Int64 {
        if stat.size == 0 { return 0 }
        if whole && cloneWorks.load(ordering: .relaxed) && !options.verify {
            do throws(Errno) {
                try system_ficlone(output, input)
                bytesDone.add(stat.size, ordering: .relaxed)
                return stat.size
            } catch {
                switch error {
                case .notSupported, .invalidArgument, .improperLink, .badFileDescriptor, .noFunction:
                    if isRegularFile(input) { cloneWorks.store(false, ordering: .relaxed) }
                default: break
                }
            }
        }
        let copied = try copyRange(input, output, from: 0, to: stat.size, sparse: stat.isSparse)
        if stat.isSparse {
            // A trailing hole leaves the file short: set the size.
            do throws(Errno) { try system_ftruncate(output, stat.size) } catch { throw StepError(operation: "truncate", errno: error) }
        }
        return copied
    }

    /// Copies `[from, to)`. With `sparse`, only the data segments (SEEK_DATA/SEEK_HOLE), so holes stay holes.
    func copyRange(_ input: CInt, _ output: CInt, from: Int64, to end: Int64, sparse: Bool) throws(StepError) -> Int64 {
        if !sparse { return try copySegment(input, output, from: from, to: end) }
        var position = from
        var total: Int64 = 0
        while position < end {
            let data: Int64?
            do throws(Errno) { data = try system_lseek(input, position, systemSeekData) } catch { throw StepError(operation: "seek data", errno: error) }
            guard let data, data < end else { break }
            let hole: Int64?
            do throws(Errno) { hole = try system_lseek(input, data, systemSeekHole) } catch { throw StepError(operation: "seek hole", errno: error) }
            let segmentEnd = min(hole ?? end, end)
            total += try copySegment(input, output, from: data, to: segmentEnd)
            position = segmentEnd
        }
        return total
    }

    func copySegment(_ input: CInt, _ output: CInt, from: Int64, to end: Int64) throws(StepError) -> Int64 {
        var inOffset = from
        var outOffset = from
        if copyRangeWorks.load(ordering: .relaxed) {
            while inOffset < end {
                if isCancelled { throw StepError(operation: "cancelled", errno: nil) }
                let n: Int
                do throws(Errno) {
                    n = try system_copyFileRange(input, &inOffset, output, &outOffset, Int(min(Int64(Performer.step), end - inOffset)))
                } catch {
                    switch error {
                    case .improperLink, .invalidArgument, .noFunction, .notSupported, .notSupportedOnSocket:
                        // This file system pair refuses: read and write from here on. (Unless
                        // the source is no longer a regular file: then the file fails.)
                        guard isRegularFile(input) else {
                            throw StepError(operation: "copy", errno: nil, detail: "it is no longer a regular file")
                        }
                        if inOffset == from { copyRangeWorks.store(false, ordering: .relaxed) }
                        return (inOffset - from) + (try readWrite(input, output, from: inOffset, to: end))
                    default:
                        throw StepError(operation: "copy", errno: error)
                    }
                }
                if n == 0 { throw Performer.shrank(expected: end, at: inOffset) }
                bytesDone.add(Int64(n), ordering: .relaxed)
            }
            return inOffset - from
        }
        return try readWrite(input, output, from: from, to: end)
    }

    func readWrite(_ input: CInt, _ output: CInt, from: Int64, to end: Int64) throws(StepError) -> Int64 {
        let size = Int(min(Int64(1 << 20), max(end - from, 1)))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        var offset = from
        while offset < end {
            if isCancelled { throw StepError(operation: "cancelled", errno: nil) }
            let want = Int(min(Int64(size), end - offset))
            let n: Int
            do throws(Errno) { n = try system_pread(input, UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]), offset) } catch {
                throw StepError(operation: "read", errno: error)
            }
            if n == 0 { throw Performer.shrank(expected: end, at: offset) }
            var written = 0
            while written < n {
                do throws(Errno) {
                    written += try system_pwrite(output, UnsafeRawBufferPointer(rebasing: buffer[written..<n]), offset + Int64(written))
                } catch { throw StepError(operation: "write", errno: error) }
            }
            offset += Int64(n)
            bytesDone.add(Int64(n), ordering: .relaxed)
        }
        return offset - from
    }

    /// Reads both files back and compares them byte for byte.
    func verify(_ input: CInt, _ output: CInt, size: Int64) throws(StepError) {
        let size1 = Int(min(Int64(1 << 20), max(size, 1)))
        let a = UnsafeMutableRawBufferPointer.allocate(byteCount: size1, alignment: 16)
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: size1, alignment: 16)
        defer { a.deallocate(); b.deallocate() }
        guard let pa = a.baseAddress, let pb = b.baseAddress else { return }
        // The output was opened write-only: read it through a new descriptor.
        let reader: CInt
        do throws(Errno) { reader = try "/proc/self/fd/\(output)".withCName { p throws(Errno) in try system_openat(systemATFDCWD, p, O_RDONLY) } } catch {
            throw StepError(operation: "verify", errno: error)
        }
        defer { system_close(reader) }
        var offset: Int64 = 0
        while true {
            if isCancelled { throw StepError(operation: "cancelled", errno: nil) }
            let n1: Int, n2: Int
            do throws(Errno) {
                n1 = try system_pread(input, a, offset)
                n2 = n1 == 0 ? try system_pread(reader, UnsafeMutableRawBufferPointer(rebasing: b[0..<1]), offset) : try readFully(reader, b, count: n1, offset)
            } catch { throw StepError(operation: "verify", errno: error) }
            if n1 != n2 || memcmp(pa, pb, n1) != 0 {
                throw StepError(operation: "verify", errno: nil, detail: "checksum mismatch at byte \(offset): the copy differs from the source")
            }
            if n1 == 0 { return }
            offset += Int64(n1)
        }
    }

    func readFully(_ fd: CInt, _ buffer: UnsafeMutableRawBufferPointer, count: Int, _ offset: Int64) throws(Errno) -> Int {
        var got = 0
        while got < count {
            let n = try system_pread(fd, UnsafeMutableRawBufferPointer(rebasing: buffer[got..<count]), offset + Int64(got))
            if n == 0 { break }
            got += n
        }
        return got
    }
}
