import Crypto
import Foundation
import QKDAPI
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
            #expect(eku.contains(.clientAuth) == !server, "\(name): a KME certificate must not work as a client's")
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

    /// The KME takes a caller's SAE ID only from an SAE certificate: clientAuth and not
    /// serverAuth. A KME certificate, or one claiming both uses (as KME certificates of earlier
    /// run directories did), is refused with a 401 that says why.
    @Test func onlyAnSAECertificateNamesACaller() throws {
        let topology = try TopologyParser.parse("""
            name: pki
            nodes:
              - { id: A, lat: 0, lon: 0, role: metro-core }
            links: []
            saes:
              - { id: SAE-A, node: A }
            """, file: "pki.yaml")
        let dir = NSTemporaryDirectory() + "qkd-pki-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pki = PKI(runDirectory: dir)
        try pki.ensure(for: topology)
        func der(_ path: String) throws -> [UInt8] {
            try Array(Certificate(pemEncoded: String(contentsOfFile: path, encoding: .utf8)).serializeAsPEM().derBytes)
        }
        #expect(try KMEServer.saeID(certificate: der(pki.saeCertificatePath("SAE-A"))) == "SAE-A")
        let caKey = try P256.Signing.PrivateKey(pemRepresentation: String(contentsOfFile: pki.directory + "/ca.key", encoding: .utf8))
        let ca = try Certificate(pemEncoded: String(contentsOfFile: pki.caPath, encoding: .utf8))
        let both = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(P256.Signing.PrivateKey().publicKey),
            notValidBefore: Date().addingTimeInterval(-60), notValidAfter: Date().addingTimeInterval(3600),
            issuer: ca.subject, subject: try DistinguishedName { CommonName("SAE-A") }, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions { try ExtendedKeyUsage([.serverAuth, .clientAuth]) }, issuerPrivateKey: .init(caKey))
        for (name, bytes) in [("KME certificate", try der(pki.kmeCertificatePath("A"))),
                              ("server and client use", Array(try both.serializeAsPEM().derBytes))] {
            #expect(throws: KMEError.self, "\(name)") { try KMEServer.saeID(certificate: bytes) }
            do {
                _ = try KMEServer.saeID(certificate: bytes)
            } catch {
                #expect(error.status == .unauthorized && error.message.contains("not an SAE certificate"), "\(name): \(error.message)")
            }
        }
        #expect(throws: KMEError.self) { try KMEServer.saeID(certificate: [0x30, 0x03, 0x02, 0x01, 0x00]) }
    }
}
