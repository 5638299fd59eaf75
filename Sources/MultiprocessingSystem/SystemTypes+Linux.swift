#if os(Linux)
// The C types and constants that code outside this target names, under names of the package's own,
// so that no other target imports Glibc: a signature or a poll mask says what it means without
// reaching libc. Each is the C type or value unchanged.
public import Glibc
public import CMultiprocessing

/// A thread-specific data key (`pthread_key_t`), from ``system_keyCreate(destructor:)``.
package typealias SystemThreadKey = pthread_key_t

/// `POLLIN`: data to read (or the end of the stream).
@inlinable package var systemPollIn: Int16 { Int16(POLLIN) }

/// `POLLOUT`: room to write.
@inlinable package var systemPollOut: Int16 { Int16(POLLOUT) }
#endif

#if os(Linux)
// MARK: open(2) flags, as MPCopy passes them to system_openat and system_openBeneath

/// `O_RDONLY`.
@inlinable package var systemORdOnly: CInt { O_RDONLY }
/// `O_WRONLY`.
@inlinable package var systemOWrOnly: CInt { O_WRONLY }
/// `O_CREAT`.
@inlinable package var systemOCreate: CInt { O_CREAT }
/// `O_EXCL`.
@inlinable package var systemOExcl: CInt { O_EXCL }
/// `O_NOFOLLOW`.
@inlinable package var systemONoFollow: CInt { O_NOFOLLOW }
/// `O_NONBLOCK`.
@inlinable package var systemONonBlock: CInt { O_NONBLOCK }
/// `O_DIRECTORY`.
@inlinable package var systemODirectory: CInt { O_DIRECTORY }

// MARK: signals and standard descriptors

/// `SIGINT`.
@inlinable package var systemSigInt: CInt { SIGINT }
/// `SIGTERM`.
@inlinable package var systemSigTerm: CInt { SIGTERM }
/// `SIGHUP`.
@inlinable package var systemSigHup: CInt { SIGHUP }
/// `SIGKILL`.
@inlinable package var systemSigKill: CInt { SIGKILL }
/// `STDOUT_FILENO`.
@inlinable package var systemStdout: CInt { STDOUT_FILENO }
/// `STDERR_FILENO`.
@inlinable package var systemStderr: CInt { STDERR_FILENO }

// MARK: C strings and memory

/// `strlen(3)`.
@inlinable package func system_strlen(_ s: UnsafePointer<CChar>) -> Int { strlen(s) }
/// `strncmp(3)`.
@inlinable package func system_strncmp(_ a: UnsafePointer<CChar>, _ b: UnsafePointer<CChar>, _ n: Int) -> CInt { strncmp(a, b, n) }
/// `memcmp(3)`.
@inlinable package func system_memcmp(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ n: Int) -> CInt { memcmp(a, b, n) }
#endif

#if os(Linux)
/// `sysconf(_SC_NPROCESSORS_ONLN)`: the processors online (not the affinity mask's count, which
/// is ``system_cpuCount()``).
@inlinable package func system_onlineProcessorCount() -> Int { Int(sysconf(CInt(_SC_NPROCESSORS_ONLN))) }
#endif
