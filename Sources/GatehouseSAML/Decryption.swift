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
        func fail(_ reason: String) -> VerificationError { VerificationError(check: "encryption", reason: reason) }
        let data = encrypted.children(NS.xenc, "EncryptedData")
        guard data.count == 1, let encryptedData = data.first,
            encrypted.children.allSatisfy({ $0.is(NS.xenc, "EncryptedData") || $0.is(NS.xenc, "EncryptedKey") })
        else { throw fail("an EncryptedAssertion holds one EncryptedData and at most EncryptedKeys") }
        guard let method = encryptedData.children(NS.xenc, "EncryptionMethod").first?.attribute("Algorithm"),
            contentAlgorithms.contains(method)
        else { throw fail("content encryption \(encryptedData.children(NS.xenc, "EncryptionMethod").first?.attribute("Algorithm") ?? "none") is not allowed") }
        // Every EncryptedKey, inside KeyInfo or beside the data, must use RSA-OAEP.
        let keys = encrypted.children(NS.xenc, "EncryptedKey")
            + encryptedData.children(NS.dsig, "KeyInfo").flatMap { $0.children(NS.xenc, "EncryptedKey") }
        guard !keys.isEmpty else { throw fail("no EncryptedKey for the SP") }
        for key in keys {
            guard let transport = key.children(NS.xenc, "EncryptionMethod").first?.attribute("Algorithm"),
                keyTransportAlgorithms.contains(transport)
            else { throw fail("key transport \(key.children(NS.xenc, "EncryptionMethod").first?.attribute("Algorithm") ?? "none") is not allowed (RSA-OAEP only)") }
        }

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
        guard xmlSecEncCtxDecrypt(context, encryptedData.node) == 0, context.pointee.resultReplaced != 0 else {
            throw fail("the assertion cannot be decrypted with the SP key")
        }
    }
}
