import Crypto
import Foundation
import QKDLaunch
import QKDTopology
import Testing
import X509

@Suite struct PKITests {
    @Test func everyKMEAndSAEGetsACertificateSignedByTheNetworksCA() throws {
        let topology = try TopologyParser.parse("""
            name: pki
            nodes:
              - { id: A, lat: 0, lon: 0, role: metro-core }
              - { id: B, lat: 0, lon: 1, role: metro-core }
            links:
              - { a: A, b: B, length_km: 5 }
            saes:
              - { id: SAE-A, node: A }
              - { id: SAE-B, node: B }
            """, file: "pki.yaml")
        let dir = NSTemporaryDirectory() + "qkd-pki-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pki = PKI(runDirectory: dir)
        try pki.ensure(for: topology)
        let ca = try Certificate(pemEncoded: String(contentsOfFile: pki.caPath, encoding: .utf8))
        #expect(try ca.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 0))
        for (cert, key, name, server) in [(pki.kmeCertificatePath("A"), pki.kmeKeyPath("A"), "A", true),
                                          (pki.kmeCertificatePath("B"), pki.kmeKeyPath("B"), "B", true),
                                          (pki.saeCertificatePath("SAE-A"), pki.saeKeyPath("SAE-A"), "SAE-A", false),
                                          (pki.saeCertificatePath("SAE-B"), pki.saeKeyPath("SAE-B"), "SAE-B", false)] {
            let c = try Certificate(pemEncoded: String(contentsOfFile: cert, encoding: .utf8))
            #expect(c.issuer == ca.subject)
            #expect(ca.publicKey.isValidSignature(c.signature, for: c), "\(name): not signed by the CA")
            #expect(c.subject.description.contains("CN=\(name)"))
            let eku = try #require(try c.extensions.extendedKeyUsage)
            #expect(eku.contains(.clientAuth))
            #expect(eku.contains(.serverAuth) == server)
            // The private key matches, and is readable by its owner only.
            let k = try P256.Signing.PrivateKey(pemRepresentation: String(contentsOfFile: key, encoding: .utf8))
            #expect(Certificate.PublicKey(k.publicKey) == c.publicKey)
            let mode = try FileManager.default.attributesOfItem(atPath: key)[.posixPermissions] as? NSNumber
            #expect(mode?.intValue == 0o600)
        }
        // A second run keeps what exists.
        let before = try String(contentsOfFile: pki.kmeCertificatePath("A"), encoding: .utf8)
        try pki.ensure(for: topology)
        #expect(try String(contentsOfFile: pki.kmeCertificatePath("A"), encoding: .utf8) == before)
    }
}
