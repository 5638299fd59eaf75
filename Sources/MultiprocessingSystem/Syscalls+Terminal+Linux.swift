public import CMultiprocessing

// The terminal mpcp draws its progress bar on.

/// The width in columns of the terminal on `fd` (`ioctl(TIOCGWINSZ)`), or nil when `fd` is no
/// terminal or the terminal reports no width.
@inlinable package func system_terminalColumns(_ fd: CInt) -> Int? {
    let columns = cmp_terminal_columns(fd)
    return columns > 0 ? Int(columns) : nil
}
