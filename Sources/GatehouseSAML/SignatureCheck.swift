internal import CXMLSec
import Foundation
import GatehouseCore

/// The algorithms Gatehouse accepts in an XML signature. SHA-1, HMAC, DSA and every transform but
/// the two SAML needs are refused before libxmlsec1 sees the signature.
enum DSigAlgorithms {
    static let exclusiveC14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
    static let enveloped = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
    static let signatureMethods: Set<String> = [
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
    ]
    static let digestMethods: Set<String> = [
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2001/04/xmldsig-more#sha384",
        "http://www.w3.org/2001/04/xmlenc#sha512",
    ]

    static func enable(on context: xmlSecDSigCtxPtr) -> Bool {
        let reference: [xmlSecTransformId?] = [
            xmlSecTransformEnvelopedGetKlass(), xmlSecTransformExclC14NGetKlass(),
            xmlSecOpenSSLTransformSha256GetKlass(), xmlSecOpenSSLTransformSha384GetKlass(),
            xmlSecOpenSSLTransformSha512GetKlass(),
        ]
        let signature: [xmlSecTransformId?] = [
            xmlSecTransformExclC14NGetKlass(),
            xmlSecOpenSSLTransformRsaSha256GetKlass(), xmlSecOpenSSLTransformRsaSha384GetKlass(),
            xmlSecOpenSSLTransformRsaSha512GetKlass(), xmlSecOpenSSLTransformEcdsaSha256GetKlass(),
            xmlSecOpenSSLTransformEcdsaSha384GetKlass(), xmlSecOpenSSLTransformEcdsaSha512GetKlass(),
        ]
        for id in reference { guard let id, xmlSecDSigCtxEnableReferenceTransform(context, id) == 0 else { return false } }
        for id in signature { guard let id, xmlSecDSigCtxEnableSignatureTransform(context, id) == 0 else { return false } }
        return true
    }
}

/// Verifies the enveloped XML signature of one element: the mechanism half of "mechanism, then
/// policy". It answers one question only: did a pinned key sign exactly this element?
enum SignatureCheck {
    /// The `<ds:Signature>` that is a direct child of `element`, or nil. More than one is refused.
    static func signature(of element: XMLElement) throws -> XMLElement? {
        let signatures = element.children(NS.dsig, "Signature")
        guard signatures.count <= 1 else {
            throw VerificationError(check: "structure", reason: "<\(element.localName)> has \(signatures.count) signatures")
        }
        return signatures.first
    }

    /// Checks the signature's shape against what SAML allows, before any cryptography: one
    /// SignedInfo with exclusive c14n, an allowed signature method and exactly one Reference to
    /// `#<element's ID>`, whose transforms are only enveloped-signature and exclusive c14n and whose
    /// digest is allowed; one SignatureValue; at most a KeyInfo besides (never read); no Object.
    static func checkShape(of signature: XMLElement, signing element: XMLElement, id: String) throws {
        func fail(_ reason: String) -> VerificationError { VerificationError(check: "signature_structure", reason: reason) }
        let parts = signature.children
        guard parts.count >= 2, parts.count <= 3, parts[0].is(NS.dsig, "SignedInfo"), parts[1].is(NS.dsig, "SignatureValue"),
            parts.count == 2 || parts[2].is(NS.dsig, "KeyInfo")
        else { throw fail("a Signature holds exactly SignedInfo, SignatureValue and an optional KeyInfo") }
        let info = parts[0].children
        guard info.count == 3, info[0].is(NS.dsig, "CanonicalizationMethod"), info[1].is(NS.dsig, "SignatureMethod"),
            info[2].is(NS.dsig, "Reference")
        else { throw fail("SignedInfo holds exactly CanonicalizationMethod, SignatureMethod and one Reference") }
        guard info[0].attribute("Algorithm") == DSigAlgorithms.exclusiveC14N, try onlyInclusiveNamespaces(info[0]) else {
            throw fail("canonicalization must be exclusive c14n without comments")
        }
        guard let method = info[1].attribute("Algorithm"), DSigAlgorithms.signatureMethods.contains(method), info[1].children.isEmpty else {
            throw fail("signature method \(info[1].attribute("Algorithm") ?? "none") is not allowed (RSA or ECDSA with SHA-256/384/512 only)")
        }
        let reference = info[2]
        guard reference.attribute("URI") == "#" + id else {
            throw fail("the Reference does not point at the signed <\(element.localName)>")
        }
        var rest = reference.children
        if let first = rest.first, first.is(NS.dsig, "Transforms") {
            let transforms = first.children
            guard (1...2).contains(transforms.count) else { throw fail("one or two transforms are allowed") }
            var seen = Set<String>()
            for t in transforms {
                guard t.is(NS.dsig, "Transform"), let algorithm = t.attribute("Algorithm"), seen.insert(algorithm).inserted else {
                    throw fail("a transform is malformed or repeated")
                }
                switch algorithm {
                case DSigAlgorithms.enveloped: guard t.children.isEmpty else { throw fail("the enveloped transform takes no parameters") }
                case DSigAlgorithms.exclusiveC14N: guard try onlyInclusiveNamespaces(t) else { throw fail("exclusive c14n takes only InclusiveNamespaces") }
                default: throw fail("transform \(algorithm) is not allowed")
                }
            }
            guard seen.contains(DSigAlgorithms.enveloped) else { throw fail("an enveloped signature needs the enveloped transform") }
            rest.removeFirst()
        } else {
            throw fail("an enveloped signature needs the enveloped transform")
        }
        guard rest.count == 2, rest[0].is(NS.dsig, "DigestMethod"), rest[1].is(NS.dsig, "DigestValue") else {
            throw fail("a Reference holds Transforms, DigestMethod and DigestValue")
        }
        guard let digest = rest[0].attribute("Algorithm"), DSigAlgorithms.digestMethods.contains(digest) else {
            throw fail("digest \(rest[0].attribute("Algorithm") ?? "none") is not allowed (SHA-256/384/512 only)")
        }
    }

    private static func onlyInclusiveNamespaces(_ element: XMLElement) throws -> Bool {
        element.children.allSatisfy {
            $0.localName == "InclusiveNamespaces" && $0.namespace == DSigAlgorithms.exclusiveC14N && $0.children.isEmpty
        }
    }

    /// Verifies `signature` over `element` with one of `keys` (tried in order, for rollover). The
    /// element's ID is registered for the check only; KeyInfo is never consulted. Throws unless a
    /// key verifies and the only reference libxmlsec1 followed resolved to `element`.
    static func verify(_ signature: XMLElement, signing element: XMLElement, in tree: XMLTree, keys: [TrustedKey]) throws {
        guard let id = element.attribute("ID"), !id.isEmpty else {
            throw VerificationError(check: "signature_structure", reason: "the signed <\(element.localName)> has no ID")
        }
        try checkShape(of: signature, signing: element, id: id)
        guard !keys.isEmpty else { throw VerificationError(check: "signature", reason: "the provider's metadata pins no signing key") }
        guard let attr = xmlHasProp(element.node, "ID") else {
            throw VerificationError(check: "signature_structure", reason: "the signed element has no ID attribute")
        }
        guard let registered = xmlAddID(nil, tree.doc, id, attr) else {
            throw VerificationError(check: "signature_structure", reason: "the ID \(id) cannot be registered (is it used twice?)")
        }
        _ = registered
        defer { xmlRemoveID(tree.doc, attr) }
        guard let found = xmlGetID(tree.doc, id), found == attr else {
            throw VerificationError(check: "signature_structure", reason: "the ID \(id) does not resolve to the signed element")
        }
        var processingFailure: String?
        for key in keys {
            switch verifyOnce(signature, id: id, key: key) {
            case .valid: return
            case .invalid: continue
            case .unprocessable(let reason): processingFailure = reason
            }
        }
        if let processingFailure {
            throw VerificationError(check: "signature", reason: "the signature could not be processed: \(processingFailure)")
        }
        throw VerificationError(check: "signature", reason: "the signature does not verify with any pinned key of the provider")
    }

    enum Outcome { case valid, invalid, unprocessable(String) }

    static func verifyOnce(_ signature: XMLElement, id: String, key: TrustedKey) -> Outcome {
        guard let context = xmlSecDSigCtxCreate(nil) else { return .unprocessable("out of memory") }
        defer { xmlSecDSigCtxDestroy(context) }
        // The context frees signKey, so it gets its own copy. A set signKey means KeyInfo is never read.
        guard let copy = xmlSecKeyDuplicate(key.key) else { return .unprocessable("out of memory") }
        context.pointee.signKey = copy
        context.pointee.enabledReferenceUris = xmlSecTransformUriType(xmlSecTransformUriTypeSameDocument)
        context.pointee.flags |= UInt32(XMLSEC_DSIG_FLAGS_STORE_SIGNEDINFO_REFERENCES)
        guard DSigAlgorithms.enable(on: context) else { return .unprocessable("cannot restrict transforms") }
        guard xmlSecDSigCtxVerify(context, signature.node) == 0 else {
            return .unprocessable("libxmlsec1 refused the signature's form")
        }
        guard context.pointee.status == xmlSecDSigStatusSucceeded else { return .invalid }
        // Success from libxmlsec1 says some reference verified; require that it is the one and only
        // reference and that it named this element.
        let offset = MemoryLayout<xmlSecDSigCtx>.offset(of: \xmlSecDSigCtx.signedInfoReferences)!
        let references = (UnsafeMutableRawPointer(context) + offset).assumingMemoryBound(to: xmlSecPtrList.self)
        guard xmlSecPtrListGetSize(references) == 1,
            let raw = xmlSecPtrListGetItem(references, 0)
        else { return .invalid }
        let reference = raw.assumingMemoryBound(to: xmlSecDSigReferenceCtx.self)
        guard reference.pointee.status == xmlSecDSigStatusSucceeded, let uri = reference.pointee.uri,
            String(cString: uri) == "#" + id
        else { return .invalid }
        return .valid
    }
}

/// The baseline the benchmark prints beside a full validation: parse, register the signed
/// element's ID, and libxmlsec1's signature check with the bare key. No structure check, no shape
/// allowlist, no policy; never used to accept anything.
package final class BareSignatureVerifier: @unchecked Sendable {
    let key: TrustedKey

    package init(certificate: SAMLCertificate) throws { key = try TrustedKey(certificate) }

    /// Verifies the signature of the first Assertion of `xml`.
    package func verify(_ xml: [UInt8]) throws {
        let tree = try XMLTree.parse(xml, checked: false)
        var node = tree.root.map { [$0] } ?? []
        var assertion: XMLElement?
        while let next = node.popLast() {
            if next.is(NS.assertion, "Assertion") { assertion = next; break }
            node.append(contentsOf: next.children)
        }
        guard let assertion, let id = assertion.attribute("ID"), let attr = xmlHasProp(assertion.node, "ID"),
            xmlAddID(nil, tree.doc, id, attr) != nil, let signature = assertion.children(NS.dsig, "Signature").first
        else { throw VerificationError(check: "structure", reason: "no signed Assertion") }
        guard case .valid = SignatureCheck.verifyOnce(signature, id: id, key: key) else {
            throw VerificationError(check: "signature", reason: "invalid")
        }
    }
}
