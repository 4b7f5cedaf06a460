import GatehouseCore

/// Reads a captured SAML response's attributes *without verifying it*, so an admin can preview an
/// attribute mapping against what an IdP really sends (a capture is often expired, or from another
/// SP). What it returns must never sign anyone in: it is not a `VerifiedIdentity`, and only the
/// preview path calls it.
public enum UnverifiedSAMLResponse {
    /// The attributes the mapping would see (by Name and FriendlyName, plus `NameID`), from a
    /// response as XML, base64 or percent-encoded base64. The parse is as strict as verification's
    /// (no DTD, size limit); an encrypted assertion is refused, since previews hold no SP key.
    public static func attributesForPreview(_ input: String) throws -> [String: [String]] {
        guard let bytes = SAMLResponseCheck.decode(input) else {
            throw VerificationError(check: "input", reason: "not a SAML response (XML, base64 or percent-encoded)")
        }
        let tree = try XMLTree.parse(bytes, what: "response")
        let assertions = tree.allElements().filter { $0.is(NS.assertion, "Assertion") }
        guard assertions.count == 1 else {
            if tree.allElements().contains(where: { $0.is(NS.assertion, "EncryptedAssertion") }) {
                throw VerificationError(check: "encryption", reason: "the assertion is encrypted; preview with the attributes of a decrypted one, or with recent logins")
            }
            throw VerificationError(check: "structure", reason: "expected exactly one Assertion, found \(assertions.count)")
        }
        let assertion = assertions[0]
        var attributes = SAMLAttribute.mappingView(SAMLAttribute.read(from: assertion) { _ in })
        if let nameID = assertion.children(NS.assertion, "Subject").first?.children(NS.assertion, "NameID").first, let text = try? nameID.trimmedText() {
            attributes["NameID"] = [text]
        }
        return attributes
    }
}
