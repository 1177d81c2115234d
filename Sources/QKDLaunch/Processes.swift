import CQKDSystem
import Foundation
import QKDCore

/// Spawning, probing and stopping node processes by PID. Never by name patterns.
public enum Processes {
    /// Starts `executable` with `arguments`, standard output and error appended to
    /// `outputPath`, in a session of its own (so a terminal's Ctrl-C reaches only qkdctl).
    public static func spawn(executable: String, arguments: [String], outputPath: String)
        throws(LaunchError) -> Int32
    {
        let argv = ([executable] + arguments).map { strdup($0) }
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = (argv + [nil]).withUnsafeBufferPointer { buffer in
            qkd_spawn(executable, buffer.baseAddress, outputPath, 1, &pid)
        }
        guard rc == 0 else {
            throw LaunchError(.spawnFailed, "cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        return pid
    }

    /// Whether `pid` is a live (not zombie) process whose program is `programName`.
    public static func isAlive(_ pid: Int32, programName: String = "qkd-node") -> Bool {
        guard pid > 0 else { return false }
        reap(pid)
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")")
        else { return false }
        let state = stat[stat.index(close, offsetBy: 2)...].first
        if state == "Z" || state == "X" { return false }
        guard let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        let argv0 = String(decoding: cmdline.prefix { $0 != 0 }, as: UTF8.self)
        return URL(fileURLWithPath: argv0).lastPathComponent == programName
    }

    /// What became of a process this one spawned.
    public enum ChildState: Equatable, Sendable {
        case running
        case exited(Int32)
        case signaled(Int32)
        /// Not a child of this process (or already collected): ask `isAlive` instead.
        case notChild
    }

    /// The state of our child `pid`, collecting it if it ended. Unlike `isAlive` this has no
    /// window during exec, when /proc/PID/cmdline is briefly empty.
    public static func childState(_ pid: Int32) -> ChildState {
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        if rc == 0 { return .running }
        if rc != pid { return .notChild }
        if status & 0x7F == 0 { return .exited((status >> 8) & 0xFF) }
        return .signaled(status & 0x7F)
    }

    /// Whether `pid` still runs: decided by `waitpid` for our own children (no exec-window
    /// race), by `isAlive` for other processes.
    public static func isRunning(_ pid: Int32, programName: String = "qkd-node") -> Bool {
        switch childState(pid) {
        case .running: return true
        case .exited, .signaled: return false
        case .notChild: return isAlive(pid, programName: programName)
        }
    }

    /// Collects the exit status of `pid` if it is our child and has exited.
    public static func reap(_ pid: Int32) {
        var status: Int32 = 0
        _ = waitpid(pid, &status, WNOHANG)
    }

    /// Sends SIGTERM to every live pid, waits up to `graceSeconds` for them to exit, then
    /// sends SIGKILL to what is left and waits for that too. Returns the pids that needed
    /// SIGKILL.
    @discardableResult
    public static func stop(_ pids: [Int32], graceSeconds: Double = 3, programName: String = "qkd-node")
        -> [Int32]
    {
        let live = pids.filter { isRunning($0, programName: programName) }
        for pid in live { kill(pid, SIGTERM) }
        var remaining = waitForExit(live, seconds: graceSeconds, programName: programName)
        for pid in remaining { kill(pid, SIGKILL) }
        let killed = remaining
        remaining = waitForExit(remaining, seconds: 5, programName: programName)
        waitUntilGone(live, seconds: 5)
        return killed
    }

    /// Waits until the process table no longer lists `pids`, not even as zombies: our own
    /// children are reaped here; orphans are reaped by init, which may take a moment.
    public static func waitUntilGone(_ pids: [Int32], seconds: Double) {
        let deadline = Date(timeIntervalSinceNow: seconds)
        var remaining = pids
        while !remaining.isEmpty && Date() < deadline {
            remaining.forEach { reap($0) }
            remaining = remaining.filter { FileManager.default.fileExists(atPath: "/proc/\($0)") }
            if !remaining.isEmpty { usleep(10_000) }
        }
    }

    /// Waits until none of `pids` is alive or `seconds` pass; returns those still alive.
    public static func waitForExit(_ pids: [Int32], seconds: Double, programName: String = "qkd-node")
        -> [Int32]
    {
        var remaining = pids
        let deadline = Date(timeIntervalSinceNow: seconds)
        while true {
            remaining = remaining.filter { isRunning($0, programName: programName) }
            if remaining.isEmpty || Date() >= deadline { return remaining }
            usleep(10_000)
        }
    }

    /// Resident set size of `pid` in bytes (VmRSS), or nil.
    public static func residentBytes(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count >= 2, let kb = Int(fields[1]) { return kb * 1024 }
        }
        return nil
    }
}
