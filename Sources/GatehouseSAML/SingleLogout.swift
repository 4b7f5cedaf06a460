public import Foundation
public import GatehouseCore
import Crypto
import _CryptoExtras

/// A logout message as it reached the SLO endpoint.
public enum SAMLIncomingMessage: Sendable {
    /// HTTP-Redirect binding: the query string exactly as received (still percent-encoded), whose
    /// octets the signature covers.
    case redirect(rawQuery: String)
    /// HTTP-POST binding: the form.
    case post(form: [String: String])
}

/// A verified logout message from the IdP.
public enum SAMLLogoutMessage: Sendable, Equatable {
    /// The IdP ends a session: the user's NameID and the sessions (none: every session of the user).
    case request(id: String, nameID: String, sessionIndexes: [String], relayState: String?)
    /// The IdP's answer to Gatehouse's LogoutRequest.
    case response(inResponseTo: String?, success: Bool, relayState: String?)
}

extension SAMLAdapter {
    /// SP-initiated logout: a LogoutRequest for the user's NameID and session, signed, to the IdP's
    /// SingleLogoutService over HTTP-Redirect (or HTTP-POST when that is all it has). Nil when the
    /// IdP publishes no single logout.
    public func logoutRequest(nameID: String, sessionIndex: String?, relayState: String, now: Date) throws -> (request: UpstreamRequest, requestID: String)? {
        guard let (endpoint, binding) = logoutEndpoint() else { return nil }
        let id = "_lo" + Secrets.randomToken(bytes: 16).replacingOccurrences(of: "-", with: "x")
        let outgoing = try send(parameter: "SAMLRequest", to: endpoint.location, binding: binding, id: id, relayState: relayState) { signature in
            var xml = "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" "
                + "ID=\"\(id)\" Version=\"2.0\" IssueInstant=\"\(SAMLTime.format(now))\" Destination=\"\(xmlEscaped(endpoint.location))\" "
                + "NotOnOrAfter=\"\(SAMLTime.format(now.addingTimeInterval(300)))\">"
                + "<saml:Issuer>\(xmlEscaped(settings.spEntityID))</saml:Issuer>" + signature
            xml += settings.nameIDFormat.map { "<saml:NameID Format=\"\(xmlEscaped($0))\">" } ?? "<saml:NameID>"
            xml += xmlEscaped(nameID) + "</saml:NameID>"
            if let sessionIndex { xml += "<samlp:SessionIndex>\(xmlEscaped(sessionIndex))</samlp:SessionIndex>" }
            return xml + "</samlp:LogoutRequest>"
        }
        return (outgoing, id)
    }

    /// The answer to an IdP's LogoutRequest, signed, over the binding its SingleLogoutService has.
    public func logoutResponse(inResponseTo: String, relayState: String?, now: Date) throws -> UpstreamRequest {
        guard let (endpoint, binding) = logoutEndpoint() else {
            throw UpstreamError(.misconfigured, "the IdP has no SingleLogoutService")
        }
        let location = endpoint.responseLocation ?? endpoint.location
        let id = "_lr" + Secrets.randomToken(bytes: 16).replacingOccurrences(of: "-", with: "x")
        return try send(parameter: "SAMLResponse", to: location, binding: binding, id: id, relayState: relayState) { signature in
            "<samlp:LogoutResponse xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" "
                + "ID=\"\(id)\" Version=\"2.0\" IssueInstant=\"\(SAMLTime.format(now))\" Destination=\"\(xmlEscaped(location))\" "
                + "InResponseTo=\"\(xmlEscaped(inResponseTo))\"><saml:Issuer>\(xmlEscaped(settings.spEntityID))</saml:Issuer>" + signature
                + "<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status></samlp:LogoutResponse>"
        }
    }

    private func logoutEndpoint() -> (SAMLEndpoint, SAMLBinding)? {
        if let e = metadata.singleLogout(.redirect) { return (e, .redirect) }
        if let e = metadata.singleLogout(.post) { return (e, .post) }
        return nil
    }

    /// A message signed for its binding: over the query for HTTP-Redirect, enveloped for HTTP-POST
    /// (`build` gets the signature template to place after the Issuer, or "" for Redirect).
    private func send(parameter: String, to location: String, binding: SAMLBinding, id: String, relayState: String?, _ build: (String) -> String) throws -> UpstreamRequest {
        switch binding {
        case .redirect:
            return .redirect(try signedRedirect(to: location, parameter: parameter, xml: build(""), relayState: relayState))
        case .post:
            guard let url = URL(string: location) else { throw UpstreamError(.misconfigured, "the IdP's endpoint location is not a URL") }
            let signed = try credential.signEnveloped(build(credential.signatureTemplate(for: id)), id: id)
            var fields = [UpstreamRequest.FormField(parameter, Data(signed.utf8).base64EncodedString())]
            if let relayState { fields.append(.init("RelayState", relayState)) }
            return .formPost(action: url, fields: fields)
        }
    }

    /// Verifies a LogoutRequest or LogoutResponse from the IdP: signed by a key pinned from its
    /// metadata (over the query octets for HTTP-Redirect, enveloped for HTTP-POST; unsigned messages
    /// are refused), issued by it, addressed to this SLO endpoint, and fresh.
    public func verifyLogoutMessage(_ message: SAMLIncomingMessage, now: Date) async throws -> SAMLLogoutMessage {
        let verified = try verifyLogoutMessageContent(message, now: now)
        // A LogoutRequest is accepted once: a replayed one (from a log or a Referer) changes nothing.
        if case .request(let id, _, _, _) = verified {
            let until = now.addingTimeInterval(TimeInterval(settings.clockSkewSeconds) * 2 + 601)
            guard try await replayCache.remember(namespace: replayNamespace + ":logout", key: id, expiresAt: until, now: now) else {
                throw VerificationError(check: "replay", reason: "the LogoutRequest \(id) was already used")
            }
        }
        return verified
    }

    func verifyLogoutMessageContent(_ message: SAMLIncomingMessage, now: Date) throws -> SAMLLogoutMessage {
        func fail(_ check: String, _ reason: String) -> VerificationError { VerificationError(check: check, reason: reason) }
        let xml: [UInt8]
        let relayState: String?
        let signedInDocument: Bool
        switch message {
        case .redirect(let rawQuery):
            guard rawQuery.utf8.count <= 64 * 1024 else { throw fail("size", "the logout message is too large") }
            var raw: [String: Substring] = [:]
            for pair in rawQuery.split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = String(kv[0])
                guard raw[name] == nil else { throw fail("format", "\(name) appears twice") }
                raw[name] = kv.count > 1 ? kv[1] : ""
            }
            let parameter = raw["SAMLRequest"] != nil ? "SAMLRequest" : "SAMLResponse"
            guard let value = raw[parameter], let sigAlg = raw["SigAlg"], let signature = raw["Signature"] else {
                throw fail("signature_missing", "the logout message is not signed")
            }
            var signedOctets = "\(parameter)=\(value)"
            if let rs = raw["RelayState"] { signedOctets += "&RelayState=\(rs)" }
            signedOctets += "&SigAlg=\(sigAlg)"
            guard let algorithm = FormEncoding.decodeComponent(sigAlg), let signatureText = FormEncoding.decodeComponent(signature),
                let signatureBytes = Data(base64Encoded: signatureText, options: .ignoreUnknownCharacters)
            else { throw fail("format", "malformed SigAlg or Signature") }
            try verifyQuerySignature(Array(signedOctets.utf8), algorithm: algorithm, signature: signatureBytes)
            guard let text = FormEncoding.decodeComponent(value), let deflated = Data(base64Encoded: text, options: .ignoreUnknownCharacters),
                let inflated = RawDeflate.decompress(Array(deflated), limit: 64 * 1024)
            else { throw fail("encoding", "the logout message is not deflated base64") }
            xml = inflated
            relayState = raw["RelayState"].flatMap { FormEncoding.decodeComponent($0) }
            signedInDocument = false
        case .post(let form):
            guard let value = form["SAMLRequest"] ?? form["SAMLResponse"], value.utf8.count <= 96 * 1024,
                let decoded = Data(base64Encoded: value, options: .ignoreUnknownCharacters)
            else { throw fail("format", "no logout message in the form") }
            xml = Array(decoded)
            relayState = form["RelayState"]
            signedInDocument = true
        }
        let tree = try XMLTree.parse(xml, what: "the logout message")
        guard let root = tree.root, root.is(NS.protocol_, "LogoutRequest") || root.is(NS.protocol_, "LogoutResponse"),
            root.attribute("Version") == "2.0", let id = root.attribute("ID")
        else { throw fail("structure", "not a SAML 2.0 LogoutRequest or LogoutResponse") }
        try SAMLIdentityProviderMetadata.checkUniqueIDs(tree)
        if signedInDocument {
            guard let signature = try SignatureCheck.signature(of: root) else { throw fail("signature_missing", "the logout message is not signed") }
            try SignatureCheck.verify(signature, signing: root, in: tree, keys: verifier.keys)
        }
        var failures: [VerificationError.Failure] = []
        let issuer = try root.children(NS.assertion, "Issuer").first?.trimmedText()
        if issuer != metadata.entityID { failures.append(.init(check: "issuer", reason: "Issuer \(issuer ?? "(none)") is not \(metadata.entityID)")) }
        guard let slo = settings.sloURL else { throw fail("destination", "single logout is not configured for this provider") }
        if root.attribute("Destination") != slo {
            failures.append(.init(check: "destination", reason: "Destination \(root.attribute("Destination") ?? "(none)") is not \(slo)"))
        }
        let skew = TimeInterval(settings.clockSkewSeconds)
        if let text = root.attribute("IssueInstant"), let instant = SAMLTime.parse(text) {
            if instant > now + skew || instant < now - skew - 600 { failures.append(.init(check: "time", reason: "IssueInstant \(text) is not recent")) }
        } else {
            failures.append(.init(check: "time", reason: "no readable IssueInstant"))
        }
        if let text = root.attribute("NotOnOrAfter"), let end = SAMLTime.parse(text), now >= end + skew {
            failures.append(.init(check: "time", reason: "the request expired at \(text)"))
        }
        if root.is(NS.protocol_, "LogoutRequest") {
            let ids = root.children(NS.assertion, "NameID")
            guard failures.isEmpty, ids.count == 1 else {
                throw VerificationError(failures + (ids.count == 1 ? [] : [.init(check: "subject", reason: "a LogoutRequest names exactly one NameID")]))
            }
            if let qualifier = ids[0].attribute("SPNameQualifier"), qualifier != settings.spEntityID {
                throw VerificationError(check: "subject", reason: "the NameID belongs to another SP (\(qualifier))")
            }
            let sessions = try root.children(NS.protocol_, "SessionIndex").map { try $0.trimmedText() }
            return .request(id: id, nameID: try ids[0].trimmedText(), sessionIndexes: sessions, relayState: relayState)
        }
        guard failures.isEmpty else { throw VerificationError(failures) }
        let status = root.children(NS.protocol_, "Status").first?.children(NS.protocol_, "StatusCode").first?.attribute("Value")
        return .response(inResponseTo: root.attribute("InResponseTo"), success: status == "urn:oasis:names:tc:SAML:2.0:status:Success", relayState: relayState)
    }

    /// The HTTP-Redirect binding's signature: RSA with SHA-256/384/512 over the query octets, by a
    /// signing key from the IdP's metadata.
    func verifyQuerySignature(_ octets: [UInt8], algorithm: String, signature: Data) throws {
        let rsaSignature = _RSA.Signing.RSASignature(rawRepresentation: signature)
        for certificate in metadata.signingCertificates {
            guard let key = try? _RSA.Signing.PublicKey(derRepresentation: certificate.publicKeyDER) else { continue }
            let valid: Bool
            switch algorithm {
            case "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": valid = key.isValidSignature(rsaSignature, for: SHA256.hash(data: octets), padding: .insecurePKCS1v1_5)
            case "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": valid = key.isValidSignature(rsaSignature, for: SHA384.hash(data: octets), padding: .insecurePKCS1v1_5)
            case "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": valid = key.isValidSignature(rsaSignature, for: SHA512.hash(data: octets), padding: .insecurePKCS1v1_5)
            default: throw VerificationError(check: "signature_structure", reason: "SigAlg \(algorithm) is not allowed (RSA with SHA-256/384/512 only)")
            }
            if valid { return }
        }
        throw VerificationError(check: "signature", reason: "the logout message's signature does not verify with any pinned key of the provider")
    }
}
