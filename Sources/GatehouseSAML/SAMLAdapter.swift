public import Foundation
public import GatehouseCore

/// The SAML 2.0 service-provider side of one identity provider: AuthnRequests out (HTTP-Redirect
/// or HTTP-POST, always signed), responses in at the ACS (HTTP-POST), verified with keys pinned from
/// the IdP's metadata, with assertion IDs kept in the Directory's replay cache.
public final class SAMLAdapter: UnsolicitedLoginAdapter {
    public let providerName: String
    public let settings: SAMLProviderSettings
    public let metadata: SAMLIdentityProviderMetadata
    let verifier: SAMLResponseVerifier
    let credential: SAMLSigningCredential
    let replayCache: any ReplayCache
    let replayNamespace: String
    let signatures: SAMLSignatureRequirement
    let clock: any GatehouseClock

    public init(
        poolID: PoolID, providerName: String, settings: SAMLProviderSettings, spPrivateKeyPEM: String,
        replayCache: any ReplayCache, clock: any GatehouseClock
    ) throws {
        let now = clock.now()
        let pinned = try settings.metadataSigningCertificatePEM.map { try SAMLCertificate(base64OrPEM: $0) }
        let metadata = try SAMLIdentityProviderMetadata.parse(
            Array(settings.metadataXML.utf8), entityID: settings.idpEntityID, pinnedCertificate: pinned, now: now)
        guard let signatures = SAMLSignatureRequirement(rawValue: settings.signatures) else {
            throw ConfigurationError("unknown signature requirement \(settings.signatures)")
        }
        self.providerName = providerName
        self.settings = settings
        self.metadata = metadata
        let credential = try SAMLSigningCredential(privateKeyPEM: spPrivateKeyPEM, certificatePEM: settings.spCertificatePEM)
        self.credential = credential
        self.verifier = try SAMLResponseVerifier(signingCertificates: metadata.signingCertificates, decryptionKey: credential)
        self.replayCache = replayCache
        self.replayNamespace = "saml:\(poolID)/\(providerName)"
        self.signatures = signatures
        self.clock = clock
    }

    /// The AuthnRequest ID of a login: derived from the transaction's upstream nonce, so that the
    /// InResponseTo of the answer is bound to exactly that transaction.
    public static func requestID(for state: UpstreamLoginState) -> String { "_" + state.nonce }

    public var allowsUnsolicited: Bool { settings.allowIdPInitiated }

    // MARK: - AuthnRequest

    func authnRequestXML(id: String, destination: String, now: Date, signed: Bool, forceAuthn: Bool = false) -> String {
        var xml = "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" "
            + "xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"\(xmlEscaped(id))\" Version=\"2.0\" "
            + "IssueInstant=\"\(SAMLTime.format(now))\" Destination=\"\(xmlEscaped(destination))\" "
            + "AssertionConsumerServiceURL=\"\(xmlEscaped(settings.acsURL))\" "
            + "ProtocolBinding=\"\(SAMLBinding.post.rawValue)\""
        if settings.forceAuthn || forceAuthn { xml += " ForceAuthn=\"true\"" }
        xml += "><saml:Issuer>\(xmlEscaped(settings.spEntityID))</saml:Issuer>"
        if signed { xml += credential.signatureTemplate(for: id) }
        if let format = settings.nameIDFormat {
            xml += "<samlp:NameIDPolicy Format=\"\(xmlEscaped(format))\" AllowCreate=\"true\"/>"
        } else {
            xml += "<samlp:NameIDPolicy AllowCreate=\"true\"/>"
        }
        if !settings.requestedAuthnContext.isEmpty {
            xml += "<samlp:RequestedAuthnContext Comparison=\"exact\">"
            for ref in settings.requestedAuthnContext { xml += "<saml:AuthnContextClassRef>\(xmlEscaped(ref))</saml:AuthnContextClassRef>" }
            xml += "</samlp:RequestedAuthnContext>"
        }
        return xml + "</samlp:AuthnRequest>"
    }

    public func begin(_ state: UpstreamLoginState) async throws -> URL {
        try redirectURL(state, now: clock.now())
    }

    public func start(_ state: UpstreamLoginState) async throws -> UpstreamRequest {
        try request(state, now: clock.now())
    }

    /// The browser's way to the IdP for this login, signed.
    public func request(_ state: UpstreamLoginState, now: Date) throws -> UpstreamRequest {
        switch settings.requestBinding {
        case .redirect where metadata.singleSignOn(.redirect) != nil:
            return .redirect(try redirectURL(state, now: now))
        case .post where metadata.singleSignOn(.post) != nil, .redirect:
            guard let endpoint = metadata.singleSignOn(.post), let url = URL(string: endpoint.location) else {
                throw UpstreamError(.misconfigured, "the IdP has no usable SingleSignOnService")
            }
            let id = Self.requestID(for: state)
            let signed = try credential.signEnveloped(authnRequestXML(id: id, destination: endpoint.location, now: now, signed: true, forceAuthn: state.forceFreshLogin), id: id)
            return .formPost(action: url, fields: [
                .init("SAMLRequest", Data(signed.utf8).base64EncodedString()), .init("RelayState", state.state),
            ])
        case .post:
            return .redirect(try redirectURL(state, now: now))
        }
    }

    /// HTTP-Redirect binding (SAML bindings §3.4.4.1): the deflated request and RelayState in the
    /// query, signed with RSA-SHA256 over the exact encoded `SAMLRequest`, `RelayState` and `SigAlg`.
    func redirectURL(_ state: UpstreamLoginState, now: Date) throws -> URL {
        guard let endpoint = metadata.singleSignOn(.redirect) else {
            throw UpstreamError(.misconfigured, "the IdP has no HTTP-Redirect SingleSignOnService")
        }
        let xml = authnRequestXML(id: Self.requestID(for: state), destination: endpoint.location, now: now, signed: false, forceAuthn: state.forceFreshLogin)
        return try signedRedirect(to: endpoint.location, parameter: "SAMLRequest", xml: xml, relayState: state.state)
    }

    /// A message over the HTTP-Redirect binding, signed by the SP key.
    func signedRedirect(to location: String, parameter: String, xml: String, relayState: String?) throws -> URL {
        guard let deflated = RawDeflate.compress(Array(xml.utf8)) else { throw UpstreamError(.misconfigured, "the message cannot be deflated") }
        let encoded = Data(deflated).base64EncodedString()
        var query = parameter + "=" + FormEncoding.escape(encoded)
        if let relayState { query += "&RelayState=" + FormEncoding.escape(relayState) }
        query += "&SigAlg=" + FormEncoding.escape("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
        let signature = try credential.signRSASHA256(Array(query.utf8))
        query += "&Signature=" + FormEncoding.escape(signature.base64EncodedString())
        let separator = location.contains("?") ? "&" : "?"
        guard let url = URL(string: location + separator + query) else {
            throw UpstreamError(.misconfigured, "the IdP's endpoint location is not a URL")
        }
        return url
    }

    // MARK: - ACS

    public func complete(_ callback: UpstreamCallback, state: UpstreamLoginState, now: Date) async throws -> VerifiedIdentity {
        guard callback.parameters["RelayState"] == state.state else {
            throw UpstreamError(.verification, "RelayState does not name this login", failures: [.init(check: "relay_state", reason: "RelayState is not this login's")])
        }
        return try await verify(callback, expectedRequestID: Self.requestID(for: state), now: now)
    }

    public func completeUnsolicited(_ callback: UpstreamCallback, now: Date) async throws -> VerifiedIdentity {
        guard settings.allowIdPInitiated else {
            throw UpstreamError(.verification, "IdP-initiated login is off for this provider", failures: [.init(check: "unsolicited", reason: "IdP-initiated login is not allowed")])
        }
        return try await verify(callback, expectedRequestID: nil, now: now)
    }

    func verify(_ callback: UpstreamCallback, expectedRequestID: String?, now: Date) async throws -> VerifiedIdentity {
        guard let value = callback.parameters["SAMLResponse"] else {
            throw UpstreamError(.verification, "no SAMLResponse", failures: [.init(check: "format", reason: "the ACS request has no SAMLResponse")])
        }
        let policy = SAMLResponsePolicy(
            spEntityID: settings.spEntityID, acsURL: settings.acsURL, idpEntityID: metadata.entityID,
            expectedRequestID: expectedRequestID, clockSkew: TimeInterval(settings.clockSkewSeconds), signatures: signatures)
        let assertion: VerifiedSAMLAssertion
        do {
            assertion = try verifier.verify(formValue: value, policy: policy, now: now)
        } catch let e as VerificationError {
            let refused = e.failures.count == 1 && e.failures[0].check == "status"
            throw UpstreamError(refused ? .upstreamRefused : .verification, "the SAML response was refused", failures: e.failures)
        }
        // The replay cache is checked last, so a forged response cannot burn a genuine assertion ID.
        // Kept until the assertion could no longer pass the time checks, skew included.
        let forgetAt = assertion.replayableUntil.addingTimeInterval(TimeInterval(settings.clockSkewSeconds) + 1)
        guard try await replayCache.remember(namespace: replayNamespace, key: assertion.assertionID, expiresAt: forgetAt, now: now) else {
            throw UpstreamError(.verification, "the assertion was already used", failures: [.init(check: "replay", reason: "assertion \(assertion.assertionID) was already used")])
        }
        return identity(from: assertion)
    }

    func identity(from assertion: VerifiedSAMLAssertion) -> VerifiedIdentity {
        var attributes = assertion.attributeValues
        attributes["NameID"] = [assertion.nameID]
        return VerifiedIdentity(
            providerName: providerName, providerKind: .saml, upstreamIssuer: assertion.issuer, upstreamSubject: assertion.nameID,
            attributes: attributes, authTime: assertion.authnInstant, acr: assertion.authnContextClassRef,
            amr: Self.amr(for: assertion.authnContextClassRef), sessionIndex: assertion.sessionIndex)
    }

    /// RFC 8176 method references for the common AuthnContext classes.
    static func amr(for classRef: String?) -> [String] {
        guard let classRef else { return [] }
        let name = classRef.split(separator: ":").last.map(String.init) ?? classRef
        switch name {
        case "Password", "PasswordProtectedTransport": return ["pwd"]
        case "X509", "Smartcard", "SmartcardPKI", "SoftwarePKI": return ["hwk"]
        case "Kerberos": return ["kba"]
        case "TimeSyncToken": return ["otp"]
        case "MobileTwoFactorContract", "MobileTwoFactorUnregistered": return ["mfa"]
        default:
            let lowered = classRef.lowercased()
            return lowered.contains("mfa") || lowered.contains("multifactor") || lowered.contains("multipleauthn") ? ["mfa"] : []
        }
    }

    // MARK: - SP metadata

    /// Gatehouse's SP metadata for this provider, signed with the SP key.
    public func serviceProviderMetadata() throws -> String {
        let id = "_sp" + Secrets.randomToken(bytes: 16).replacingOccurrences(of: "-", with: "x")
        let keyInfo = "<ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:X509Data><ds:X509Certificate>"
            + credential.certificate.base64 + "</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
        var xml = "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"\(xmlEscaped(settings.spEntityID))\" ID=\"\(id)\">"
        xml += credential.signatureTemplate(for: id)
        xml += "<md:SPSSODescriptor AuthnRequestsSigned=\"true\" WantAssertionsSigned=\"\(signatures == .assertion || signatures == .both)\" "
            + "protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">"
        xml += "<md:KeyDescriptor use=\"signing\">\(keyInfo)</md:KeyDescriptor>"
        xml += "<md:KeyDescriptor use=\"encryption\">\(keyInfo)</md:KeyDescriptor>"
        if let format = settings.nameIDFormat { xml += "<md:NameIDFormat>\(xmlEscaped(format))</md:NameIDFormat>" }
        if let slo = settings.sloURL {
            xml += "<md:SingleLogoutService Binding=\"\(SAMLBinding.redirect.rawValue)\" Location=\"\(xmlEscaped(slo))\"/>"
            xml += "<md:SingleLogoutService Binding=\"\(SAMLBinding.post.rawValue)\" Location=\"\(xmlEscaped(slo))\"/>"
        }
        xml += "<md:AssertionConsumerService Binding=\"\(SAMLBinding.post.rawValue)\" Location=\"\(xmlEscaped(settings.acsURL))\" index=\"0\" isDefault=\"true\"/>"
        xml += "</md:SPSSODescriptor></md:EntityDescriptor>"
        return try credential.signEnveloped(xml, id: id)
    }
}
