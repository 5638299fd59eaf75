import Synchronization
import SystemPackage
import MultiprocessingSystem

/// The pool's one thread: owns the workers and their sockets, cuts jobs into chunks, sends them,
/// reads answers, notices deaths, replaces workers. Callers talk to it through its inbox.
final class PoolDriver: @unchecked Sendable {
    // @unchecked: everything but `inbox`, `wake`, `ready` and the `let`s is touched only by the
    // driver thread (and by `init`'s caller before that thread starts).

    enum Command {
        case job(PoolJob)
        case cancel(PoolJob)
        case close
        case terminate
        /// A worker started off the driver thread for slot `index` (a replacement).
        case spawned(Int, Result<Spare, any Error>)
    }

    /// A started worker not yet in a slot.
    struct Spare: @unchecked Sendable {
        // @unchecked: moved once from the starting thread to the driver.
        var child: ChildProcess<Void>
        var fd: Int32
        var pid: Int32
        /// The worker's task and answer rings.
        var ring: PoolRing
    }

    struct Settings {
        var workers: Int
        var configuration: ChildProcessConfiguration
        var initializer: (any ProcessTask)?
        var recycling: Recycling
        var onWorkerDeath: WorkerDeathPolicy
        var taskTimeout: Duration?
        var name: String
    }

    struct InFlight {
        var chunk: UInt32
        var job: PoolJob
        var start: Int
        var count: Int
        var attempt: Int
    }

    struct Piece {
        var job: PoolJob
        var start: Int
        var count: Int
        var attempt: Int
    }

    struct Slot {
        var number: Int
        var child: ChildProcess<Void>?
        var fd: Int32 = -1
        var pid: Int32 = 0
        /// The worker's rings (``PoolRing``), and the indices the driver writes: its own copies,
        /// so that a worker can only corrupt what it writes itself.
        var ring: PoolRing?
        var taskTail: UInt64 = 0
        var answerHead: UInt64 = 0
        /// Frames read from the worker (its `published` counts the same frames).
        var framesSeen: UInt64 = 0
        /// A wake-up was asked for (``PoolRing/Offset/wakeAt``) before the last wait.
        var wakeAsked = false
        var ready = false
        var retiring = false
        var inFlight: [InFlight] = []
        var out: [UInt8] = []
        var outSent = 0
        var input: [UInt8] = []
        var inputStart = 0
        var knownJobs: Set<UInt32> = []
        var tasksDone = 0
        var busySince: Int64 = 0
        var respawnAt: Int64?
        var deaths = 0
        var startFailures = 0
        /// A replacement is being started on another thread.
        var spawning = false
        /// A replacement started while this worker finishes its last tasks.
        var spare: Spare?
        /// The last chunk's cost estimate, for the in-flight depth.
        var chunkNanoseconds: Double = 0
        /// A task its caller sent here directly (``trySendDirectly(_:)``): while it is unclaimed or
        /// claimed by a reader, the driver neither polls nor feeds this worker.
        var direct: PoolJob?
    }

    let settings: Settings
    let inbox = Mutex<[Command]>([])
    let wake: Int32
    private let wakeOpen = Mutex<Bool>(true)
    /// Set when every first worker said ready, or one failed; `startError` then says why.
    let firstReady = PoolCompletion()
    let startError = Mutex<PoolTaskError?>(nil)
    /// Set when the driver has stopped and every worker is reaped.
    let stopped = PoolCompletion()
    /// The pids of the live workers, for callers (``ProcessPool/workerPIDs``).
    let pids = Mutex<[Int32]>([])
    /// The pids of the started successors waiting for their slots' workers to retire (tests).
    let sparePIDs = Mutex<[Int32]>([])

    private var slots: [Slot] = []
    /// Held by the driver while it works (not while it waits), and by a caller dispatching directly.
    private let step = Mutex<Void>(())
    /// The driver waits in poll (so a caller may dispatch).
    private var polling = false
    /// The thread that holds `step` (0 when none): code run under it (an `onDone` callback that
    /// submits) must not try to take it again.
    private let holder = Atomic<Int32>(0)
    /// Counts changes of the workers' descriptors; the driver's poll set is stale when it moved.
    private var generation = 0
    private var polledGeneration = 0
    private var jobs: [PoolJob] = []
    private var requeued: [Piece] = []
    private var nextChunk: UInt32 = 1
    /// The pool functions told to the fork server (``rehearseInForkServer(_:)``), and the last job
    /// looked at for it.
    private var rehearsedFunctions: Set<String> = []
    private var lastRehearsedJob: UInt32 = 0
    private var closing = false
    private var broken: PoolTaskError?
    private let workerNumber = Atomic<Int>(0)
    /// Recycled workers, until they have exited.
    private var retired: [ChildProcess<Void>] = []
    private var readBuffer = [UInt8](repeating: 0, count: 1 << 16)
    private let graceNanoseconds: Int64 = 1_000_000_000
    /// The cores a direct round trip's spins may take (``PoolSpin``): never more spinners and busy
    /// workers than this.
    private let cores = max(1, system_cpuCount())
    /// The blocking readers' spin policy, shared by the pool's callers (``PoolSpin/caller``).
    let callerSpin = Mutex(PoolSpin(PoolSpin.caller))
    /// Tests: a caller spins even when the worker last ran on its CPU, so that the spin-then-sleep
    /// path runs whatever the scheduler does (beside CPU hogs it tends to put both on one CPU).
    let callerSpinIgnoresPlacement = Atomic<Bool>(false)

    init(settings: Settings) throws {
        self.settings = settings
        do throws(Errno) {
            wake = try system_eventfd(nonBlocking: true)
        } catch {
            throw MultiprocessingError.system("creating the pool's wake-up eventfd", error)
        }
        for number in 0..<settings.workers { slots.append(Slot(number: number)) }
    }

    /// Starts the workers and the driver thread.
    func start() throws {
        var firstError: (any Error)?
        // The workers start side by side: every request goes to the process monitor at once, and
        // the fork server makes them one after another while the first ones set up. The pool is
        // created once every worker is ready (it ignores SIGINT from then on, and its initializer
        // has run).
        let starts = PoolStarts(count: slots.count)
        for index in slots.indices {
            startWorker { result in starts.record(index, result) }
        }
        for (index, result) in starts.wait().enumerated() {
            switch result {
            case .success(let spare)?: install(spare, at: index)
            case .failure(let error)?: if firstError == nil { firstError = error }
            case nil: break
            }
        }
        if !slots.contains(where: { $0.child != nil }) {
            for index in slots.indices { stopWorker(index, kill: true) }
            closeWake()
            throw firstError ?? MultiprocessingError(.childStartFailed, "The pool could not start any worker.")
        }
        do throws(Errno) {
            _ = try system_startThread(name: "mp-pool") { [self] in run() }
        } catch {
            for index in slots.indices { stopWorker(index, kill: true) }
            closeWake()
            throw MultiprocessingError.system("starting the pool's driver thread", error)
        }
    }

    func send(_ command: Command) {
        inbox.withLock { $0.append(command) }
        signalWake()
    }

    /// Wakes the driver; nothing once its eventfd is closed (a late cancel or wait must not
    /// write into a reused descriptor number).
    func signalWake() {
        wakeOpen.withLock { if $0 { system_eventfdSignal(wake) } }
    }

    private func closeWake() {
        wakeOpen.withLock { open in
            if open { system_close(wake) }
            open = false
        }
    }

    // MARK: workers

    /// Starts a worker process without waiting for it (no thread waits per start): `done` is
    /// called once it runs (on the process monitor's thread) or could not be started (perhaps on
    /// this one). Safe on any thread.
    private func startWorker(_ done: @escaping @Sendable (Result<Spare, any Error>) -> Void) {
        let (parentEnd, childEnd): (Int32, Int32)
        do throws(Errno) {
            (parentEnd, childEnd) = try system_socketpair()
        } catch {
            done(.failure(MultiprocessingError.system("creating a pool worker's socket", error)))
            return
        }
        do throws(Errno) { try system_setNonBlocking(parentEnd, true) } catch {}
        let ring: PoolRing
        do {
            ring = try PoolRing()
        } catch {
            system_close(childEnd)
            system_close(parentEnd)
            done(.failure(error))
            return
        }
        let number = workerNumber.add(1, ordering: .relaxed).newValue
        let task = PoolWorkerTask(channel: SharedDescriptor(FileDescriptor(rawValue: childEnd)), memory: SharedDescriptor(FileDescriptor(rawValue: ring.fd)),
                                  initializer: settings.initializer, measureMemory: settings.recycling.aboveResidentBytes != nil)
        let child = ChildProcess(task, name: "\(settings.name)-worker-\(number)", daemon: true, configuration: settings.configuration)
        do {
            try child.startInBackground { result in
                // The handshake that carries the worker's end has been sent (or never will be).
                system_close(childEnd)
                switch result {
                case .success(let pid): done(.success(Spare(child: child, fd: parentEnd, pid: pid, ring: ring)))
                case .failure(let error):
                    system_close(parentEnd)
                    done(.failure(error))
                }
            }
        } catch {
            system_close(childEnd)
            system_close(parentEnd)
            done(.failure(error))
        }
    }

    private func install(_ spare: Spare, at index: Int) {
        generation &+= 1
        var slot = Slot(number: slots[index].number)
        slot.child = spare.child
        slot.fd = spare.fd
        slot.pid = spare.pid
        slot.ring = spare.ring
        slot.deaths = slots[index].deaths
        slot.chunkNanoseconds = slots[index].chunkNanoseconds
        slot.spawning = slots[index].spawning
        slots[index] = slot
        publishPIDs()
        // Recycling after N tasks: this worker's successor starts now, so that it has had this
        // worker's whole life to get ready by the time this one retires.
        if settings.recycling.afterTasks != nil && broken == nil && !closing { requestSpawn(index) }
    }

    /// Starts a replacement for slot `index`; the other workers are fed meanwhile, and it arrives
    /// through the inbox.
    private func requestSpawn(_ index: Int) {
        guard !slots[index].spawning, slots[index].spare == nil, broken == nil else { return }
        slots[index].spawning = true
        startWorker { [self] result in send(.spawned(index, result)) }
    }

    private func discard(_ spare: Spare) {
        try? spare.child.kill()
        spare.ring.closeForWorker()
        system_close(spare.fd)
        retired.append(spare.child)
    }

    /// Closes a worker's channel (it exits when it sees the end) or kills it; it is reaped by the monitor.
    private func stopWorker(_ index: Int, kill: Bool) {
        generation &+= 1
        if kill { try? slots[index].child?.kill() }
        // Kept until it has exited, so that the pool's end can wait for it.
        if let child = slots[index].child { retired.append(child) }
        retired.removeAll { !$0.isAlive }
        if slots[index].fd >= 0 {
            slots[index].ring?.closeForWorker()
            system_close(slots[index].fd)
        }
        slots[index].fd = -1
        slots[index].ring = nil
        slots[index].child = nil
        slots[index].ready = false
        slots[index].pid = 0
        publishPIDs()
    }

    private func publishPIDs() {
        let live = slots.compactMap { $0.child != nil ? $0.pid : nil }
        pids.withLock { $0 = live }
        let spares = slots.compactMap { $0.spare?.pid }
        sparePIDs.withLock { $0 = spares }
    }

    // MARK: the loop

    private func run() {
        let me = system_gettid()
        var stopping = false
        while true {
            // Everything but the wait runs under `step`, so that a caller finding the driver
            // asleep can dispatch its own job (``trySendDirectly(_:)``).
            let plan = step.withLock { _ -> (fds: [Int32], events: [Int16], owners: [Int], timeout: CInt)? in
                holder.store(me, ordering: .relaxed)
                defer { holder.store(0, ordering: .relaxed) }
                let now = system_clockMonotonicNanoseconds()
                stopping = takeCommands(now) || stopping
                if stopping { return nil }
                for index in slots.indices where slots[index].direct != nil { _ = adoptDirect(index) }
                checkTimers(now)
                dispatch(now)
                if closing && jobs.isEmpty && requeued.isEmpty && slots.allSatisfy({ $0.inFlight.isEmpty }) { return nil }
                var fds: [Int32] = [wake]
                var events: [Int16] = [Int16(POLLIN_VALUE)]
                var owners: [Int] = [-1]
                var pending = false
                for index in slots.indices where slots[index].fd >= 0 && slots[index].direct == nil {
                    fds.append(slots[index].fd)
                    // An idle worker is polled for its end only (POLLHUP needs no event bit), so that
                    // the answer to a task a caller sent it directly wakes that caller alone. A
                    // worker with work asks to be woken by its answers (or by room for more tasks).
                    let reading = !slots[index].ready || !slots[index].inFlight.isEmpty
                    if reading || slots[index].outSent < slots[index].out.count {
                        events.append(Int16(POLLIN_VALUE))
                        if askWake(index) { pending = true }
                    } else {
                        events.append(0)
                    }
                    owners.append(index)
                }
                polledGeneration = generation
                polling = true
                return (fds, events, owners, pending ? 0 : pollTimeout(now))
            }
            guard let plan else { break }
            let revents = (try? system_pollMany(plan.fds, events: plan.events, timeoutMilliseconds: plan.timeout)) ?? Array(repeating: 0, count: plan.fds.count)
            step.withLock { _ in
                holder.store(me, ordering: .relaxed)
                defer { holder.store(0, ordering: .relaxed) }
                polling = false
                if revents[0] != 0 { system_eventfdDrain(wake) }
                for index in slots.indices where slots[index].wakeAsked { clearWake(index) }
                // Descriptors that changed while the driver waited are skipped: the next round polls the new ones.
                guard polledGeneration == generation else { return }
                for position in 1..<max(1, plan.fds.count) {
                    let index = plan.owners[position]
                    guard slots[index].fd == plan.fds[position] else { continue }
                    // Sent a task directly while the driver waited, and claimed by its reader: not ours.
                    if slots[index].direct != nil && !adoptDirect(index) { continue }
                    // Every worker's ring is looked at, woken or not: a worker wakes the driver
                    // only for the answer it asked for, and others may be there already.
                    service(index, socket: revents[position] != 0)
                }
            }
        }
        step.withLock { _ in
            holder.store(me, ordering: .relaxed)
            shutDown(terminating: stopping)
            holder.store(0, ordering: .relaxed)
        }
    }

    /// When the driver is waiting (and no one else holds its state), dispatches `job` from the
    /// caller's thread: its chunk reaches a worker without waking the driver first. Returns false
    /// when the job must go through the inbox instead.
    func trySendDirectly(_ job: PoolJob) -> Bool {
        let me = system_gettid()
        guard holder.load(ordering: .relaxed) != me else { return false }
        let result = step.withLockIfAvailable { _ -> (sent: Bool, poke: Bool) in
            holder.store(me, ordering: .relaxed)
            defer { holder.store(0, ordering: .relaxed) }
            // Only when nothing waits in the inbox, so that a caller's jobs keep their order.
            guard polling, broken == nil, !closing, inbox.withLock({ $0.isEmpty }) else { return (false, false) }
            let now = system_clockMonotonicNanoseconds()
            if job.taskBody != nil, settings.taskTimeout == nil, jobs.isEmpty, requeued.isEmpty,
               let index = slots.indices.first(where: { takesDirect($0) }) {
                // One task to an idle worker: its answer is left to the caller (a blocking get()
                // reads it itself, so the driver never wakes), or to the driver when anyone else asks.
                // Both ends may spin (the caller for the answer, the worker for the next task) only
                // while busy workers and would-be spinning callers, this one's included, fit in the
                // cores: a spin that takes the core of the process it waits for only delays it.
                let busy = slots.reduce(1) { $0 + ($1.inFlight.isEmpty ? 0 : 1) }
                let directs = slots.reduce(1) { $0 + ($1.direct == nil ? 0 : 1) }
                let spin = busy + directs <= cores
                if spin, let ring = slots[index].ring {
                    ring.store32(PoolRing.Offset.callerCPU, PoolSpin.cpuTag())
                    job.directWokeWorker = ring.load32(PoolRing.Offset.workerSleeps) != 0
                }
                job.dispatched = 1
                send(Piece(job: job, start: 0, count: 1, attempt: 0), to: index, now: now, workerMaySpin: spin)
                flush(index)
                guard slots[index].fd >= 0, slots[index].outSent == slots[index].out.count, slots[index].inFlight.count == 1 else { return (true, true) }
                job.directSlot = index
                job.directFD = slots[index].fd
                job.directSpin = spin
                slots[index].direct = job
                job.direct.store(PoolDirect.unclaimed, ordering: .releasing)
                return (true, false)
            }
            jobs.append(job)
            dispatch(now)
            // The driver polls idle workers for their end only: it must look again to read answers.
            return (true, true)
        }
        guard let result, result.sent else { return false }
        if result.poke { signalWake() }
        return true
    }

    /// A worker a caller may send one task to directly: ready, idle, and not about to be recycled.
    private func takesDirect(_ index: Int) -> Bool {
        let slot = slots[index]
        guard slot.ready, !slot.retiring, slot.fd >= 0, slot.direct == nil, slot.inFlight.isEmpty, slot.outSent == slot.out.count else { return false }
        if let limit = settings.recycling.afterTasks, limit - slot.tasksDone <= 1 { return false }
        return true
    }

    /// The driver takes over a direct task's answer unless a reader has claimed it; true when it did.
    private func adoptDirect(_ index: Int) -> Bool {
        guard let job = slots[index].direct else { return true }
        let (exchanged, original) = job.direct.compareExchange(expected: PoolDirect.unclaimed, desired: PoolDirect.driver, ordering: .acquiringAndReleasing)
        guard exchanged || original != PoolDirect.reader else { return false }
        slots[index].direct = nil
        return true
    }

    /// Settles who reads the answer of a task sent directly. `reading`: the caller blocks until
    /// the answer is there, so it reads it itself (two wake-ups in all: the worker's and its own);
    /// otherwise the driver is asked to. A task still running after 10 ms goes to the driver, as
    /// does one whose worker the driver took back (a death, a timeout, the pool's end).
    func settleDirect(_ job: PoolJob, reading: Bool) {
        guard job.direct.load(ordering: .acquiring) == PoolDirect.unclaimed else { return }
        guard reading else {
            if job.direct.compareExchange(expected: PoolDirect.unclaimed, desired: PoolDirect.driver, ordering: .acquiringAndReleasing).exchanged {
                signalWake()
            }
            return
        }
        guard job.direct.compareExchange(expected: PoolDirect.unclaimed, desired: PoolDirect.reader, ordering: .acquiringAndReleasing).exchanged else { return }
        let index = job.directSlot
        let fd = job.directFD
        let me = system_gettid()
        if job.directSpin { spinForDirectAnswer(job, index: index, fd: fd) }
        while true {
            // Ask the worker for a wake-up with its answer, unless it is there already.
            let there = step.withLock { _ -> Bool in
                guard slots[index].direct === job, slots[index].fd == fd else { return true }
                return askWake(index)
            }
            let revents = there ? [Int16(0)] : ((try? system_pollMany([fd], events: [Int16(POLLIN_VALUE)], timeoutMilliseconds: 10)) ?? [Int16(POLLIN_VALUE)])
            let (done, poke) = step.withLock { _ -> (Bool, Bool) in
                holder.store(me, ordering: .relaxed)
                defer { holder.store(0, ordering: .relaxed) }
                // The driver took the worker back (it died, was killed, or the pool ended).
                guard slots[index].direct === job, slots[index].fd == fd else { return (true, false) }
                clearWake(index)
                let before = generation
                if revents[0] == 0 && !there && !ringHasData(index) {
                    slots[index].direct = nil
                    job.direct.store(PoolDirect.driver, ordering: .releasing)
                    return (true, true)
                }
                service(index, socket: revents[0] != 0)
                if slots[index].direct === job {
                    // A partial answer: read on.
                    guard slots[index].inFlight.isEmpty else { return (false, false) }
                    slots[index].direct = nil
                }
                job.direct.store(PoolDirect.none, ordering: .releasing)
                return (true, generation != before || closing || !jobs.isEmpty || !requeued.isEmpty || !retired.isEmpty)
            }
            if poke { signalWake() }
            if done { return }
        }
    }

    /// A blocking reader's spin (``PoolSpin``): polls the worker's answer ring for a short while,
    /// before it asks for a wake-up and sleeps. Either way the caller then reads (or waits) under
    /// the lock as before; the spin only saves the sleep, and the worker the wake-up byte (it writes
    /// one only when asked). The ring is held here, so its memory stays mapped even if the driver
    /// drops the worker meanwhile (a death, a kill): then nothing arrives, the spin ends within its
    /// budget, and the wait that follows finds the slot taken back, or the worker's end of stream.
    private func spinForDirectAnswer(_ job: PoolJob, index: Int, fd: Int32) {
        let probe = step.withLock { _ -> (ring: PoolRing, head: UInt64)? in
            guard slots[index].direct === job, slots[index].fd == fd, let ring = slots[index].ring else { return nil }
            return (ring, slots[index].answerHead)
        }
        guard let probe else { return }
        // A worker that was awake (spinning for this task) on this CPU would wait for this spin
        // to end. One that slept was woken by a futex, which lets the scheduler put it on an idle
        // CPU if there is one; if there is none, the spin fails and turns itself off.
        let me = PoolSpin.cpuTag()
        probe.ring.store32(PoolRing.Offset.callerCPU, me)
        if !job.directWokeWorker && PoolSpin.sameCPU(probe.ring.load32(PoolRing.Offset.workerCPU), me)
            && !callerSpinIgnoresPlacement.load(ordering: .relaxed) {
            callerSpin.withLock { $0.decline() }
            return
        }
        guard let budget = callerSpin.withLock({ $0.begin() }) else { return }
        let outcome = PoolSpin.wait(budget: budget, gap: PoolSpin.caller.descheduledGap) {
            probe.ring.available(.answers, head: probe.head) != 0
        }
        callerSpin.withLock { $0.end(outcome) }
    }

    /// Takes the inbox; returns true for terminate.
    private func takeCommands(_ now: Int64) -> Bool {
        let commands = inbox.withLock { inbox -> [Command] in
            defer { inbox = [] }
            return inbox
        }
        var terminate = false
        for command in commands {
            switch command {
            case .job(let job):
                if let broken {
                    let (count, _) = job.taskCount
                    job.sink.fail(start: 0, count: count, error: broken.narrowed(to: Array(0..<count)))
                } else {
                    jobs.append(job)
                }
            case .cancel(let job):
                guard job.cancelledAt == nil else { continue }
                job.cancelledAt = now
                jobs.removeAll { $0 === job }
                requeued.removeAll { $0.job === job }
            case .close:
                closing = true
            case .terminate:
                terminate = true
            case .spawned(let index, let result):
                slots[index].spawning = false
                switch result {
                case .success(let spare):
                    if broken != nil || (closing && jobs.isEmpty && requeued.isEmpty) {
                        discard(spare)
                    } else if slots[index].child == nil {
                        install(spare, at: index)
                        slots[index].startFailures = 0
                    } else if slots[index].retiring || settings.recycling.afterTasks != nil {
                        slots[index].spare = spare
                        publishPIDs()
                    } else {
                        discard(spare)
                    }
                case .failure(let error):
                    slots[index].startFailures += 1
                    slots[index].respawnAt = now + backoff(slots[index].startFailures + 1)
                    if slots[index].startFailures >= 5 && !slots.contains(where: { $0.child != nil }) {
                        breakPool(PoolTaskError(code: .childStartFailed, message: "The pool could not start a worker 5 times in a row: \(error)"))
                    }
                }
            }
        }
        return terminate
    }

    private func pollTimeout(_ now: Int64) -> CInt {
        var next: Int64 = .max
        for slot in slots {
            if let at = slot.respawnAt { next = min(next, at) }
            if let first = slot.inFlight.first {
                if let timeout = settings.taskTimeout {
                    // Saturating: a timeout as long as Duration holds is "never", not a trap.
                    let (at, overflow) = slot.busySince.addingReportingOverflow(timeout.poolNanoseconds)
                    next = min(next, overflow ? .max : at)
                }
                if let cancelled = first.job.cancelledAt { next = min(next, cancelled + graceNanoseconds) }
            }
        }
        if next == .max { return -1 }
        let (wait, overflow) = (next - min(next, now)).addingReportingOverflow(999_999)
        return overflow ? -1 : CInt(clamping: wait / 1_000_000)
    }

    private func checkTimers(_ now: Int64) {
        for index in slots.indices {
            if let at = slots[index].respawnAt, at <= now, broken == nil {
                slots[index].respawnAt = nil
                requestSpawn(index)
            }
            guard slots[index].fd >= 0, let first = slots[index].inFlight.first else { continue }
            if let timeout = settings.taskTimeout, now - slots[index].busySince >= timeout.poolNanoseconds {
                let pid = slots[index].pid
                try? slots[index].child?.kill()
                let indices = Array(first.start..<(first.start + first.count))
                let error = PoolTaskError(code: .timedOut, message: "Task \(describe(indices)) ran past the pool's task timeout of \(timeout) in worker \(pid), which was killed and replaced.",
                                          indices: indices, pid: pid, exitStatus: .signaled(.kill))
                workerLost(index, failFirst: error, now: now, immediate: true)
            } else if let cancelled = first.job.cancelledAt, now - cancelled >= graceNanoseconds {
                try? slots[index].child?.kill()
                workerLost(index, failFirst: nil, now: now, immediate: true)
            }
        }
    }

    private func backoff(_ failures: Int) -> Int64 {
        failures <= 1 ? 0 : min(1_000_000_000, 10_000_000 << Int64(min(failures - 2, 7)))
    }

    // MARK: dispatch

    private func depth(_ slot: Slot) -> Int {
        guard slot.chunkNanoseconds > 0 else { return 2 }
        return max(2, min(64, Int(1_000_000 / slot.chunkNanoseconds)))
    }

    private func dispatch(_ now: Int64) {
        let live = max(1, slots.filter { $0.ready && !$0.retiring }.count)
        var progressed = true
        while progressed {
            progressed = false
            for index in slots.indices where slots[index].ready && !slots[index].retiring && slots[index].direct == nil && slots[index].inFlight.count < depth(slots[index]) {
                // A worker to recycle after N tasks is given no more than N in all.
                var budget = Int.max
                if let limit = settings.recycling.afterTasks {
                    budget = limit - slots[index].tasksDone - slots[index].inFlight.reduce(0) { $0 + $1.count }
                    if budget <= 0 { continue }
                }
                guard let piece = nextPiece(live: live, budget: budget) else { flushAll(); return }
                send(piece, to: index, now: now)
                progressed = true
                if budget != .max && piece.count >= budget {
                    // Its last tasks are on their way: start its replacement now, so that it is
                    // ready by the time this one finishes.
                    slots[index].retiring = true
                    requestSpawn(index)
                }
            }
        }
        flushAll()
    }

    private func flushAll() {
        for index in slots.indices where slots[index].outSent < slots[index].out.count { flush(index) }
    }

    private func nextPiece(live: Int, budget: Int) -> Piece? {
        if !requeued.isEmpty {
            if requeued[0].count <= budget { return requeued.removeFirst() }
            // Split it: the part within the budget now, the rest stays first in line.
            let piece = Piece(job: requeued[0].job, start: requeued[0].start, count: budget, attempt: requeued[0].attempt)
            requeued[0].start += budget
            requeued[0].count -= budget
            return piece
        }
        var position = 0
        while position < jobs.count {
            let job = jobs[position]
            let (count, complete) = job.taskCount
            var available = count - job.dispatched
            if let window = job.window {
                available = min(available, window.consumed.load(ordering: .acquiring) + window.size - job.dispatched)
            }
            if available <= 0 {
                if complete && job.dispatched >= count { jobs.remove(at: position); continue }
                position += 1
                continue
            }
            let size = min(budget, chunkSize(job, available: available, remaining: count - job.dispatched, complete: complete, live: live))
            let piece = Piece(job: job, start: job.dispatched, count: size, attempt: 0)
            job.dispatched += size
            return piece
        }
        return nil
    }

    private func chunkSize(_ job: PoolJob, available: Int, remaining: Int, complete: Bool, live: Int) -> Int {
        guard job.inputs != nil else { return 1 }
        if settings.taskTimeout != nil { return 1 }
        switch job.chunking {
        case .fixed(let size):
            return max(1, min(size, available))
        case .adaptive:
            var size: Int
            if let cost = job.nanosecondsPerTask {
                size = Int(1_000_000 / max(cost, 1))
            } else {
                size = job.probe
                job.probe = min(job.probe * 2, 64)
            }
            if complete {
                // The tail: never more than a share of what is left, so workers finish together;
                // but never cut below about 100 µs of work, less than a round trip costs.
                var share = max(1, (remaining + 2 * live - 1) / (2 * live))
                if let cost = job.nanosecondsPerTask { share = max(share, Int(100_000 / max(cost, 1))) }
                size = min(size, share)
            }
            return max(1, min(size, available))
        }
    }

    /// When workers will be started after this job's function is known (the pool recycles them),
    /// and the fork server starts them: tells the server the function's type name, once per
    /// function, so that each worker forked from then on inherits the type's look-up instead of
    /// making it (a fifth of a new worker's start-up CPU). Best effort: a name the server cannot
    /// find costs nothing but the message, and the worker reports it as before.
    private func rehearseInForkServer(_ job: PoolJob) {
        lastRehearsedJob = job.id
        guard settings.configuration.startMethod == .forkServer,
              settings.recycling.afterTasks != nil || settings.recycling.aboveResidentBytes != nil,
              rehearsedFunctions.count < 64, let body = job.functionBody,
              let name = try? body.withUnsafeBytes({ try PoolWire.splitNamed($0).0 }),
              !rehearsedFunctions.contains(name) else { return }
        rehearsedFunctions.insert(name)
        let key = ForkServerKey(executable: settings.configuration.resolvedExecutable, environment: settings.configuration.environmentEntries)
        try? ProcessMonitor.shared.submit(.rehearse(key, typeName: name))
    }

    /// Appends `piece`'s frames to what waits for worker `index`. `workerMaySpin`: the worker may
    /// poll for its next task after answering this one (a direct task; ``PoolSpin``); every other
    /// piece turns that off, so that a worker that runs out of a map's chunks sleeps at once.
    private func send(_ piece: Piece, to index: Int, now: Int64, workerMaySpin: Bool = false) {
        if let ring = slots[index].ring, (ring.load32(PoolRing.Offset.workerMaySpin) != 0) != workerMaySpin {
            ring.store32(PoolRing.Offset.workerMaySpin, workerMaySpin ? 1 : 0)
        }
        let job = piece.job
        let chunk = nextChunk
        nextChunk &+= 1
        if nextChunk == 0 { nextChunk = 1 }
        if slots[index].outSent == slots[index].out.count {
            slots[index].out.removeAll(keepingCapacity: true)
            slots[index].outSent = 0
        }
        if let functionBody = job.functionBody, !slots[index].knownJobs.contains(job.id) {
            if job.id != lastRehearsedJob { rehearseInForkServer(job) }
            slots[index].knownJobs.insert(job.id)
            PoolWire.appendHeader(&slots[index].out, kind: .function, a: job.id, b: 0, length: functionBody.count)
            slots[index].out.append(contentsOf: functionBody)
        }
        if let inputs = job.inputs {
            inputs.appendChunkFrame(id: job.id, chunk: chunk, start: piece.start, count: piece.count, into: &slots[index].out)
        } else if let taskBody = job.taskBody {
            PoolWire.appendHeader(&slots[index].out, kind: .task, a: job.id, b: chunk, length: taskBody.count)
            slots[index].out.append(contentsOf: taskBody)
        }
        if slots[index].inFlight.isEmpty { slots[index].busySince = now }
        slots[index].inFlight.append(InFlight(chunk: chunk, job: job, start: piece.start, count: piece.count, attempt: piece.attempt))
    }

    /// Copies what is waiting for a worker into its task ring, as far as there is room, and wakes
    /// it if it sleeps. When the ring is full, asks the worker for a wake-up once it makes room.
    private func flush(_ index: Int) {
        guard let ring = slots[index].ring, slots[index].fd >= 0, slots[index].outSent < slots[index].out.count else { return }
        var tail = slots[index].taskTail
        var moved = false
        var askedRoom = false
        while slots[index].outSent < slots[index].out.count {
            let from = slots[index].outSent
            let copied = slots[index].out.withUnsafeBytes { raw in
                ring.produce(.tasks, UnsafeRawBufferPointer(rebasing: raw[from...]), tail: &tail)
            }
            guard let copied else {
                slots[index].taskTail = tail
                _ = protocolError(index, "wrote an impossible task-ring head")
                return
            }
            slots[index].outSent += copied
            if copied > 0 { moved = true; continue }
            // Full: ask for a wake-up when the worker takes some, then look once more.
            if askedRoom { break }
            ring.store32(PoolRing.Offset.taskSpaceWanted, 1)
            askedRoom = true
        }
        slots[index].taskTail = tail
        if askedRoom && slots[index].outSent == slots[index].out.count { ring.store32(PoolRing.Offset.taskSpaceWanted, 0) }
        if moved { wakeWorker(ring, slots[index].fd) }
    }

    /// Wakes a worker that said it sleeps (for tasks, or for room for its answers).
    private func wakeWorker(_ ring: PoolRing, _ fd: Int32) {
        ring.wakeWorker()
    }

    /// Asks a worker for a wake-up before the driver (or a direct reader) waits: when it has
    /// published half of the answers it owes (all of them when it owes one or two, or the pool
    /// times tasks), or at once for a failure or when it runs out of work. True when there is
    /// something to read already, so that the caller must not wait.
    private func askWake(_ index: Int) -> Bool {
        guard let ring = slots[index].ring else { return false }
        let owed = slots[index].ready ? slots[index].inFlight.count : 1
        let batch = settings.taskTimeout != nil ? 1 : max(1, owed / 2)
        ring.store(PoolRing.Offset.wakeAt, slots[index].framesSeen &+ UInt64(batch))
        slots[index].wakeAsked = true
        return ringHasData(index)
    }

    private func clearWake(_ index: Int) {
        if let ring = slots[index].ring, ring.load(PoolRing.Offset.wakeAt) != 0 { ring.store(PoolRing.Offset.wakeAt, 0) }
        slots[index].wakeAsked = false
    }

    /// Whether the worker published answer bytes the driver has not taken (or wrote an impossible tail).
    private func ringHasData(_ index: Int) -> Bool {
        guard let ring = slots[index].ring else { return false }
        return ring.available(.answers, head: slots[index].answerHead) != 0
    }

    // MARK: answers

    /// Reads what a worker published: its wake-up bytes and end of stream from the socket when
    /// `socket` (poll said so), then the answers in its ring, then sends what waits for room.
    private func service(_ index: Int, socket: Bool) {
        var ended = false
        if socket {
            while slots[index].fd >= 0 {
                let n: Int
                do throws(Errno) {
                    let fd = slots[index].fd
                    n = try Self.read(fd, &readBuffer)
                } catch {
                    if error != .wouldBlock && error != .resourceTemporarilyUnavailable { ended = true }
                    break
                }
                if n == 0 { ended = true; break }
                if n < readBuffer.count { break }
            }
        }
        // The answers it published before it died count: read them before its death is handled.
        while slots[index].fd >= 0, let ring = slots[index].ring {
            var head = slots[index].answerHead
            let taken = readBuffer.withUnsafeMutableBytes { ring.consume(.answers, into: $0, head: &head) }
            guard let taken else {
                _ = protocolError(index, "wrote an impossible answer-ring tail")
                return
            }
            slots[index].answerHead = head
            if taken == 0 { break }
            // It may sleep until there is room for the rest of an answer.
            wakeWorker(ring, slots[index].fd)
            slots[index].input.append(contentsOf: readBuffer[0..<taken])
            if !parseFrames(index) { return }
        }
        if ended && slots[index].fd >= 0 {
            workerLost(index, failFirst: nil, now: system_clockMonotonicNanoseconds(), immediate: false)
            return
        }
        if slots[index].outSent < slots[index].out.count { flush(index) }
    }

    private static func read(_ fd: Int32, _ buffer: inout [UInt8]) throws(Errno) -> Int {
        var result: Result<Int, Errno> = .success(0)
        buffer.withUnsafeMutableBytes { raw in
            do throws(Errno) {
                result = .success(try system_receiveNonBlocking(fd, raw))
            } catch {
                result = .failure(error)
            }
        }
        return try result.get()
    }

    /// Handles every complete frame; false when the worker was dropped for a protocol error.
    private func parseFrames(_ index: Int) -> Bool {
        while slots[index].input.count - slots[index].inputStart >= PoolWire.headerSize {
            let start = slots[index].inputStart
            let (kind, length) = slots[index].input.withUnsafeBytes { raw in
                (raw.loadLE(UInt32.self, at: start), Int(raw.loadLE(UInt32.self, at: start + 12)))
            }
            let chunk = slots[index].input.withUnsafeBytes { $0.loadLE(UInt32.self, at: start + 8) }
            guard length <= PoolWire.maximumBody else { return protocolError(index, "announced a \(length)-byte answer") }
            // A kind no worker sends is garbage: refused at its header, not after waiting for its body.
            guard let known = PoolFrameKind(rawValue: kind), known.rawValue >= PoolFrameKind.ready.rawValue else {
                return protocolError(index, "sent frame kind \(kind)")
            }
            guard slots[index].input.count - start >= PoolWire.headerSize + length else { break }
            let bodyRange = (start + PoolWire.headerSize)..<(start + PoolWire.headerSize + length)
            slots[index].inputStart = bodyRange.upperBound
            slots[index].framesSeen &+= 1
            switch PoolFrameKind(rawValue: kind) {
            case .ready?:
                slots[index].ready = true
                if !firstReady.isDone && slots.allSatisfy({ $0.ready || $0.child == nil }) { firstReady.complete() }
            case .initializerFailed?:
                let failure = slots[index].input.withUnsafeBytes { raw in
                    try? WireDecoder().decode(WireFailure.self, from: UnsafeRawBufferPointer(rebasing: raw[bodyRange]))
                }
                let error = PoolTaskError(code: .childStartFailed,
                                          message: "The pool's initializer threw in worker \(slots[index].pid): \(failure?.message ?? "(an error that could not be read)")",
                                          pid: slots[index].pid, remoteTypeName: failure?.typeName, remoteError: failure?.decodedError)
                startError.withLock { if $0 == nil { $0 = error } }
                breakPool(error)
                firstReady.complete()
                return false
            case .result?:
                guard let first = slots[index].inFlight.first, first.chunk == chunk else {
                    return protocolError(index, "answered chunk \(chunk), which it was not running")
                }
                slots[index].inFlight.removeFirst()
                let now = system_clockMonotonicNanoseconds()
                slots[index].busySince = now
                slots[index].deaths = 0
                slots[index].tasksDone += first.count
                let pid = slots[index].pid
                let (resident, elapsed) = slots[index].input.withUnsafeBytes { raw -> (Int, Int64) in
                    let body = UnsafeRawBufferPointer(rebasing: raw[bodyRange])
                    if first.job.cancelledAt == nil {
                        first.job.sink.deliver(start: first.start, count: first.count, body: body, pid: pid)
                    }
                    guard body.count >= 16 else { return (0, 0) }
                    return (Int(truncatingIfNeeded: body.loadLE(UInt64.self, at: 0)), Int64(truncatingIfNeeded: body.loadLE(UInt64.self, at: 8)))
                }
                let perTask = Double(max(elapsed, 1)) / Double(first.count) + 50 // plus a little for the round trip
                let job = first.job
                job.nanosecondsPerTask = job.nanosecondsPerTask.map { 0.7 * $0 + 0.3 * perTask } ?? perTask
                slots[index].chunkNanoseconds = Double(elapsed)
                job.answered += first.count
                finishIfDone(job)
                if job.window != nil { discardAnswered(job) }
                if let limit = settings.recycling.afterTasks, slots[index].tasksDone >= limit { slots[index].retiring = true }
                if let limit = settings.recycling.aboveResidentBytes, resident > limit { slots[index].retiring = true }
            default:
                return protocolError(index, "sent frame kind \(kind)")
            }
        }
        if slots[index].inputStart == slots[index].input.count {
            slots[index].input.removeAll(keepingCapacity: true)
            slots[index].inputStart = 0
        } else if slots[index].inputStart > (1 << 20) {
            slots[index].input.removeFirst(slots[index].inputStart)
            slots[index].inputStart = 0
        }
        if slots[index].retiring && slots[index].inFlight.isEmpty { retire(index) }
        return true
    }

    /// A mapUnordered's inputs that no worker holds and none will be sent again go.
    private func discardAnswered(_ job: PoolJob) {
        var lowest = job.dispatched
        for piece in requeued where piece.job === job { lowest = min(lowest, piece.start) }
        for slot in slots {
            for piece in slot.inFlight where piece.job === job { lowest = min(lowest, piece.start) }
        }
        job.inputs?.discard(below: lowest)
    }

    private func finishIfDone(_ job: PoolJob) {
        let (count, complete) = job.taskCount
        guard complete, job.answered >= count, job.functionBody != nil else { return }
        for index in slots.indices where slots[index].knownJobs.remove(job.id) != nil && slots[index].fd >= 0 {
            if slots[index].outSent == slots[index].out.count {
                slots[index].out.removeAll(keepingCapacity: true)
                slots[index].outSent = 0
            }
            PoolWire.appendHeader(&slots[index].out, kind: .forget, a: job.id, b: 0, length: 0)
            flush(index)
        }
    }

    private func protocolError(_ index: Int, _ what: String) -> Bool {
        system_writeStderr("multiprocessing: pool worker \(slots[index].pid) \(what); it is replaced.\n")
        try? slots[index].child?.kill()
        workerLost(index, failFirst: nil, now: system_clockMonotonicNanoseconds(), immediate: false)
        return false
    }

    /// A worker that reached its recycling limit: its channel closes, a fresh one takes its place.
    private func retire(_ index: Int) {
        let spare = slots[index].spare
        slots[index].spare = nil
        stopWorker(index, kill: false)
        slots[index].retiring = false
        slots[index].tasksDone = 0
        slots[index].input = []
        slots[index].inputStart = 0
        slots[index].knownJobs = []
        slots[index].inFlight = []
        slots[index].out = []
        slots[index].outSent = 0
        retired.removeAll { !$0.isAlive }
        if let spare {
            if broken == nil && !(closing && jobs.isEmpty && requeued.isEmpty) { install(spare, at: index) } else { discard(spare) }
        } else if broken == nil && !closing {
            requestSpawn(index)
        }
    }

    // MARK: deaths

    /// A worker is gone (or was killed): its first chunk fails (or is retried), the rest go back to the queue.
    private func workerLost(_ index: Int, failFirst timeoutError: PoolTaskError?, now: Int64, immediate: Bool) {
        let slot = slots[index]
        let child = slot.child
        stopWorker(index, kill: false)
        // The exit status: the process has closed its socket, so it is exiting or gone.
        var status: ExitStatus?
        if let child {
            if (try? child.join(timeout: .seconds(2))) == nil {
                try? child.kill()
                try? child.join(timeout: .seconds(5))
            }
            status = child.exitStatus
        }
        var held = slot.inFlight
        if let first = held.first {
            held.removeFirst()
            if first.job.cancelledAt != nil {
                // A cancelled job's chunk: nothing to report.
            } else if let timeoutError {
                first.job.answered += first.count
                first.job.sink.fail(start: first.start, count: first.count, error: timeoutError)
                finishIfDone(first.job)
            } else {
                let indices = Array(first.start..<(first.start + first.count))
                if case .retry(let times) = settings.onWorkerDeath, first.attempt < times {
                    // Each task alone, so that one that kills its worker fails by itself.
                    for start in indices.reversed() {
                        requeued.insert(Piece(job: first.job, start: start, count: 1, attempt: first.attempt + 1), at: 0)
                    }
                } else {
                    let what = first.job.taskBody != nil ? "a submitted task" : "task\(indices.count == 1 ? "" : "s") \(describe(indices))"
                    let error = PoolTaskError(code: .childDied,
                                              message: "Pool worker \(slot.pid) \(status?.description ?? "ended") (exit code \(status?.code ?? 0)) while it held \(what); the pool replaced it.",
                                              indices: indices, pid: slot.pid, exitStatus: status)
                    first.job.answered += first.count
                    first.job.sink.fail(start: first.start, count: first.count, error: error)
                    finishIfDone(first.job)
                }
            }
        }
        // The chunks it had not begun go back, in order, ahead of new work.
        for piece in held.reversed() where piece.job.cancelledAt == nil {
            requeued.insert(Piece(job: piece.job, start: piece.start, count: piece.count, attempt: piece.attempt), at: 0)
        }
        var fresh = Slot(number: slot.number)
        fresh.deaths = immediate ? 0 : slot.deaths + 1
        fresh.chunkNanoseconds = slot.chunkNanoseconds
        fresh.spawning = slot.spawning
        slots[index] = fresh
        if !slot.ready && timeoutError == nil {
            // It died before it was ready: if it was the first, creation must not wait for ever.
            if !firstReady.isDone {
                startError.withLock {
                    if $0 == nil {
                        $0 = PoolTaskError(code: .childStartFailed, message: "Pool worker \(slot.pid) \(status?.description ?? "ended") before it was ready.", pid: slot.pid, exitStatus: status)
                    }
                }
                firstReady.complete()
            }
        }
        if let spare = slot.spare {
            install(spare, at: index)
            slots[index].deaths = fresh.deaths
        } else if !slot.spawning && broken == nil {
            slots[index].respawnAt = now + backoff(fresh.deaths)
        }
    }

    private func breakPool(_ error: PoolTaskError) {
        guard broken == nil else { return }
        broken = error
        for piece in requeued where piece.job.cancelledAt == nil {
            piece.job.answered += piece.count
            piece.job.sink.fail(start: piece.start, count: piece.count, error: error.narrowed(to: Array(piece.start..<(piece.start + piece.count))))
        }
        requeued = []
        for job in jobs {
            let (count, _) = job.taskCount
            if count > job.dispatched {
                job.sink.fail(start: job.dispatched, count: count - job.dispatched, error: error.narrowed(to: Array(job.dispatched..<count)))
                job.answered += count - job.dispatched
                job.dispatched = count
            }
        }
        jobs = []
        for index in slots.indices {
            for piece in slots[index].inFlight where piece.job.cancelledAt == nil {
                piece.job.sink.fail(start: piece.start, count: piece.count, error: error.narrowed(to: Array(piece.start..<(piece.start + piece.count))))
            }
            slots[index].inFlight = []
            slots[index].respawnAt = nil
            stopWorker(index, kill: true)
        }
    }

    private func shutDown(terminating: Bool) {
        let cancelled = PoolTaskError(code: .cancelled, message: "The pool was terminated before this task finished.")
        if terminating {
            for job in jobs {
                let (count, _) = job.taskCount
                if count > job.dispatched { job.sink.fail(start: job.dispatched, count: count - job.dispatched, error: cancelled.narrowed(to: Array(job.dispatched..<count))) }
            }
            for piece in requeued { piece.job.sink.fail(start: piece.start, count: piece.count, error: cancelled.narrowed(to: Array(piece.start..<(piece.start + piece.count)))) }
            for slot in slots {
                for piece in slot.inFlight where piece.job.cancelledAt == nil {
                    piece.job.sink.fail(start: piece.start, count: piece.count, error: cancelled.narrowed(to: Array(piece.start..<(piece.start + piece.count))))
                }
            }
            jobs = []
            requeued = []
        }
        // Replacements being started: wait for them, and stop them with the rest.
        var spares = slots.compactMap(\.spare)
        while slots.contains(where: { $0.spawning }) {
            _ = try? system_pollMany([wake], events: [Int16(POLLIN_VALUE)], timeoutMilliseconds: 100)
            system_eventfdDrain(wake)
            let commands = inbox.withLock { inbox -> [Command] in
                let spawned = inbox.filter { if case .spawned = $0 { return true } else { return false } }
                inbox.removeAll { if case .spawned = $0 { return true } else { return false } }
                return spawned
            }
            for case .spawned(let index, let result) in commands {
                slots[index].spawning = false
                if case .success(let spare) = result { spares.append(spare) }
            }
        }
        for spare in spares {
            spare.ring.closeForWorker()
            system_close(spare.fd)
        }
        // Close every channel: an idle worker exits at once; a busy one is asked with SIGTERM, then killed.
        let children = slots.compactMap(\.child) + spares.map(\.child) + retired
        for index in slots.indices { stopWorker(index, kill: false) }
        if terminating { for child in children { try? child.terminate() } }
        let deadline = system_clockMonotonicNanoseconds() + (terminating ? graceNanoseconds : 30 * graceNanoseconds)
        for child in children {
            let left = max(0, deadline - system_clockMonotonicNanoseconds())
            if (try? child.join(timeout: .nanoseconds(left))) == nil {
                try? child.kill()
                try? child.join(timeout: .seconds(5))
            }
        }
        firstReady.complete()
        // Drop what is left of the inbox: jobs sent after the end fail as cancelled.
        let late = inbox.withLock { inbox -> [Command] in
            defer { inbox = [] }
            return inbox
        }
        for case .job(let job) in late {
            let (count, _) = job.taskCount
            job.sink.fail(start: 0, count: count, error: cancelled.narrowed(to: Array(0..<count)))
        }
        closeWake()
        stopped.complete()
    }

    private func describe(_ indices: [Int]) -> String {
        guard let first = indices.first, let last = indices.last else { return "" }
        if indices.count == 1 { return "\(first)" }
        return "\(first)...\(last)"
    }
}

/// The outcomes of a pool's first worker starts, made on several threads at once.
private final class PoolStarts: Sendable {
    private let results: Mutex<[Result<PoolDriver.Spare, any Error>?]>
    private let left: Atomic<Int>
    private let done = OneShot()

    init(count: Int) {
        results = Mutex(Array(repeating: nil, count: count))
        left = Atomic(count)
    }

    func record(_ index: Int, _ result: Result<PoolDriver.Spare, any Error>) {
        results.withLock { $0[index] = result }
        if left.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { done.set() }
    }

    /// Waits until every start has ended, then gives their outcomes.
    func wait() -> [Result<PoolDriver.Spare, any Error>?] {
        _ = done.wait(until: .never)
        return results.withLock { $0 }
    }
}

private let POLLIN_VALUE: Int32 = 0x001
private let POLLOUT_VALUE: Int32 = 0x004

extension Duration {
    var poolNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = product.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflow2 ? .max : sum
    }
}
