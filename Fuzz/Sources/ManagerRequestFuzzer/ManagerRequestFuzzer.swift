// The manager server's request handlers under libFuzzer: every input is cut into requests and
// served by an in-process server (ManagerFuzzing). Any trap, sanitizer report or hang is a finding.
@_spi(Fuzzing) import MultiprocessingManager

nonisolated(unsafe) private var target: ManagerFuzzing?

@_cdecl("LLVMFuzzerTestOneInput")
public func managerRequestFuzzer(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if target == nil { target = try? ManagerFuzzing() }
    target?.serve(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
