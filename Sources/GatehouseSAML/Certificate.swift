internal import CXMLSec
public import Foundation
import GatehouseCore
import Crypto

/// An X.509 certificate an identity provider (or Gatehouse's SP side) publishes in metadata.
///
/// Only its public key is ever trusted, and only because metadata pinned it: a certificate
/// that arrives inside a response's KeyInfo is never read.
public struct SAMLCertificate: Sendable, Hashable, CustomStringConvertible {
    /// The DER bytes.
    public let der: Data
    public let subject: String
    public let notBefore: Date
    public let notAfter: Date
    /// SHA-256 of the DER bytes, lower-case hex: how admins and logs name a certificate.
    public let sha256Fingerprint: String
    /// The SubjectPublicKeyInfo, DER.
    public let publicKeyDER: Data

    /// Reads a DER certificate, or the base64 text of one (as `<ds:X509Certificate>` holds it, with
    /// any whitespace), or PEM.
    public init(base64OrPEM text: String) throws {
        var body = text
        if let begin = text.range(of: "-----BEGIN CERTIFICATE-----"), let end = text.range(of: "-----END CERTIFICATE-----"),
            begin.upperBound <= end.lowerBound {
            body = String(text[begin.upperBound..<end.lowerBound])
        }
        let compact = body.filter { !$0.isWhitespace }
        guard let der = Data(base64Encoded: compact), !der.isEmpty else {
            throw ConfigurationError("certificate is not base64 DER or PEM")
        }
        try self.init(der: der)
    }

    public init(der: Data) throws {
        try XMLLibrary.require()
        guard let x509 = der.withUnsafeBytes({ raw -> OpaquePointer? in
            var p: UnsafePointer<UInt8>? = raw.bindMemory(to: UInt8.self).baseAddress
            return d2i_X509(nil, &p, raw.count)
        }) else {
            throw ConfigurationError("certificate is not valid X.509 DER")
        }
        defer { X509_free(x509) }
        var subject = "?"
        if let name = X509_get_subject_name(x509), let line = X509_NAME_oneline(name, nil, 0) {
            subject = String(cString: line)
            CRYPTO_free(line, #fileID, #line)
        }
        guard let nb = X509_get0_notBefore(x509).flatMap(Self.date), let na = X509_get0_notAfter(x509).flatMap(Self.date) else {
            throw ConfigurationError("certificate has unreadable validity dates")
        }
        // The key must be one the allowed algorithms can use.
        guard let pkey = X509_get0_pubkey(x509) else { throw ConfigurationError("certificate has no public key") }
        let type = EVP_PKEY_get_base_id(pkey)
        guard type == EVP_PKEY_RSA || type == EVP_PKEY_EC else {
            throw ConfigurationError("certificate key is neither RSA nor EC")
        }
        if type == EVP_PKEY_RSA, EVP_PKEY_get_bits(pkey) < 2048 {
            throw ConfigurationError("RSA key shorter than 2048 bits")
        }
        var spki: UnsafeMutablePointer<UInt8>?
        let spkiCount = i2d_PUBKEY(pkey, &spki)
        guard spkiCount > 0, let spki else { throw ConfigurationError("certificate key cannot be encoded") }
        defer { CRYPTO_free(spki, #fileID, #line) }
        self.publicKeyDER = Data(bytes: spki, count: Int(spkiCount))
        self.der = der
        self.subject = subject
        self.notBefore = nb
        self.notAfter = na
        self.sha256Fingerprint = SHA256.hash(data: der).map { String(format: "%02x", $0) }.joined()
    }

    private static func date(_ time: UnsafePointer<ASN1_TIME>) -> Date? {
        var tm = tm()
        guard ASN1_TIME_to_tm(time, &tm) == 1 else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(timegm(&tm)))
    }

    /// The certificate as base64 (for metadata documents).
    public var base64: String { der.base64EncodedString() }

    public var description: String { "\(subject) (sha256 \(sha256Fingerprint.prefix(16))…, until \(notAfter))" }
}

/// A public key pinned from metadata, reduced to the bare key once (duplicating a key that still
/// holds its certificate costs an `X509_dup` per verification).
final class TrustedKey: @unchecked Sendable {
    // Never mutated after init; xmlsec reads it only through xmlSecKeyDuplicate.
    let key: xmlSecKeyPtr
    let certificate: SAMLCertificate

    init(_ certificate: SAMLCertificate) throws {
        try XMLLibrary.require()
        let pkey: OpaquePointer? = certificate.der.withUnsafeBytes { raw in
            var p: UnsafePointer<UInt8>? = raw.bindMemory(to: UInt8.self).baseAddress
            guard let x509 = d2i_X509(nil, &p, raw.count) else { return nil }
            defer { X509_free(x509) }
            return X509_get_pubkey(x509)  // a new reference, owned by the key data below
        }
        guard let pkey else { throw ConfigurationError("certificate has no usable public key") }
        guard let data = xmlSecOpenSSLEvpKeyAdopt(pkey) else {
            EVP_PKEY_free(pkey)
            throw ConfigurationError("xmlsec cannot use this certificate's key")
        }
        guard let key = xmlSecKeyCreate() else {
            xmlSecKeyDataDestroy(data)
            throw ConfigurationError("out of memory")
        }
        guard xmlSecKeySetValue(key, data) == 0 else {
            xmlSecKeyDataDestroy(data)
            xmlSecKeyDestroy(key)
            throw ConfigurationError("xmlsec cannot use this certificate's key")
        }
        self.key = key
        self.certificate = certificate
    }

    deinit { xmlSecKeyDestroy(key) }

    var isRSA: Bool { xmlSecKeyGetValue(key).map { $0.pointee.id == xmlSecOpenSSLKeyDataRsaGetKlass() } ?? false }
}
