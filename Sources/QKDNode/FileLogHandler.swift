#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization

/// An append-only log file shared by every logger of a process.
public final class LogSink: Sendable {
    private let fd: Mutex<Int32>

    /// Opens (creating, mode 0600: only the run's owner reads a node's log) `path` for appending.
    public init(path: String) throws(NodeError) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw NodeError(.io, "cannot open log file '\(path)': \(String(cString: strerror(errno)))")
        }
        fd = Mutex(descriptor)
    }

    /// Standard error, for tools.
    public init(fileDescriptor: Int32) { fd = Mutex(fileDescriptor) }

    public func write(_ line: String) {
        fd.withLock { descriptor in
            var bytes = Array(line.utf8)
            bytes.append(0x0A)
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                offset += n
            }
        }
    }
}

/// swift-log handler writing one line per record:
/// `2026-11-23T10:15:02.123Z notice [node=Beijing link.id=Beijing-Langfang] link up`.
/// Callers MUST NOT pass key material in messages or metadata.
public struct FileLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    private let sink: LogSink
    private let label: String

    public init(label: String, sink: LogSink) {
        self.label = label
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let meta = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        sink.write("\(FileLogHandler.timestamp()) \(event.level) [\(meta)] \(event.message)")
    }

    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))."
            + "\(pad(Int32(ts.tv_nsec / 1_000_000), 3))Z"
    }
}
