// The tutorial's thread half: threading.Thread, daemon threads, current_thread, Lock, RLock,
// BoundedSemaphore, the Event traffic light, and stopping a thread.
import ArgumentParser
import Multiprocessing
#if canImport(Glibc)
import Glibc
#endif

struct ThreadStart: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "thread-start",
        abstract: "sing and dance in two threads")
    func run() throws {
        let sing = OSThread { for _ in 0..<5 { print("sing"); pause(seconds: 0.2) } }
        let dance = OSThread { for _ in 0..<5 { print("dance"); pause(seconds: 0.2) } }
        try sing.start()
        try dance.start()
        // No join: like Python, the program does not exit while non-daemon threads run.
    }
}

struct ThreadDaemon: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "thread-daemon",
        abstract: "a daemon thread dies with the main thread")
    func run() throws {
        let sing = OSThread(daemon: true) { for _ in 0..<5 { print("sing"); pause(seconds: 0.2) } }
        try sing.start()
        pause(seconds: 0.3)
        print("main thread ends")
    }
}

struct ThreadCurrent: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "thread-current",
        abstract: "threads run in no fixed order (current_thread)")
    func run() throws {
        for _ in 0..<5 {
            try OSThread {
                pause(seconds: 0.2)
                let me = OSThread.current
                print("<OSThread(\(me.name), started \(me.ident))>")
            }.start()
        }
    }
}

/// A counter that only the example's lock protects.
final class SharedNumber: @unchecked Sendable {
    var n = 100
}

struct ThreadLock: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "thread-lock",
        abstract: "100 threads decrement a number under a Lock")
    func run() throws {
        let lock = try Lock()
        let number = SharedNumber()
        let threads = (0..<100).map { _ in
            OSThread {
                try lock.withLock {
                    let temp = number.n
                    pause(seconds: 0.001)
                    number.n = temp - 1
                }
            }
        }
        for t in threads { try t.start() }
        for t in threads { try t.join() }
        print(number.n)
    }
}

struct ThreadRLock: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "thread-rlock",
        abstract: "an RLock taken twice by the same thread")
    func run() throws {
        let lock = try RLock()
        let number = SharedNumber()
        number.n = 0
        let threads = (0..<10).map { _ in
            OSThread {
                try lock.acquire()
                try lock.acquire()        // nested: fine for an RLock
                number.n += 1
                pause(seconds: 0.05)
                print(number.n)
                try lock.release()
                try lock.release()
            }
        }
        for t in threads { try t.start() }
        for t in threads { try t.join() }
    }
}

struct ThreadSemaphore: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "thread-semaphore",
        abstract: "22 threads, at most 5 at a time (BoundedSemaphore)")
    func run() throws {
        let semaphore = try BoundedSemaphore(5)
        for i in 0..<22 {
            try OSThread {
                try semaphore.withPermit {
                    pause(seconds: 0.2)
                    print("run the thread: t-\(i)")
                }
            }.start()
        }
        while OSThread.activeCount != 1 { pause(seconds: 0.01) }
        print("-----all threads done-----")
    }
}

struct ThreadEvent: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "thread-event",
        abstract: "the traffic light: cars wait for green (Event)")
    @Option(help: "How many light changes to show before stopping.") var ticks = 14
    func run() throws {
        let green = try Event()
        let stop = try Event()
        let ticks = self.ticks
        let light = OSThread(name: "light") {
            var count = 0
            green.set()
            for _ in 0..<ticks {
                if count > 5 && count <= 10 {
                    green.clear()
                    print("\u{1B}[41;1mred light is on...\u{1B}[0m")
                } else if count > 10 {
                    green.set()
                    count = 0
                } else {
                    print("\u{1B}[42;1mgreen light is on...\u{1B}[0m")
                }
                pause(seconds: 0.1)
                count += 1
            }
            stop.set()
            green.set()
        }
        let car = OSThread(name: "MINI") {
            while !stop.isSet {
                if green.isSet {
                    print("[MINI] running...")
                    pause(seconds: 0.1)
                } else {
                    print("[MINI] sees red light, waiting...")
                    try green.wait()
                    print("[MINI] green light is on, start going...")
                }
            }
        }
        try light.start()
        try car.start()
    }
}

/// Prints forever without ever checking for cancellation: only killing its process stops it.
struct PrintForever: ProcessTask {
    func run() {
        while true {
            print(111111111111)
            print(222222222222)
            pause(seconds: 0.05)
        }
    }
}

struct ThreadStop: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "thread-stop",
        abstract: "stopping a thread: cooperative cancel, and a hard stop with ChildProcess.terminate()")
    func run() throws {
        // Swift cannot inject an exception into a running thread (the tutorial's ctypes trick).
        // A thread stops when it checks: cancel() makes checkCancellation() throw, and wakes any
        // wait of this module the thread is blocked in.
        let printer = OSThread {
            while true {
                try OSThread.checkCancellation()
                print(111111111111)
                pause(seconds: 0.05)
            }
        }
        try printer.start()
        pause(seconds: 0.2)
        printer.cancel()
        try printer.join()
        print("thread stopped: \(printer.error.map { "\($0)" } ?? "no error")")

        // Code that never checks can only be stopped hard: run it in a child process and
        // terminate the process, which is safe where killing a thread is not.
        let child = ChildProcess(PrintForever())
        try child.start()
        pause(seconds: 0.2)
        try child.terminate()
        try child.join()
        print("process stopped: \(child.exitStatus.map { "\($0)" } ?? "?")")
    }
}

let threadExampleCommands: [any ParsableCommand.Type] = [
    ThreadStart.self, ThreadDaemon.self, ThreadCurrent.self, ThreadLock.self, ThreadRLock.self,
    ThreadSemaphore.self, ThreadEvent.self, ThreadStop.self,
]
