// The tutorial's synchronisation: Lock, RLock, BoundedSemaphore and Event, with threads.
import ArgumentParser
import Multiprocessing
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Python's `global n`: a plain variable that every thread reads and writes. Only a lock makes that
/// safe, which is the point of the examples; Swift 6 refuses to share it unless told it is guarded.
final class SharedCounter: @unchecked Sendable {
    var value: Int
    init(_ value: Int) { self.value = value }
}

struct ThreadLock: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "thread-lock",
        abstract: "100 threads decrement a counter under a Lock")
    @Option(help: "Seconds each thread holds the value before writing it back (the seed sleeps 0.1).")
    var interval: Double = 0.01
    @Flag(help: "Leave out the lock, to see the lost updates (\"dirty data\").")
    var unlocked = false

    func run() throws {
        let interval = interval, unlocked = unlocked
        let lock = try Lock()
        let n = SharedCounter(100)
        // def work(): lock.acquire(); temp = n; time.sleep(0.1); n = temp - 1; lock.release()
        let work: @Sendable () throws -> Void = {
            if !unlocked { try lock.acquire() }
            let temp = n.value
            pause(seconds: interval)
            n.value = temp - 1
            if !unlocked { try lock.release() }
        }
        var l: [OSThread] = []
        for _ in 0..<100 {
            let p = OSThread(target: work)
            l.append(p)
            try p.start()
        }
        for p in l { try p.join() }
        say("n = \(n.value)")
    }
}

/// `def Func(lock): lock.acquire(); gl_num += 1; time.sleep(1); print(gl_num); lock.release()`,
/// with the increment in a second function that takes the same lock again: a `Lock` would refuse
/// (it throws `.misuse` rather than deadlock), an `RLock` counts the depth.
func rlockFunc(_ lock: RLock, _ glNum: SharedCounter, interval: Double) throws {
    try lock.acquire()
    try increment(lock, glNum)          // the same thread acquires again: depth 2
    pause(seconds: interval)
    say("\(glNum.value)")
    try lock.release()
}

func increment(_ lock: RLock, _ glNum: SharedCounter) throws {
    try lock.acquire()
    glNum.value += 1
    try lock.release()
}

struct ThreadRLock: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "thread-rlock",
        abstract: "10 threads count under an RLock that each takes twice")
    @Option(help: "Seconds each thread holds the lock (the seed sleeps 1).")
    var interval: Double = 0.1

    func run() throws {
        let interval = interval
        let glNum = SharedCounter(0)
        let lock = try RLock()
        var threads: [OSThread] = []
        for _ in 0..<10 {
            // threading.Thread(target=Func, args=(lock,))
            let t = OSThread { try rlockFunc(lock, glNum, interval: interval) }
            try t.start()
            threads.append(t)
        }
        for t in threads { try t.join() }
    }
}

struct ThreadSemaphore: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "thread-semaphore",
        abstract: "BoundedSemaphore(5) lets 22 threads in 5 at a time")
    @Option(help: "Seconds each thread stays inside (the seed sleeps 1).")
    var interval: Double = 0.3

    func run() throws {
        let interval = interval
        // Not in the seed: how many threads are inside at once, to show the bound holds.
        let inside = Atomic<Int>(0)
        let mostInside = Atomic<Int>(0)
        let semaphore = try BoundedSemaphore(5)     // at most 5 threads at once
        for i in 0..<22 {
            let n = "t-\(i)"
            // threading.Thread(target=run, args=("t-%s" % i, semaphore))
            let t = OSThread {
                try semaphore.acquire()
                let now = inside.add(1, ordering: .sequentiallyConsistent).newValue
                mostInside.max(now, ordering: .sequentiallyConsistent)
                pause(seconds: interval)
                say("run the thread:\(n)\n")
                inside.subtract(1, ordering: .sequentiallyConsistent)
                try semaphore.release()
            }
            try t.start()
        }
        // while threading.active_count() != 1: pass
        // (The seed spins; this polls every millisecond. join() on each thread is the better way.)
        while OSThread.activeCount != 1 {
            usleep(1000)
        }
        say("-----all threads done-----")
        say("most threads inside at once: \(mostInside.load(ordering: .sequentiallyConsistent)) (bound \(semaphore.bound))")
    }
}

struct ThreadEvent: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "thread-event",
        abstract: "the traffic light: an Event between a light and a car, for --seconds")
    @Option(help: "How long the light runs.")
    var seconds: Double = 3
    @Option(help: "Seconds per tick of the light and per step of the car (the seed: 1).")
    var tick: Double = 0.2

    func run() throws {
        let tick = tick, seconds = seconds
        // Colours as in the seed, but only on a terminal, so that piped output stays plain.
        let colour = isatty(1) != 0
        let red = colour ? "\u{1B}[41;1mred light is on...\u{1B}[0m" : "red light is on..."
        let green = colour ? "\u{1B}[42;1mgreen light is on...\u{1B}[0m" : "green light is on..."

        let event = try Event()
        // Green before either thread starts. The seed sets it first thing in lighter(), which races
        // the car: a car thread that runs before the light's set() starts on red.
        event.set()
        // def lighter(): count = 0; event.set(); while True: ...
        let light = OSThread(name: "lighter") {
            let start = ContinuousClock.now
            var count = 0
            event.set()                              // green to begin with
            while elapsedSeconds(since: start) < seconds {
                if 5 < count && count <= 10 {
                    event.clear()                    // red: lower the flag
                    say(red)
                } else if count > 10 {
                    event.set()                      // green: raise the flag
                    count = 0
                } else {
                    say(green)
                }
                pause(seconds: tick)
                count += 1
            }
        }
        // def car(name): while True: ...
        let name = "MINI"
        let car = OSThread(name: "car") {
            while true {
                if event.isSet {
                    say("[\(name)] running...")
                    pause(seconds: tick)
                } else {
                    say("[\(name)] sees red light,waiting...")
                    try event.wait()                 // throws .cancelled once the car is cancelled
                    say("[\(name)] green light is on,start going...")
                }
                try OSThread.checkCancellation()
            }
        }
        try light.start()
        try car.start()
        // The seed runs forever; here the light stops after --seconds, and the car is cancelled,
        // which wakes it even inside event.wait().
        try light.join()
        car.cancel()
        try car.join()
        say("light off after \(seconds) s; car stopped (\(car.error.map { "\($0)" } ?? "no error"))")
    }
}
