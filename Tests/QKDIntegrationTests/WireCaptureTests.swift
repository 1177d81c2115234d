import QKDTestKit
import Foundation
import QKDCore
import QKDLaunch
import QKDWire
import Testing

/// The TCP payloads of a pcap file, one byte stream per flow (source and destination port, in
/// capture order; loopback delivers in order). Link types: Ethernet (Linux `lo`), Linux cooked
/// (SLL, SLL2); IPv4 only.
struct PacketCapture {
    struct Flow: Hashable { var from: UInt16; var to: UInt16 }
    var packets = 0
    var streams: [Flow: [UInt8]] = [:]

    /// Streams given as they are (the search's own check).
    init(streams: [Flow: [UInt8]]) { self.streams = streams }

    init(path: String) throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        guard bytes.count >= 24 else { throw CaptureError("\(path): \(bytes.count) bytes, not a pcap file") }
        let magic = Self.u32(bytes, 0, little: true)
        let little: Bool
        switch magic {
        case 0xA1B2_C3D4, 0xA1B2_3C4D: little = true
        case 0xD4C3_B2A1, 0x4D3C_B2A1: little = false
        default: throw CaptureError("\(path): pcap magic \(String(magic, radix: 16)) unknown")
        }
        let linkType = Self.u32(bytes, 20, little: little)
        let linkHeader: Int
        switch linkType {
        case 1: linkHeader = 14
        case 113: linkHeader = 16
        case 276: linkHeader = 20
        default: throw CaptureError("\(path): link type \(linkType) not handled")
        }
        var at = 24
        while at + 16 <= bytes.count {
            let captured = Int(Self.u32(bytes, at + 8, little: little))
            let start = at + 16
            at = start + captured
            guard at <= bytes.count else { break }  // a record cut by the end of the capture
            packets += 1
            let ip = start + linkHeader
            guard captured > linkHeader + 20, bytes[ip] >> 4 == 4, bytes[ip + 9] == 6 else { continue }
            let tcp = ip + Int(bytes[ip] & 0x0F) * 4
            let total = Int(bytes[ip + 2]) << 8 | Int(bytes[ip + 3])
            guard tcp + 20 <= at else { continue }
            let payload = tcp + Int(bytes[tcp + 12] >> 4) * 4
            let end = min(at, ip + total)
            guard payload < end else { continue }
            let flow = Flow(from: UInt16(bytes[tcp]) << 8 | UInt16(bytes[tcp + 1]), to: UInt16(bytes[tcp + 2]) << 8 | UInt16(bytes[tcp + 3]))
            streams[flow, default: []] += bytes[payload..<end]
        }
    }

    static func u32(_ b: [UInt8], _ i: Int, little: Bool) -> UInt32 {
        let v = (0..<4).map { UInt32(b[i + $0]) }
        return little ? v[0] | v[1] << 8 | v[2] << 16 | v[3] << 24 : v[3] | v[2] << 8 | v[1] << 16 | v[0] << 24
    }

    var payloadBytes: Int { streams.values.reduce(0) { $0 + $1.count } }

    /// Places where an envelope header could be read: "QK", version 1, a known kind, a link
    /// index below `links` (8 fixed bytes: by chance once in ~2^56 bytes of ciphertext).
    func envelopeHeaders(links: Int) -> Int {
        let kinds = Set(MessageKind.allCases.map(\.rawValue))
        var found = 0
        for stream in streams.values where stream.count >= 8 {
            for i in 0..<(stream.count - 7) where stream[i] == Envelope.magic.0 && stream[i + 1] == Envelope.magic.1 {
                if stream[i + 2] == Envelope.currentVersion, kinds.contains(stream[i + 3]), stream[i + 4] == 0, stream[i + 5] == 0,
                   stream[i + 6] == 0, Int(stream[i + 7]) < links { found += 1 }
            }
        }
        return found
    }

    /// The security mechanism of every ZMTP 3 greeting seen at a stream's start (RFC 23/ZMTP:
    /// signature 0xFF … 0x7F, version, then the mechanism name in 20 bytes).
    var greetingMechanisms: [String] {
        streams.values.compactMap { s in
            guard s.count >= 32, s[0] == 0xFF, s[9] == 0x7F, s[10] == 3 else { return nil }
            return String(decoding: s[12..<32].prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// Shannon entropy of the payload bytes, bits per byte (8 for uniformly random bytes).
    var entropy: Double {
        var counts = [Int](repeating: 0, count: 256)
        for s in streams.values { for b in s { counts[Int(b)] += 1 } }
        let n = Double(counts.reduce(0, +))
        return counts.filter { $0 > 0 }.reduce(0) { h, c in let p = Double(c) / n; return h - p * log2(p) }
    }
}

struct CaptureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// What an observer of the network sees (issue 17): a line-3 with tcp endpoints on loopback,
/// every link distilling, captured with tcpdump for 10 s.
@Suite(.serialized) struct WireCaptureTests {
    @Test func aTenSecondCaptureOfTheTCPNetworkHoldsNoReadableEnvelope() throws {
        let tcpdump = try #require(["/usr/bin/tcpdump", "/usr/sbin/tcpdump"].first { FileManager.default.isExecutableFile(atPath: $0) },
                                   "tcpdump not found: run `make deps` (it installs Debian's tcpdump)")
        let (path, ports) = HostileWireTests.tcpLineThree(label: "pcap")
        let network = try Network.up(topologyPath: path, runDir: Harness.runDirectory("pcap"), binDirectory: Harness.binDirectory,
                                     readyTimeoutSeconds: 60)
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        // 60 s: both links distil their first blocks (a few seconds each at time scale 1).
        #expect(eventually(within: 60) {
            network.pools().links.allSatisfy { $0.ends.count == 2 && $0.ends.allSatisfy { $0.generatedBitsTotal > 0 } }
        })
        let pcap = network.layout.root + "/wire.pcap", log = network.layout.root + "/tcpdump.out"
        let filter = ports.flatMap { ["tcp port \($0)", "tcp port \($0 + 1)"] }.joined(separator: " or ")
        // 10 s of capture (-G 10 -W 1: one file of ten seconds, then tcpdump exits); -Z root
        // keeps the right to write into the run directory (0700).
        let pid = try Processes.spawn(executable: tcpdump, arguments: ["-i", "lo", "-n", "-s", "0", "-U", "-Z", "root", "-G", "10", "-W", "1",
                                                                         "-w", pcap, filter], outputPath: log)
        defer { if Processes.childState(pid) == .running { kill(pid, SIGTERM); Processes.waitUntilGone([pid], seconds: 5) } }
        // 10 s: tcpdump opens the interface and says so.
        #expect(eventually(within: 10) { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("listening on") })
        // Control connections opened while it listens (a fresh session to every node), so their
        // greetings are in the capture too.
        let fresh = try Network.open(runDir: network.layout.root)
        #expect(fresh.pools().unanswered.isEmpty)
        var state: Processes.ChildState = .running
        // 30 s: the ten seconds of capture, and tcpdump's exit after its one file.
        #expect(eventually(within: 30) {
            state = Processes.childState(pid)
            return state != .running
        })
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(state == .exited(0), "\(state): \(output)")
        let capture = try PacketCapture(path: pcap)
        let mechanisms = capture.greetingMechanisms
        let headers = capture.envelopeHeaders(links: network.topology.links.count)
        // The search finds a header where there is one (in the middle of other bytes).
        let plain = Envelope(kind: .siftAnnouncement, link: LinkIndex(1), sequence: 9, payload: [1, 2, 3]).encoded()
        #expect(PacketCapture(streams: [.init(from: 1, to: 2): [7, 7] + plain + [7]]).envelopeHeaders(links: 2) == 1)
        print(String(format: "capture of 10 s: %d packets, %d flows, %d TCP payload bytes, %d ZMTP greetings (%@), entropy %.4f bits/byte, envelope headers readable: %d",
                     capture.packets, capture.streams.count, capture.payloadBytes, mechanisms.count,
                     Set(mechanisms).sorted().joined(separator: ", "), capture.entropy, headers))
        // The capture holds the network's traffic (photon frames are megabytes a second)...
        #expect(capture.payloadBytes > 1 << 20 && capture.streams.count >= 4, "\(capture.payloadBytes) bytes in \(capture.streams.count) flows")
        // ...every connection seen starting speaks CURVE, and none of it is readable.
        #expect(!mechanisms.isEmpty && mechanisms.allSatisfy { $0 == "CURVE" }, "\(mechanisms)")
        #expect(headers == 0)
        #expect(capture.entropy > 7.95, "payload bytes are not ciphertext-like: \(capture.entropy) bits/byte")
        passed = true
    }
}
