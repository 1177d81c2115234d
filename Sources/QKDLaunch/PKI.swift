import Crypto
import Foundation
import QKDTopology
import SwiftASN1
import X509

/// The network's private PKI for the ETSI GS QKD 014 interface (mutual TLS): one CA, a
/// certificate per KME (one per node; SANs `localhost` and `127.0.0.1`, server use only) and
/// one per SAE (common name = SAE ID, client use only). ECDSA P-256, SHA-256. The extended key
/// usages keep the two apart (RFC 5280 §4.2.1.12): a KME's certificate cannot act as an SAE's,
/// and the KME refuses a client certificate that also claims server use.
///
///     <run_dir>/pki/ca.pem, ca.key
///     <run_dir>/pki/kme/<NODE>.pem, .key
///     <run_dir>/pki/sae/<SAE_ID>.pem, .key
///
/// Private keys are written with mode 0600. An existing PKI is kept (a restarted network keeps
/// its certificates); missing files are created.
public struct PKI: Sendable {
    public let directory: String

    public init(runDirectory: String) { directory = runDirectory + "/pki" }

    public var caPath: String { directory + "/ca.pem" }
    public func kmeCertificatePath(_ node: String) -> String { "\(directory)/kme/\(node).pem" }
    public func kmeKeyPath(_ node: String) -> String { "\(directory)/kme/\(node).key" }
    public func saeCertificatePath(_ sae: String) -> String { "\(directory)/sae/\(sae).pem" }
    public func saeKeyPath(_ sae: String) -> String { "\(directory)/sae/\(sae).key" }

    /// Creates whatever is missing for `topology`'s nodes and SAEs.
    public func ensure(for topology: Topology, now: Date = Date()) throws(LaunchError) {
        do {
            let fm = FileManager.default
            for sub in ["", "/kme", "/sae"] {
                try fm.createDirectory(atPath: directory + sub, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            }
            let caKey: P256.Signing.PrivateKey
            let caCertificate: Certificate
            if fm.fileExists(atPath: caPath), fm.fileExists(atPath: directory + "/ca.key") {
                caKey = try P256.Signing.PrivateKey(pemRepresentation: String(contentsOfFile: directory + "/ca.key", encoding: .utf8))
                caCertificate = try Certificate(pemEncoded: String(contentsOfFile: caPath, encoding: .utf8))
            } else {
                caKey = P256.Signing.PrivateKey()
                let name = try DistinguishedName {
                    OrganizationName("QKDNet")
                    CommonName("QKDNet CA \(topology.name)")
                }
                caCertificate = try Certificate(
                    version: .v3, serialNumber: .init(), publicKey: .init(caKey.publicKey),
                    notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(10 * 365 * 86_400),
                    issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
                    extensions: try Certificate.Extensions {
                        Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                        Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                        SubjectKeyIdentifier(hash: .init(caKey.publicKey))
                    },
                    issuerPrivateKey: .init(caKey))
                try write(caKey.pemRepresentation, to: directory + "/ca.key", private: true)
                try write(caCertificate.serializeAsPEM().pemString, to: caPath, private: false)
            }
            for node in topology.nodes where !fm.fileExists(atPath: kmeCertificatePath(node.id.rawValue)) {
                try issue(commonName: node.id.rawValue, server: true, ca: caCertificate, caKey: caKey, now: now,
                          certificate: kmeCertificatePath(node.id.rawValue), key: kmeKeyPath(node.id.rawValue))
            }
            for sae in topology.saes where !fm.fileExists(atPath: saeCertificatePath(sae.id)) {
                try issue(commonName: sae.id, server: false, ca: caCertificate, caKey: caKey, now: now,
                          certificate: saeCertificatePath(sae.id), key: saeKeyPath(sae.id))
            }
        } catch let error as LaunchError {
            throw error
        } catch {
            throw LaunchError(.io, "cannot create the PKI in '\(directory)': \(error)")
        }
    }

    private func issue(commonName: String, server: Bool, ca: Certificate, caKey: P256.Signing.PrivateKey, now: Date,
                       certificate: String, key: String) throws {
        let privateKey = P256.Signing.PrivateKey()
        let subject = try DistinguishedName {
            OrganizationName("QKDNet")
            CommonName(commonName)
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage(server ? [.serverAuth] : [.clientAuth])
            if server {
                SubjectAlternativeNames([.dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))])
            }
            AuthorityKeyIdentifier(keyIdentifier: try ca.extensions.subjectKeyIdentifier?.keyIdentifier)
        }
        let cert = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(privateKey.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(2 * 365 * 86_400),
            issuer: ca.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
            issuerPrivateKey: .init(caKey))
        try write(privateKey.pemRepresentation, to: key, private: true)
        try write(cert.serializeAsPEM().pemString, to: certificate, private: false)
    }

    private func write(_ text: String, to path: String, private secret: Bool) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: secret ? 0o600 : 0o644]) else {
            throw LaunchError(.io, "cannot write '\(path)'")
        }
    }
}
