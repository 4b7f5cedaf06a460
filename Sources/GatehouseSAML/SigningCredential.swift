internal import CXMLSec
public import Foundation
import GatehouseCore
import Crypto
import _CryptoExtras

/// A private key and its certificate that Gatehouse signs (and decrypts) with: the SP side of a
/// SAML provider, or the stand-in IdP of the tests. RSA only.
public final class SAMLSigningCredential: @unchecked Sendable {
    // Immutable after init; libxmlsec1 only ever reads duplicates of `key`.
    let key: xmlSecKeyPtr
    let rsa: _RSA.Signing.PrivateKey
    public let certificate: SAMLCertificate
    public let privateKeyPEM: String

    public init(privateKeyPEM: String, certificatePEM: String) throws {
        try XMLLibrary.require()
        let certificate = try SAMLCertificate(base64OrPEM: certificatePEM)
        let rsa: _RSA.Signing.PrivateKey
        do { rsa = try _RSA.Signing.PrivateKey(pemRepresentation: privateKeyPEM) } catch {
            throw ConfigurationError("the SP private key is not an RSA key in PEM")
        }
        guard rsa.publicKey.derRepresentation == certificate.publicKeyDER else {
            throw ConfigurationError("the SP certificate does not belong to the SP private key")
        }
        let bytes = Array(privateKeyPEM.utf8)
        guard let key = bytes.withUnsafeBufferPointer({
            xmlSecOpenSSLAppKeyLoadMemory($0.baseAddress, UInt32($0.count), xmlSecKeyDataFormatPem, nil, nil, nil)
        }) else { throw ConfigurationError("libxmlsec1 cannot load the SP private key") }
        self.key = key
        self.rsa = rsa
        self.certificate = certificate
        self.privateKeyPEM = privateKeyPEM
    }

    deinit { xmlSecKeyDestroy(key) }

    /// RSA-SHA256 over `bytes` (PKCS #1 v1.5), as the HTTP-Redirect binding signs its query.
    public func signRSASHA256(_ bytes: [UInt8]) throws -> Data {
        try rsa.signature(for: SHA256.hash(data: bytes), padding: .insecurePKCS1v1_5).rawRepresentation
    }

    /// Makes a new RSA-2048 key and a self-signed certificate for it (`CN=commonName`), valid for
    /// `days`: what a new SAML provider's SP side gets. Returns both as PEM.
    public static func generate(commonName: String, days: Int = 3650, now: Date = Date()) throws -> (privateKeyPEM: String, certificatePEM: String) {
        try XMLLibrary.require()
        let rsa = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let pem = rsa.pemRepresentation
        // BIO_new_mem_buf borrows the memory, so the key is read inside the closure that lends it.
        let pkey: OpaquePointer? = Array(pem.utf8).withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PrivateKey(bio, nil, nil, nil)
        }
        guard let pkey else { throw ConfigurationError("cannot read the new key") }
        defer { EVP_PKEY_free(pkey) }
        guard let x509 = X509_new() else { throw ConfigurationError("out of memory") }
        defer { X509_free(x509) }
        var serial = [UInt8](repeating: 0, count: 16)
        for i in serial.indices { serial[i] = UInt8.random(in: 0...255) }
        serial[0] &= 0x7F
        let serialBN = serial.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, Int32($0.count), nil) }
        defer { BN_free(serialBN) }
        var start = time_t(now.timeIntervalSince1970) - 300
        guard X509_set_version(x509, 2) == 1,
            BN_to_ASN1_INTEGER(serialBN, X509_get_serialNumber(x509)) != nil,
            X509_time_adj_ex(X509_getm_notBefore(x509), 0, 0, &start) != nil,
            X509_time_adj_ex(X509_getm_notAfter(x509), Int32(days), 0, &start) != nil,
            X509_set_pubkey(x509, pkey) == 1,
            let name = X509_get_subject_name(x509),
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, commonName, -1, -1, 0) == 1,
            X509_set_issuer_name(x509, name) == 1,
            X509_sign(x509, pkey, EVP_sha256()) > 0
        else { throw ConfigurationError("cannot make the SP certificate") }
        var der: UnsafeMutablePointer<UInt8>?
        let n = i2d_X509(x509, &der)
        guard n > 0, let der else { throw ConfigurationError("cannot encode the SP certificate") }
        defer { CRYPTO_free(der, #fileID, #line) }
        let body = Data(bytes: der, count: Int(n)).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return (pem, "-----BEGIN CERTIFICATE-----\n\(body)\n-----END CERTIFICATE-----\n")
    }

    /// Signs the element with ID `id` in `xml`, which already holds a `SignatureTemplate` for it
    /// (enveloped, exclusive c14n, RSA-SHA256, SHA-256). Returns the signed document.
    public func signEnveloped(_ xml: String, id: String) throws -> String {
        let tree = try XMLTree.parse(Array(xml.utf8), what: "the document to sign")
        guard let element = tree.allElements().first(where: { $0.attribute("ID") == id }),
            let signature = element.children(NS.dsig, "Signature").first,
            let attr = xmlHasProp(element.node, "ID"), xmlAddID(nil, tree.doc, id, attr) != nil
        else { throw ConfigurationError("the document has no signature template for \(id)") }
        guard let context = xmlSecDSigCtxCreate(nil) else { throw ConfigurationError("out of memory") }
        defer { xmlSecDSigCtxDestroy(context) }
        guard let copy = xmlSecKeyDuplicate(key) else { throw ConfigurationError("out of memory") }
        context.pointee.signKey = copy
        guard xmlSecDSigCtxSign(context, signature.node) == 0 else { throw ConfigurationError("libxmlsec1 could not sign") }
        return String(decoding: tree.serialized(), as: UTF8.self)
    }

    /// The template `signEnveloped` fills: put it where the schema wants the Signature (after the
    /// Issuer of a request or assertion, first in an EntityDescriptor).
    public func signatureTemplate(for id: String) -> String {
        "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>"
            + "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>"
            + "<ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>"
            + "<ds:Reference URI=\"#\(id)\"><ds:Transforms>"
            + "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>"
            + "<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></ds:Transforms>"
            + "<ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><ds:DigestValue></ds:DigestValue>"
            + "</ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue>"
            + "<ds:KeyInfo><ds:X509Data><ds:X509Certificate>\(certificate.base64)</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
            + "</ds:Signature>"
    }
}
