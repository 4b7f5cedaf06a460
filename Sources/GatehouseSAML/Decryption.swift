internal import CXMLSec
import Foundation
import GatehouseCore

/// Decrypts an `<saml:EncryptedAssertion>` in place with the SP's private key. The algorithms are
/// checked before libxmlsec1 sees them: AES-128/256 in GCM or CBC for the content, RSA-OAEP for
/// the key transport (RSA PKCS #1 v1.5 key transport, open to Bleichenbacher's attack, is refused).
enum AssertionDecryption {
    static let contentAlgorithms: Set<String> = [
        "http://www.w3.org/2009/xmlenc11#aes128-gcm", "http://www.w3.org/2009/xmlenc11#aes256-gcm",
        "http://www.w3.org/2001/04/xmlenc#aes128-cbc", "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
    ]
    static let keyTransportAlgorithms: Set<String> = [
        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p", "http://www.w3.org/2009/xmlenc11#rsa-oaep",
    ]

    /// Decrypts `encrypted` (an EncryptedAssertion) in place; the caller then checks what it holds.
    static func decrypt(_ encrypted: XMLElement, in tree: XMLTree, with credential: SAMLSigningCredential) throws {
        try checkShape(encrypted)
        guard let encryptedData = encrypted.children(NS.xenc, "EncryptedData").first else { throw fail("no EncryptedData") }

        guard let manager = xmlSecKeysMngrCreate() else { throw fail("out of memory") }
        defer { xmlSecKeysMngrDestroy(manager) }
        guard xmlSecOpenSSLAppDefaultKeysMngrInit(manager) == 0, let copy = xmlSecKeyDuplicate(credential.key) else {
            throw fail("cannot set up decryption")
        }
        guard xmlSecOpenSSLAppDefaultKeysMngrAdoptKey(manager, copy) == 0 else {
            xmlSecKeyDestroy(copy)
            throw fail("cannot set up decryption")
        }
        guard let context = xmlSecEncCtxCreate(manager) else { throw fail("out of memory") }
        defer { xmlSecEncCtxDestroy(context) }
        // Nothing outside the message: no CipherReference URI, no RetrievalMethod, and KeyInfo read
        // only for EncryptedKey (the SP key is then found in the manager, never built from the message).
        context.pointee.transformCtx.enabledUris = xmlSecTransformUriType(0)
        context.pointee.keyInfoReadCtx.retrievalMethodCtx.enabledUris = xmlSecTransformUriType(0)
        context.pointee.keyInfoReadCtx.maxRetrievalMethodLevel = 0
        context.pointee.keyInfoReadCtx.maxEncryptedKeyLevel = 1
        let offset = MemoryLayout<xmlSecEncCtx>.offset(of: \xmlSecEncCtx.keyInfoReadCtx.enabledKeyData)!
        let keyData = (UnsafeMutableRawPointer(context) + offset).assumingMemoryBound(to: xmlSecPtrList.self)
        guard let encryptedKeyID = xmlSecKeyDataEncryptedKeyGetKlass(),
            xmlSecPtrListAdd(keyData, UnsafeMutableRawPointer(mutating: UnsafeRawPointer(encryptedKeyID))) == 0
        else { throw fail("cannot restrict key information") }
        guard xmlSecEncCtxDecrypt(context, encryptedData.node) == 0, context.pointee.resultReplaced != 0 else {
            throw fail("the assertion cannot be decrypted with the SP key")
        }
        // The decrypted nodes arrived after parsing: held to the same rule as the rest.
        guard XMLTree.isStreamSafe(encrypted.node) else {
            throw VerificationError(check: "xml", reason: "the decrypted assertion has text running more than \(StreamSafeText.maximumRun) combining marks together")
        }
    }

    static func fail(_ reason: String) -> VerificationError { VerificationError(check: "encryption", reason: reason) }

    /// Only the shapes SAML IdPs send: an EncryptedData with its EncryptionMethod, a KeyInfo holding
    /// only EncryptedKeys (which may name the SP certificate), and an inline CipherValue; no
    /// CipherReference, no RetrievalMethod, no EncryptedKey inside an EncryptedKey. Every algorithm
    /// is checked against the allowlists, wherever it appears.
    static func checkShape(_ encrypted: XMLElement) throws {
        let children = encrypted.children
        guard children.filter({ $0.is(NS.xenc, "EncryptedData") }).count == 1,
            children.allSatisfy({ $0.is(NS.xenc, "EncryptedData") || $0.is(NS.xenc, "EncryptedKey") })
        else { throw fail("an EncryptedAssertion holds one EncryptedData and at most EncryptedKeys") }
        let data = children.first { $0.is(NS.xenc, "EncryptedData") }!
        var keys = children.filter { $0.is(NS.xenc, "EncryptedKey") }
        var sawMethod = false
        for part in data.children {
            if part.is(NS.xenc, "EncryptionMethod") {
                guard !sawMethod, let algorithm = part.attribute("Algorithm"), contentAlgorithms.contains(algorithm), part.children.isEmpty else {
                    throw fail("content encryption \(part.attribute("Algorithm") ?? "none") is not allowed")
                }
                sawMethod = true
            } else if part.is(NS.dsig, "KeyInfo") {
                guard part.children.allSatisfy({ $0.is(NS.xenc, "EncryptedKey") }) else {
                    throw fail("the EncryptedData's KeyInfo may hold only EncryptedKeys (no RetrievalMethod)")
                }
                keys += part.children
            } else if part.is(NS.xenc, "CipherData") {
                try checkCipherData(part)
            } else {
                throw fail("unexpected <\(part.localName)> in EncryptedData")
            }
        }
        guard sawMethod else { throw fail("the EncryptedData names no EncryptionMethod") }
        guard !keys.isEmpty else { throw fail("no EncryptedKey for the SP") }
        for key in keys {
            var transport: String?
            for part in key.children {
                if part.is(NS.xenc, "EncryptionMethod") {
                    transport = part.attribute("Algorithm")
                    guard part.children.allSatisfy({ $0.is(NS.dsig, "DigestMethod") || $0.localName == "MGF" || $0.localName == "OAEPparams" }) else {
                        throw fail("unexpected parameters of the key transport")
                    }
                } else if part.is(NS.dsig, "KeyInfo") {
                    guard part.children.allSatisfy({ $0.is(NS.dsig, "X509Data") || $0.is(NS.dsig, "KeyName") }) else {
                        throw fail("an EncryptedKey's KeyInfo may only name the SP key (X509Data or KeyName)")
                    }
                } else if part.is(NS.xenc, "CipherData") {
                    try checkCipherData(part)
                } else if !(part.is(NS.xenc, "ReferenceList") || part.is(NS.xenc, "CarriedKeyName")) {
                    throw fail("unexpected <\(part.localName)> in EncryptedKey")
                }
            }
            guard let transport, keyTransportAlgorithms.contains(transport) else {
                throw fail("key transport \(transport ?? "none") is not allowed (RSA-OAEP only)")
            }
        }
    }

    private static func checkCipherData(_ cipherData: XMLElement) throws {
        let parts = cipherData.children
        guard parts.count == 1, parts[0].is(NS.xenc, "CipherValue") else {
            throw fail("CipherData must hold an inline CipherValue (no CipherReference)")
        }
    }
}
