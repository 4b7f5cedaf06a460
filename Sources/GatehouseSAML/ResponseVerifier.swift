public import Foundation
import GatehouseCore

/// Which signatures a provider's responses must carry.
public enum SAMLSignatureRequirement: String, Sendable, Codable, CaseIterable {
    /// The Assertion is signed (the default, and what most IdPs do).
    case assertion
    /// The Response is signed (it then covers the Assertion).
    case response
    /// Either one; both may be present.
    case either
    /// Both the Response and the Assertion.
    case both
}

/// What one ACS request is checked against: the SP's identity, the IdP's, the request this
/// browser sent (or none for IdP-initiated login), and the time window.
public struct SAMLResponsePolicy: Sendable {
    public var spEntityID: String
    public var acsURL: String
    public var idpEntityID: String
    /// The ID of the AuthnRequest this browser's login transaction sent; nil only for an
    /// IdP-initiated (unsolicited) response, which must then carry no InResponseTo at all.
    public var expectedRequestID: String?
    public var clockSkew: TimeInterval
    public var signatures: SAMLSignatureRequirement
    /// How old a Response or Assertion may be (by IssueInstant, beyond the skew), whatever its
    /// NotOnOrAfter says: a browser POST follows the IdP's answer within seconds.
    public static let maximumAge: TimeInterval = 600

    public init(
        spEntityID: String, acsURL: String, idpEntityID: String, expectedRequestID: String?,
        clockSkew: TimeInterval = 60, signatures: SAMLSignatureRequirement = .assertion
    ) {
        self.spEntityID = spEntityID
        self.acsURL = acsURL
        self.idpEntityID = idpEntityID
        self.expectedRequestID = expectedRequestID
        self.clockSkew = clockSkew
        self.signatures = signatures
    }
}

/// One SAML attribute, with every value.
public struct SAMLAttribute: Sendable, Equatable, Codable {
    public let name: String
    public let friendlyName: String?
    public let nameFormat: String?
    public let values: [String]
}

/// What a verified response says, read only from signed elements.
public struct VerifiedSAMLAssertion: Sendable, Equatable {
    public let issuer: String
    public let assertionID: String
    public let nameID: String
    public let nameIDFormat: String?
    public let sessionIndex: String?
    public let authnInstant: Date?
    public let authnContextClassRef: String?
    public let attributes: [SAMLAttribute]
    /// The request it answers (nil for IdP-initiated).
    public let inResponseTo: String?
    /// Until when the assertion could be replayed: its ID stays in the replay cache this long.
    public let replayableUntil: Date
    /// Which of Response and Assertion carried a verified signature.
    public let signedResponse: Bool
    public let signedAssertion: Bool
    /// Whether the Assertion arrived encrypted.
    public let wasEncrypted: Bool

    /// The attributes as the mapping sees them: by Name, and by FriendlyName where given.
    public var attributeValues: [String: [String]] { SAMLAttribute.mappingView(attributes) }
}

extension SAMLAttribute {
    /// The Assertion's attributes, multi-valued. A value holding markup is skipped, never half-read.
    static func read(from assertion: XMLElement, fail: (String) -> Void) -> [SAMLAttribute] {
        var attributes: [SAMLAttribute] = []
        for statement in assertion.children(NS.assertion, "AttributeStatement") {
            for attribute in statement.children(NS.assertion, "Attribute") {
                guard let name = attribute.attribute("Name"), !name.isEmpty else {
                    fail("an Attribute has no Name")
                    continue
                }
                let values = attribute.children(NS.assertion, "AttributeValue").compactMap { try? $0.text() }
                attributes.append(SAMLAttribute(
                    name: name, friendlyName: attribute.attribute("FriendlyName"),
                    nameFormat: attribute.attribute("NameFormat"), values: values))
            }
        }
        return attributes
    }

    /// By Name, and by FriendlyName where given.
    static func mappingView(_ attributes: [SAMLAttribute]) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for a in attributes {
            out[a.name, default: []].append(contentsOf: a.values)
            if let friendly = a.friendlyName, !friendly.isEmpty, friendly != a.name {
                out[friendly, default: []].append(contentsOf: a.values)
            }
        }
        return out
    }
}

/// Verifies SAML responses from one identity provider: the signature half with keys pinned from its
/// metadata, then the policy. Thread-safe; each call owns its document.
public struct SAMLResponseVerifier: Sendable {
    /// A base64 form value larger than this is refused before it is decoded.
    public static let maximumEncodedSize = 384 * 1024
    /// And the decoded XML.
    public static let maximumSize = 256 * 1024

    let keys: [TrustedKey]
    let decryptionKey: SAMLSigningCredential?

    /// `decryptionKey` is the SP's key, for encrypted assertions; without it they are refused.
    public init(signingCertificates: [SAMLCertificate], decryptionKey: SAMLSigningCredential? = nil) throws {
        guard !signingCertificates.isEmpty else { throw ConfigurationError("the provider has no signing certificate") }
        keys = try signingCertificates.map(TrustedKey.init)
        self.decryptionKey = decryptionKey
    }

    /// Verifies the `SAMLResponse` form value (base64, line breaks allowed) of an HTTP-POST binding.
    public func verify(formValue: String, policy: SAMLResponsePolicy, now: Date) throws -> VerifiedSAMLAssertion {
        guard formValue.utf8.count <= Self.maximumEncodedSize else {
            throw VerificationError(check: "size", reason: "SAMLResponse larger than \(Self.maximumEncodedSize) bytes")
        }
        guard let xml = Data(base64Encoded: formValue, options: .ignoreUnknownCharacters) else {
            throw VerificationError(check: "encoding", reason: "SAMLResponse is not base64")
        }
        return try verify(xml: Array(xml), policy: policy, now: now)
    }

    /// Verifies a response's XML.
    public func verify(xml: [UInt8], policy: SAMLResponsePolicy, now: Date) throws -> VerifiedSAMLAssertion {
        guard xml.count <= Self.maximumSize else {
            throw VerificationError(check: "size", reason: "response larger than \(Self.maximumSize) bytes")
        }
        let tree = try XMLTree.parse(xml, what: "the response")
        guard let root = tree.root, root.is(NS.protocol_, "Response") else {
            throw VerificationError(check: "structure", reason: "the document is not a samlp:Response")
        }
        try Self.checkStatus(root)
        // What arrived: one Response, one Assertion or EncryptedAssertion, signatures only where allowed.
        let (response, arrived) = try Self.checkStructure(tree, decrypted: false)
        // The Response's signature covers the document as it arrived, so it is checked before any
        // decryption changes it.
        let responseSignature = try SignatureCheck.signature(of: response)
        if let responseSignature { try SignatureCheck.verify(responseSignature, signing: response, in: tree, keys: keys) }
        var assertion = arrived
        let encrypted = arrived.is(NS.assertion, "EncryptedAssertion")
        if encrypted {
            guard let decryptionKey else {
                throw VerificationError(check: "encryption", reason: "the assertion is encrypted and this provider has no SP decryption key")
            }
            // A Response signature the policy requires is missing: refuse before decrypting anything.
            if responseSignature == nil, policy.signatures == .response || policy.signatures == .both {
                throw VerificationError(check: "signature_missing", reason: "the Response is not signed")
            }
            try AssertionDecryption.decrypt(arrived, in: tree, with: decryptionKey)
            // What decryption revealed is held to the same rules as what arrived in clear; a failure
            // here is reported as a decryption failure, so that nobody learns which ciphertexts
            // decrypt to well-formed XML.
            do { assertion = try Self.checkStructure(tree, decrypted: true).consumed } catch let e as VerificationError {
                throw VerificationError(check: "encryption", reason: "the decrypted content is not one Assertion: \(e.failures.first?.reason ?? "")")
            }
        }

        // Signatures: every one present must verify; the policy says which must be present.
        let assertionSignature = try SignatureCheck.signature(of: assertion)
        let missing: String? = switch policy.signatures {
        case .assertion: assertionSignature == nil ? "the Assertion is not signed" : nil
        case .response: responseSignature == nil ? "the Response is not signed" : nil
        case .both: responseSignature == nil || assertionSignature == nil ? "the Response and the Assertion must both be signed" : nil
        case .either: responseSignature == nil && assertionSignature == nil ? "neither the Response nor the Assertion is signed" : nil
        }
        if let missing { throw VerificationError(check: "signature_missing", reason: missing) }
        if let assertionSignature { try SignatureCheck.verify(assertionSignature, signing: assertion, in: tree, keys: keys) }

        return try Self.evaluate(
            response: response, assertion: assertion, policy: policy, now: now,
            signedResponse: responseSignature != nil, signedAssertion: assertionSignature != nil, encrypted: encrypted)
    }

    // MARK: - structure

    /// One Response at the root holding exactly one Assertion or EncryptedAssertion (anywhere in the
    /// document: one), every Signature a direct child of the Response or that Assertion, and no ID
    /// used twice. After decryption (`decrypted`), the one Assertion sits inside the one
    /// EncryptedAssertion.
    static func checkStructure(_ tree: XMLTree, decrypted: Bool) throws -> (response: XMLElement, consumed: XMLElement) {
        func fail(_ reason: String) -> VerificationError { VerificationError(check: "structure", reason: reason) }
        guard let response = tree.root, response.is(NS.protocol_, "Response") else { throw fail("the document is not a samlp:Response") }
        guard response.attribute("Version") == "2.0" else { throw fail("the Response is not SAML 2.0") }
        var assertions: [XMLElement] = []
        var encrypted: [XMLElement] = []
        var signatures: [XMLElement] = []
        var ids = Set<String>()
        for element in tree.allElements() {
            if element.is(NS.assertion, "Assertion") { assertions.append(element) }
            if element.is(NS.assertion, "EncryptedAssertion") { encrypted.append(element) }
            if element.is(NS.dsig, "Signature") { signatures.append(element) }
            for value in element.idAttributeValues() {
                guard ids.insert(value).inserted else { throw fail("the ID \(value) is used twice") }
            }
        }
        let consumed: XMLElement
        if decrypted {
            guard encrypted.count == 1, assertions.count == 1, encrypted[0].parent?.node == response.node,
                assertions[0].parent?.node == encrypted[0].node
            else { throw fail("the decrypted document does not hold exactly one Assertion in its EncryptedAssertion") }
            consumed = assertions[0]
        } else {
            let all = assertions + encrypted
            guard all.count == 1 else {
                throw fail(all.isEmpty ? "the Response holds no Assertion" : "the document holds \(all.count) Assertions")
            }
            guard all[0].parent?.node == response.node else { throw fail("the Assertion is not a child of the Response") }
            consumed = all[0]
        }
        for signature in signatures {
            guard let parent = signature.parent, parent.node == response.node || parent.node == consumed.node else {
                throw fail("a Signature is not a direct child of the Response or the Assertion")
            }
        }
        return (response, consumed)
    }

    static func checkStatus(_ response: XMLElement) throws {
        guard let status = response.children(NS.protocol_, "Status").first,
            let code = status.children(NS.protocol_, "StatusCode").first?.attribute("Value")
        else { throw VerificationError(check: "status", reason: "the Response has no StatusCode") }
        guard code == "urn:oasis:names:tc:SAML:2.0:status:Success" else {
            let second = status.children(NS.protocol_, "StatusCode").first?.children(NS.protocol_, "StatusCode").first?.attribute("Value")
            let message = (try? status.children(NS.protocol_, "StatusMessage").first?.trimmedText()) ?? nil
            let detail = [second, message].compactMap { $0 }.joined(separator: ", ")
            throw VerificationError(check: "status", reason: "the IdP answered \(code)" + (detail.isEmpty ? "" : " (\(detail))"))
        }
    }

    // MARK: - policy

    static func evaluate(
        response: XMLElement, assertion: XMLElement, policy: SAMLResponsePolicy, now: Date,
        signedResponse: Bool, signedAssertion: Bool, encrypted: Bool
    ) throws -> VerifiedSAMLAssertion {
        var failures: [VerificationError.Failure] = []
        func fail(_ check: String, _ reason: String) { failures.append(.init(check: check, reason: reason)) }
        let skew = policy.clockSkew
        /// The NotBefore / NotOnOrAfter window of `element`, with the skew; returns NotOnOrAfter.
        /// An unreadable time, or a missing NotOnOrAfter where one is required, is a failure.
        func checkWindow(_ element: XMLElement, _ what: String, endRequired: Bool) -> Date? {
            if let text = element.attribute("NotBefore") {
                if let t = SAMLTime.parse(text) {
                    if now < t - skew { fail("time", "\(what) is not valid before \(text)") }
                } else { fail("time", "unreadable NotBefore \(text)") }
            }
            guard let text = element.attribute("NotOnOrAfter") else {
                if endRequired { fail("time", "\(what) has no NotOnOrAfter") }
                return nil
            }
            guard let t = SAMLTime.parse(text) else {
                fail("time", "unreadable NotOnOrAfter \(text)")
                return nil
            }
            if now >= t + skew { fail("time", "\(what) expired at \(text)") }
            return t
        }

        // Response: Destination, Issuer (if present), InResponseTo, IssueInstant.
        if let destination = response.attribute("Destination") {
            if destination != policy.acsURL { fail("destination", "Destination \(destination) is not this ACS (\(policy.acsURL))") }
        } else {
            fail("destination", "the Response has no Destination")
        }
        if let issuer = response.children(NS.assertion, "Issuer").first {
            let value = try issuer.trimmedText()
            if value != policy.idpEntityID { fail("issuer", "Response Issuer \(value) is not \(policy.idpEntityID)") }
            checkIssuerFormat(issuer, fail)
        }
        checkInResponseTo(response.attribute("InResponseTo"), where: "Response", policy, fail)
        checkIssueInstant(response, now: now, skew: skew, fail)

        // Assertion.
        guard let assertionID = assertion.attribute("ID"), !assertionID.isEmpty else {
            throw VerificationError(check: "structure", reason: "the Assertion has no ID")
        }
        if assertion.attribute("Version") != "2.0" { fail("structure", "the Assertion is not SAML 2.0") }
        checkIssueInstant(assertion, now: now, skew: skew, fail)
        let issuers = assertion.children(NS.assertion, "Issuer")
        if issuers.count != 1 {
            fail("issuer", "the Assertion has \(issuers.count) Issuers")
        } else {
            let value = try issuers[0].trimmedText()
            if value != policy.idpEntityID { fail("issuer", "Assertion Issuer \(value) is not \(policy.idpEntityID)") }
            checkIssuerFormat(issuers[0], fail)
        }

        // Subject: one NameID, and bearer confirmations that all hold.
        var nameID = ""
        var nameIDFormat: String?
        var replayableUntil: Date?
        let subjects = assertion.children(NS.assertion, "Subject")
        if subjects.count != 1 {
            fail("subject", "the Assertion has \(subjects.count) Subjects")
        } else {
            let subject = subjects[0]
            let ids = subject.children(NS.assertion, "NameID")
            if ids.count != 1 || subject.children.contains(where: { $0.localName == "EncryptedID" || $0.localName == "BaseID" }) {
                fail("subject", "the Subject must hold exactly one plain NameID")
            } else {
                nameID = try ids[0].trimmedText()
                nameIDFormat = ids[0].attribute("Format")
                if nameID.isEmpty { fail("subject", "the NameID is empty") }
            }
            let bearers = subject.children(NS.assertion, "SubjectConfirmation")
                .filter { $0.attribute("Method") == "urn:oasis:names:tc:SAML:2.0:cm:bearer" }
            if bearers.isEmpty { fail("subject_confirmation", "no bearer SubjectConfirmation") }
            for bearer in bearers {
                guard let data = bearer.children(NS.assertion, "SubjectConfirmationData").first else {
                    fail("subject_confirmation", "a bearer confirmation has no SubjectConfirmationData")
                    continue
                }
                let recipient = data.attribute("Recipient")
                if recipient != policy.acsURL {
                    fail("recipient", "Recipient \(recipient ?? "(none)") is not this ACS (\(policy.acsURL))")
                }
                checkInResponseTo(data.attribute("InResponseTo"), where: "SubjectConfirmationData", policy, fail)
                if let end = checkWindow(data, "the confirmation", endRequired: true) { replayableUntil = min(replayableUntil ?? end, end) }
            }
        }

        // Conditions: the time window, and every AudienceRestriction names this SP.
        let conditions = assertion.children(NS.assertion, "Conditions")
        if conditions.count != 1 {
            fail("audience", "the Assertion has \(conditions.count) Conditions (one with an AudienceRestriction is required)")
        } else {
            let c = conditions[0]
            if let end = checkWindow(c, "the Assertion", endRequired: false) { replayableUntil = min(replayableUntil ?? end, end) }
            let restrictions = c.children(NS.assertion, "AudienceRestriction")
            if restrictions.isEmpty { fail("audience", "the Conditions hold no AudienceRestriction") }
            for restriction in restrictions {
                let audiences = try restriction.children(NS.assertion, "Audience").map { try $0.trimmedText() }
                if !audiences.contains(policy.spEntityID) {
                    fail("audience", "an AudienceRestriction names \(audiences.joined(separator: ", ")), not \(policy.spEntityID)")
                }
            }
            for condition in c.children where !condition.is(NS.assertion, "AudienceRestriction")
                && !condition.is(NS.assertion, "OneTimeUse") && !condition.is(NS.assertion, "ProxyRestriction") {
                fail("conditions", "unknown condition <\(condition.localName)>")
            }
        }

        // AuthnStatement: when and how the person signed in.
        let statements = assertion.children(NS.assertion, "AuthnStatement")
        var sessionIndex: String?
        var authnInstant: Date?
        var classRef: String?
        if statements.isEmpty {
            fail("authn_statement", "the Assertion has no AuthnStatement")
        } else {
            let s = statements[0]
            sessionIndex = s.attribute("SessionIndex")
            if let instant = s.attribute("AuthnInstant") {
                authnInstant = SAMLTime.parse(instant)
                if authnInstant == nil { fail("time", "unreadable AuthnInstant \(instant)") }
                else if let a = authnInstant, a > now + skew { fail("time", "AuthnInstant \(instant) is in the future") }
            } else {
                fail("authn_statement", "the AuthnStatement has no AuthnInstant")
            }
            if let end = s.attribute("SessionNotOnOrAfter") {
                if let t = SAMLTime.parse(end) {
                    if now >= t + skew { fail("time", "the IdP session ended at \(end)") }
                } else { fail("time", "unreadable SessionNotOnOrAfter \(end)") }
            }
            classRef = try s.children(NS.assertion, "AuthnContext").first?
                .children(NS.assertion, "AuthnContextClassRef").first?.trimmedText()
        }

        let attributes = SAMLAttribute.read(from: assertion) { fail("attributes", $0) }

        guard failures.isEmpty, let replayableUntil else {
            throw VerificationError(failures.isEmpty ? [.init(check: "time", reason: "no validity window")] : failures)
        }
        return VerifiedSAMLAssertion(
            issuer: policy.idpEntityID, assertionID: assertionID, nameID: nameID, nameIDFormat: nameIDFormat,
            sessionIndex: sessionIndex, authnInstant: authnInstant, authnContextClassRef: classRef,
            attributes: attributes, inResponseTo: policy.expectedRequestID, replayableUntil: replayableUntil,
            signedResponse: signedResponse, signedAssertion: signedAssertion, wasEncrypted: encrypted)
    }

    private static func checkIssuerFormat(_ issuer: XMLElement, _ fail: (String, String) -> Void) {
        if let format = issuer.attribute("Format"), format != "urn:oasis:names:tc:SAML:2.0:nameid-format:entity" {
            fail("issuer", "Issuer Format \(format) is not entity")
        }
    }

    private static func checkInResponseTo(
        _ value: String?, where place: String, _ policy: SAMLResponsePolicy, _ fail: (String, String) -> Void
    ) {
        switch (policy.expectedRequestID, value) {
        case (let expected?, let got?) where expected == got: break
        case (nil, nil): break
        case (let expected?, nil):
            // The Response may omit it when the confirmation carries it; the confirmation may not.
            if place != "Response" { fail("in_response_to", "\(place) has no InResponseTo; expected \(expected)") }
        case (_?, let got?): fail("in_response_to", "\(place) answers request \(got), not this browser's")
        case (nil, let got?): fail("in_response_to", "\(place) answers request \(got), but none is pending (unsolicited login)")
        }
    }

    private static func checkIssueInstant(_ element: XMLElement, now: Date, skew: TimeInterval, _ fail: (String, String) -> Void) {
        guard let text = element.attribute("IssueInstant"), let instant = SAMLTime.parse(text) else {
            fail("time", "<\(element.localName)> has no readable IssueInstant")
            return
        }
        if instant > now + skew { fail("time", "<\(element.localName)> was issued in the future (\(text))") }
        if instant < now - skew - SAMLResponsePolicy.maximumAge {
            fail("time", "<\(element.localName)> was issued at \(text), more than \(Int(SAMLResponsePolicy.maximumAge)) s ago")
        }
    }
}
