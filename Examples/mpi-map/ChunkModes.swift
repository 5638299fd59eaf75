// mpi-map's modes for how a serving rank runs a chunk (scripts/mpi-tests.sh): values that are not
// fixed-width (strings of every length, wire-encoded with their lengths through MPI and the local
// rings), and a local worker that dies inside a serving rank.
import Glibc
import Multiprocessing
#if MPI
import MultiprocessingMPI
#endif

/// A string input → its characters reversed and its byte count (a variable-length output).
struct Mirror: PoolFunction {
    func run(_ text: String) -> String { String(text.reversed()) + "/\(text.utf8.count)" }
}

/// SIGKILLs its own worker for one input, otherwise returns the input.
struct KillWorkerOn: PoolFunction {
    var poison: Int
    func run(_ x: Int) -> Int {
        if x == poison { kill(getpid(), SIGKILL) }
        return x
    }
}

/// The inputs of `strings`: empty, short, long and non-ASCII strings.
func mirrorInputs(_ count: Int) -> [String] {
    (0..<count).map { index in
        switch index % 5 {
        case 0: ""
        case 1: "item \(index)"
        case 2: String(repeating: "ab", count: index % 300)
        case 3: "naïve \(index) 東京"
        default: "\(index)"
        }
    }
}

#if MPI
/// `strings N`: a map over N strings on the MPI pool gives what the function gives here.
func runStrings(_ pool: MPIPool, count: Int) async throws {
    let inputs = mirrorInputs(count)
    let outputs = try await pool.map(Mirror(), over: inputs)
    let expected = inputs.map { Mirror().run($0) }
    if let first = outputs.indices.first(where: { outputs[$0] != expected[$0] }) {
        print("strings mismatch at \(first): \(outputs[first]) instead of \(expected[first])")
    } else if outputs.count != count {
        print("strings mismatch: \(outputs.count) outputs for \(count) inputs")
    } else {
        print("strings \(count) ok")
    }
}

/// `crash N`: a local worker of a serving rank SIGKILLs itself at input N/2; only the tasks of the
/// chunk it ran fail (childDied, naming the poison), every other result is right, and a map after
/// it (on the replaced worker) gives every result.
func runCrash(_ pool: MPIPool, count: Int) async throws {
    let poison = count / 2
    let results = try await pool.mapResults(KillWorkerOn(poison: poison), over: 0..<count)
    var failed: [Int] = []
    var wrong = 0
    var codes = Set<String>()
    for (index, result) in results.enumerated() {
        switch result {
        case .success(let value): if value != index { wrong += 1 }
        case .failure(let error):
            failed.append(index)
            codes.insert("\(error.code)")
        }
    }
    let again = try await pool.map(Mix(salt: 17), over: 0..<count)
    let expected = (0..<count).map { Mix(salt: 17).run($0) }
    print("crash: \(results.count) results, \(failed.count) failed (codes \(codes.sorted().joined(separator: ","))), poison failed \(failed.contains(poison)), wrong \(wrong); the next map right \(again == expected)")
}
#endif
