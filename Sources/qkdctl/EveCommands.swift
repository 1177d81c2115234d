import ArgumentParser
import Foundation
import QKDAttacks
import QKDLaunch
import QKDWire

/// `qkdctl eve ...`: eavesdroppers spliced into a running network's links.
struct EveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eve", abstract: "Splice an eavesdropper into a link (add), take her out (remove), or list what she learned.",
        subcommands: [Add.self, Remove.self, List.self])

    static func describe(_ r: EavesdropperReport) -> String {
        var out = "eve on \(r.link): \(r.attack), fraction \(r.fraction)"
        if let km = r.atKm { out += String(format: ", at %.1f km from the a end", km) }
        out += " (pid \(r.pid.map(String.init) ?? "-"), seed \(r.seed))\n"
        out += "  frames \(r.framesSeen), pulses seen \(r.pulsesSeen), attacked \(r.pulsesAttacked)"
        if r.pulsesResent > 0 { out += ", resent \(r.pulsesResent)" }
        if r.pulsesBlocked > 0 { out += ", blocked \(r.pulsesBlocked)" }
        if r.photonsKept > 0 { out += ", photons kept \(r.photonsKept)" }
        out += "\n"
        if r.messagesSeen > 0 { out += "  post-processing messages seen \(r.messagesSeen), altered \(r.messagesAltered)\n" }
        out += "  " + r.knowledgeSummary
        return out
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start an eavesdropper process and splice it into a link's fibre and public channel (the nodes keep running).")
        @OptionGroup var options: NetworkOptions
        @Option(help: "Link name (A-B).") var link: String
        @Option(help: "intercept-resend, pns, beam-splitting or classical-tamper.") var attack: String
        @Option(help: "Fraction of pulses (classical-tamper: of post-processing messages) attacked, 0...1.") var fraction: Double = 1
        @Option(name: .customLong("at-km"), help: "Eve's point, km from the link's a end (default: intercept-resend at Bob's entrance, pns and beam-splitting at Alice's exit).")
        var atKm: Double?
        @Option(help: "Seed of Eve's random choices (default: from the topology's seed).") var seed: UInt64?
        @Flag(help: "Print Eve's report as JSON.") var json = false

        func run() throws {
            guard let kind = Eavesdropper.Attack(rawValue: attack) else {
                throw CLIError("--attack: '\(attack)' is not one of \(Eavesdropper.Attack.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            switch try options.network().addEve(link: link, attack: kind, fraction: fraction, atKm: atKm, seed: seed) {
            case .success(let report): if json { try printJSON(report) } else { print(EveCommand.describe(report)) }
            case .failure(let e): throw CLIError(e.message)
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Take the eavesdropper out of a link and print what she learned.")
        @OptionGroup var options: NetworkOptions
        @Option(help: "Link name (A-B).") var link: String
        @Flag(help: "Print Eve's last report as JSON.") var json = false

        func run() throws {
            switch try options.network().removeEve(link: link) {
            case .success(let report): if json { try printJSON(report) } else { print(EveCommand.describe(report) + "\nremoved") }
            case .failure(let e): throw CLIError(e.message)
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every eavesdropper on the network and what she learned so far.")
        @OptionGroup var options: NetworkOptions
        @Flag(help: "JSON output.") var json = false

        func run() throws {
            let eves = try options.network().eves()
            if json { try printJSON(eves); return }
            print(eves.isEmpty ? "no eavesdropper" : eves.map(EveCommand.describe).joined(separator: "\n"))
        }
    }
}
