import Foundation
import Testing
import Crypto
import _CryptoExtras
@testable import GatehouseCore
@testable import GatehouseSAML

/// A replay cache in memory, with the Directory's contract (first remember wins).
final class MemoryReplayCache: ReplayCache, @unchecked Sendable {
    private var seen: Set<String> = []
    private let lock = NSLock()
    func remember(namespace: String, key: String, expiresAt: Date, now: Date) async throws -> Bool {
        lock.withLock { seen.insert(namespace + "|" + key).inserted }
    }
}

@Suite struct MetadataTests {
    static var metadata: String {
        get throws { try String(contentsOf: Corpus.directory.appendingPathComponent("idp-metadata.xml"), encoding: .utf8) }
    }

    @Test func everyPartAnAdapterNeedsIsRead() throws {
        let m = try SAMLIdentityProviderMetadata.parse(Array(try Self.metadata.utf8), now: Corpus.now)
        #expect(m.entityID == "https://idp.example.test/saml")
        #expect(m.signingCertificates.count == 2, "both keys: rollover")
        #expect(m.encryptionCertificates.isEmpty)
        #expect(m.singleSignOn(.redirect)?.location == "https://idp.example.test/saml/sso")
        #expect(m.singleSignOn(.post)?.location == "https://idp.example.test/saml/sso-post")
        #expect(m.singleLogout(.redirect)?.location == "https://idp.example.test/saml/slo")
        #expect(m.nameIDFormats == ["urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress", "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"])
        #expect(m.wantAuthnRequestsSigned)
        #expect(m.cacheDuration.map { Int($0) } == 21_600)
        #expect(m.validUntil == SAMLTime.parse("2027-11-22T10:00:00Z"))
        #expect(!m.signatureVerified)
        // Certificates close to expiry are reported (the fixtures' are ten years long).
        #expect(m.certificatesExpiring(within: 86_400, now: Corpus.now).isEmpty)
        #expect(m.certificatesExpiring(within: 20 * 365 * 86_400, now: Corpus.now).count == 2)
    }

    @Test func expiredMetadataAndTheWrongEntityAreRefused() throws {
        let xml = Array(try Self.metadata.utf8)
        #expect(throws: ConfigurationError.self) { try SAMLIdentityProviderMetadata.parse(xml, now: SAMLTime.parse("2027-11-22T10:00:00Z")!) }
        #expect(throws: ConfigurationError.self) { try SAMLIdentityProviderMetadata.parse(xml, entityID: "https://other.example", now: Corpus.now) }
    }

    @Test func anAggregateNeedsTheEntityIDAndYieldsThatEntity() throws {
        let entity = try Self.metadata.components(separatedBy: "?>\n")[1]
        let aggregate = "<md:EntitiesDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\"><md:EntitiesDescriptor>\(entity)</md:EntitiesDescriptor></md:EntitiesDescriptor>"
        #expect(throws: ConfigurationError.self) { try SAMLIdentityProviderMetadata.parse(Array(aggregate.utf8), now: Corpus.now) }
        let m = try SAMLIdentityProviderMetadata.parse(Array(aggregate.utf8), entityID: "https://idp.example.test/saml", now: Corpus.now)
        #expect(m.signingCertificates.count == 2)
        // A validUntil on an EntitiesDescriptor between the root and the entity counts too.
        let nested = aggregate.replacingOccurrences(of: "<md:EntitiesDescriptor>", with: "<md:EntitiesDescriptor validUntil=\"2026-11-23T00:00:00Z\" cacheDuration=\"PT1H\">")
        let n = try SAMLIdentityProviderMetadata.parse(Array(nested.utf8), entityID: "https://idp.example.test/saml", now: Corpus.now)
        #expect(n.validUntil == SAMLTime.parse("2026-11-23T00:00:00Z"))
        #expect(n.cacheDuration.map { Int($0) } == 3600)
    }

    @Test func signedMetadataVerifiesOnlyAgainstThePinnedCertificate() throws {
        let signed = Array(try String(contentsOf: Corpus.directory.appendingPathComponent("idp-metadata-signed.xml"), encoding: .utf8).utf8)
        let m = try SAMLIdentityProviderMetadata.parse(signed, pinnedCertificate: try Corpus.certificate("idp-rsa"), now: Corpus.now)
        #expect(m.signatureVerified)
        #expect(throws: ConfigurationError.self) {
            try SAMLIdentityProviderMetadata.parse(signed, pinnedCertificate: try Corpus.certificate("attacker"), now: Corpus.now)
        }
        // Unsigned metadata with a pinned certificate, and a tampered signed one, are refused.
        #expect(throws: ConfigurationError.self) {
            try SAMLIdentityProviderMetadata.parse(Array(try Self.metadata.utf8), pinnedCertificate: try Corpus.certificate("idp-rsa"), now: Corpus.now)
        }
        let tampered = String(decoding: signed, as: UTF8.self).replacingOccurrences(of: "https://idp.example.test/saml/sso\"", with: "https://evil.example/sso\"")
        #expect(throws: ConfigurationError.self) {
            try SAMLIdentityProviderMetadata.parse(Array(tampered.utf8), pinnedCertificate: try Corpus.certificate("idp-rsa"), now: Corpus.now)
        }
    }

    @Test func durationsFollowXMLSchema() {
        #expect(SAMLIdentityProviderMetadata.parseDuration("PT6H") == 21_600)
        #expect(SAMLIdentityProviderMetadata.parseDuration("P1DT30M") == 88_200)
        #expect(SAMLIdentityProviderMetadata.parseDuration("PT0.5S") == 0.5)
        for bad in ["P", "PT", "6H", "P1H", "PT1D", "-PT1H", "P1.5.5D"] {
            #expect(SAMLIdentityProviderMetadata.parseDuration(bad) == nil, "\(bad)")
        }
    }
}

@Suite struct ServiceProviderTests {
    func adapter(binding: SAMLProviderSettings.RequestBinding = .redirect, idpInitiated: Bool = false, cache: MemoryReplayCache = MemoryReplayCache()) throws -> SAMLAdapter {
        let sp = try Corpus.spCredential()
        let settings = SAMLProviderSettings(
            idpEntityID: "https://idp.example.test/saml", metadataXML: try MetadataTests.metadata,
            spEntityID: Corpus.settings["sp_entity_id"]!, acsURL: Corpus.settings["acs_url"]!,
            spCertificatePEM: try String(contentsOf: Corpus.directory.appendingPathComponent("sp.crt"), encoding: .utf8),
            sealedSPPrivateKey: "unused", requestBinding: binding, nameIDFormat: "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            forceAuthn: true, requestedAuthnContext: ["urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"],
            allowIdPInitiated: idpInitiated)
        return try SAMLAdapter(poolID: try PoolID("acme"), providerName: "Corp", settings: settings, spPrivateKeyPEM: sp.privateKeyPEM, replayCache: cache, clock: ManualClock(Corpus.now))
    }

    let state = UpstreamLoginState(state: "relay-123", nonce: "req4f1e6a0c9b2d4e7f8a1b3c5d", pkceVerifier: "unused", callbackURL: "unused")

    @Test func theRedirectBindingIsDeflatedAndSignedOverTheExactQuery() throws {
        let a = try adapter()
        let url = try a.redirectURL(state, now: Corpus.now)
        #expect(url.absoluteString.hasPrefix("https://idp.example.test/saml/sso?SAMLRequest="))
        let query = try #require(url.query)
        let signedPart = try #require(query.components(separatedBy: "&Signature=").first)
        let params = try #require(FormEncoding.decode(query))
        #expect(params["RelayState"] == "relay-123")
        #expect(params["SigAlg"] == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
        // The signature verifies with the SP certificate over the query as sent.
        let spKey = try _RSA.Signing.PrivateKey(pemRepresentation: try Corpus.spCredential().privateKeyPEM).publicKey
        let signatureText = try #require(params["Signature"])
        let signature = _RSA.Signing.RSASignature(rawRepresentation: try #require(Data(base64Encoded: signatureText)))
        #expect(spKey.isValidSignature(signature, for: SHA256.hash(data: Data(signedPart.utf8)), padding: .insecurePKCS1v1_5))
        #expect(!spKey.isValidSignature(signature, for: SHA256.hash(data: Data((signedPart + "x").utf8)), padding: .insecurePKCS1v1_5))
        // The request itself: its ID is bound to the transaction, and it asks what the settings say.
        let requestText = try #require(params["SAMLRequest"])
        let deflated = try #require(Data(base64Encoded: requestText))
        let xml = String(decoding: try #require(RawDeflate.decompress(Array(deflated), limit: 100_000)), as: UTF8.self)
        #expect(xml.contains("ID=\"_req4f1e6a0c9b2d4e7f8a1b3c5d\""))
        #expect(xml.contains("AssertionConsumerServiceURL=\"\(Corpus.settings["acs_url"]!)\""))
        #expect(xml.contains("Destination=\"https://idp.example.test/saml/sso\""))
        #expect(xml.contains("ForceAuthn=\"true\""))
        #expect(xml.contains("<samlp:NameIDPolicy Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:persistent\" AllowCreate=\"true\"/>"))
        #expect(xml.contains("<saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef>"))
        #expect(xml.contains("<saml:Issuer>\(Corpus.settings["sp_entity_id"]!)</saml:Issuer>"))
    }

    @Test func thePostBindingCarriesAnEnvelopedSignatureByTheSPKey() throws {
        let a = try adapter(binding: .post)
        guard case .formPost(let action, let fields) = try a.request(state, now: Corpus.now) else {
            Issue.record("expected a form post")
            return
        }
        #expect(action.absoluteString == "https://idp.example.test/saml/sso-post")
        #expect(fields.map(\.name) == ["SAMLRequest", "RelayState"])
        let xml = Array(try #require(Data(base64Encoded: fields[0].value)))
        let tree = try XMLTree.parse(xml)
        let root = try #require(tree.root)
        let signature = try #require(try SignatureCheck.signature(of: root))
        try SignatureCheck.verify(signature, signing: root, in: tree, keys: [TrustedKey(try Corpus.spCredential().certificate)])
        #expect(throws: VerificationError.self) {
            try SignatureCheck.verify(signature, signing: root, in: tree, keys: [TrustedKey(try Corpus.certificate("attacker"))])
        }
    }

    @Test func spMetadataIsSignedAndNamesTheACS() throws {
        let xml = try adapter().serviceProviderMetadata()
        let tree = try XMLTree.parse(Array(xml.utf8))
        let root = try #require(tree.root)
        try SignatureCheck.verify(try #require(try SignatureCheck.signature(of: root)), signing: root, in: tree, keys: [TrustedKey(try Corpus.spCredential().certificate)])
        #expect(xml.contains("entityID=\"\(Corpus.settings["sp_entity_id"]!)\""))
        #expect(xml.contains("AssertionConsumerService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" Location=\"\(Corpus.settings["acs_url"]!)\""))
        #expect(xml.contains("<md:KeyDescriptor use=\"encryption\">"))
        #expect(xml.contains("WantAssertionsSigned=\"true\""))
    }

    @Test func theAdapterBindsRelayStateAndRemembersAssertionIDs() async throws {
        let cache = MemoryReplayCache()
        let a = try adapter(cache: cache)
        let value = try String(contentsOf: Corpus.directory.appendingPathComponent("valid-assertion-signed-rsa.b64"), encoding: .utf8)
        let callback = UpstreamCallback(parameters: ["SAMLResponse": value, "RelayState": "relay-123"])
        let identity = try await a.complete(callback, state: state, now: Corpus.now)
        #expect(identity.providerKind == .saml)
        #expect(identity.upstreamIssuer == "https://idp.example.test/saml")
        #expect(identity.upstreamSubject == "alice@corp.example.test")
        #expect(identity.attributes["NameID"] == ["alice@corp.example.test"])
        #expect(identity.attributes["groups"] == ["engineering", "admins"])
        #expect(identity.amr == ["pwd"])
        #expect(identity.sessionIndex == "_s9f8e7d6c5b4a39281706f5e4d3c2b1a0")
        let replay = await #expect(throws: UpstreamError.self) { try await a.complete(callback, state: state, now: Corpus.now) }
        #expect(replay?.failures.first?.check == "replay")
        // Another transaction's RelayState is refused before anything is verified or remembered.
        let other = UpstreamCallback(parameters: ["SAMLResponse": value, "RelayState": "relay-999"])
        let mismatch = await #expect(throws: UpstreamError.self) { try await a.complete(other, state: state, now: Corpus.now) }
        #expect(mismatch?.failures.first?.check == "relay_state")
        // An IdP-initiated response is refused while the provider does not allow it.
        let unsolicited = UpstreamCallback(parameters: ["SAMLResponse": try Data(Corpus.response("valid-idp-initiated")).base64EncodedString()])
        await #expect(throws: UpstreamError.self) { try await a.completeUnsolicited(unsolicited, now: Corpus.now) }
        _ = try await adapter(idpInitiated: true).completeUnsolicited(unsolicited, now: Corpus.now)
    }

    @Test func authnContextClassesMapToMethodReferences() {
        #expect(SAMLAdapter.amr(for: "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport") == ["pwd"])
        #expect(SAMLAdapter.amr(for: "urn:oasis:names:tc:SAML:2.0:ac:classes:X509") == ["hwk"])
        #expect(SAMLAdapter.amr(for: "http://schemas.microsoft.com/claims/multipleauthn") == ["mfa"], "Entra ID says MFA this way")
        #expect(SAMLAdapter.amr(for: "https://idp.example/ac/MultiFactor") == ["mfa"])
        #expect(SAMLAdapter.amr(for: nil) == [])
    }

    @Test func anIdPStatusOtherThanSuccessIsAnUpstreamRefusal() async throws {
        let a = try adapter()
        let failed = UpstreamCallback(parameters: ["SAMLResponse": try Data(Corpus.response("status-failure")).base64EncodedString(), "RelayState": "relay-123"])
        let error = await #expect(throws: UpstreamError.self) { try await a.complete(failed, state: state, now: Corpus.now) }
        #expect(error?.kind == .upstreamRefused)
    }

    @Test func logoutMessagesMustBeSignedByTheIdPAddressedHereAndFresh() async throws {
        var settings = try adapter().settings
        settings.sloURL = "https://gatehouse.example.test/acme/saml2/slo/Corp"
        let sp = try Corpus.spCredential()
        let a = try SAMLAdapter(poolID: try PoolID("acme"), providerName: "Corp", settings: settings, spPrivateKeyPEM: sp.privateKeyPEM, replayCache: MemoryReplayCache(), clock: ManualClock(Corpus.now))
        // Sign as the IdP would: an adapter whose own key is the IdP's signs the query.
        var idpSide = settings
        idpSide.spCertificatePEM = try String(contentsOf: Corpus.directory.appendingPathComponent("idp-rsa.crt"), encoding: .utf8)
        let idpKey = try String(contentsOf: Corpus.directory.appendingPathComponent("idp-rsa.key"), encoding: .utf8)
        let signer = try SAMLAdapter(poolID: try PoolID("acme"), providerName: "Corp", settings: idpSide, spPrivateKeyPEM: idpKey, replayCache: MemoryReplayCache(), clock: ManualClock(Corpus.now))
        func request(issuer: String = "https://idp.example.test/saml", destination: String = settings.sloURL!, instant: String = "2026-11-22T10:00:00Z") -> String {
            "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_l1\" Version=\"2.0\" "
                + "IssueInstant=\"\(instant)\" Destination=\"\(destination)\"><saml:Issuer>\(issuer)</saml:Issuer>"
                + "<saml:NameID>alice@corp.example.test</saml:NameID><samlp:SessionIndex>_s1</samlp:SessionIndex></samlp:LogoutRequest>"
        }
        func query(_ xml: String, by adapter: SAMLAdapter) throws -> String {
            try #require(try adapter.signedRedirect(to: "https://x.example/slo", parameter: "SAMLRequest", xml: xml, relayState: "rs").query)
        }
        let goodQuery = try query(request(), by: signer)
        let good = try await a.verifyLogoutMessage(.redirect(rawQuery: goodQuery), now: Corpus.now)
        #expect(good == .request(id: "_l1", nameID: "alice@corp.example.test", sessionIndexes: ["_s1"], relayState: "rs"))
        // The same LogoutRequest again (from a log, a Referer) is a replay.
        let replayed = await #expect(throws: VerificationError.self) { try await a.verifyLogoutMessage(.redirect(rawQuery: goodQuery), now: Corpus.now) }
        #expect(replayed?.failures.first?.check == "replay")
        func failedCheck(_ message: SAMLIncomingMessage) -> String? {
            do { _ = try a.verifyLogoutMessageContent(message, now: Corpus.now); return nil } catch let e as VerificationError { return e.failures.first?.check } catch { return "other" }
        }
        // Signed by the SP's own key, not the IdP's.
        #expect(failedCheck(.redirect(rawQuery: try query(request(), by: a))) == "signature")
        // The signature covers the octets: a changed RelayState breaks it.
        #expect(failedCheck(.redirect(rawQuery: try query(request(), by: signer).replacingOccurrences(of: "RelayState=rs", with: "RelayState=rx"))) == "signature")
        // No signature, or SHA-1.
        let unsigned = try query(request(), by: signer).components(separatedBy: "&SigAlg=")[0]
        #expect(failedCheck(.redirect(rawQuery: unsigned)) == "signature_missing")
        let sha1 = try query(request(), by: signer).replacingOccurrences(of: "rsa-sha256", with: "rsa-sha1")
        #expect(failedCheck(.redirect(rawQuery: sha1)) == "signature_structure")
        // Signed properly, but from another issuer, to another endpoint, or stale.
        #expect(failedCheck(.redirect(rawQuery: try query(request(issuer: "https://evil.example"), by: signer))) == "issuer")
        #expect(failedCheck(.redirect(rawQuery: try query(request(destination: "https://other.example/slo"), by: signer))) == "destination")
        #expect(failedCheck(.redirect(rawQuery: try query(request(instant: "2026-11-22T09:00:00Z"), by: signer))) == "time")
        // A NameID qualified for another SP is not this SP's user.
        let otherSP = request().replacingOccurrences(of: "<saml:NameID>", with: "<saml:NameID SPNameQualifier=\"https://other-sp.example\">")
        #expect(failedCheck(.redirect(rawQuery: try query(otherSP, by: signer))) == "subject")
        // Over POST, the document itself must carry the signature, by the IdP's key.
        #expect(failedCheck(.post(form: ["SAMLRequest": Data(request().utf8).base64EncodedString()])) == "signature_missing")
        let idpCredential = try SAMLSigningCredential(privateKeyPEM: idpKey, certificatePEM: idpSide.spCertificatePEM)
        func enveloped(by credential: SAMLSigningCredential) throws -> String {
            let template = request().replacingOccurrences(of: "</saml:Issuer>", with: "</saml:Issuer>" + credential.signatureTemplate(for: "_l1"))
            return Data(try credential.signEnveloped(template, id: "_l1").utf8).base64EncodedString()
        }
        let posted = try a.verifyLogoutMessageContent(.post(form: ["SAMLRequest": try enveloped(by: idpCredential), "RelayState": "rs"]), now: Corpus.now)
        #expect(posted == .request(id: "_l1", nameID: "alice@corp.example.test", sessionIndexes: ["_s1"], relayState: "rs"))
        #expect(failedCheck(.post(form: ["SAMLRequest": try enveloped(by: sp)])) == "signature")
    }

    @Test func anIdPWithOnlyAPostLogoutEndpointGetsASignedForm() throws {
        var settings = try adapter().settings
        settings.metadataXML = settings.metadataXML.replacingOccurrences(
            of: "<md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\"",
            with: "<md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\"")
        let sp = try Corpus.spCredential()
        let a = try SAMLAdapter(poolID: try PoolID("acme"), providerName: "Corp", settings: settings, spPrivateKeyPEM: sp.privateKeyPEM, replayCache: MemoryReplayCache(), clock: ManualClock(Corpus.now))
        guard case .formPost(let action, let fields)? = try a.logoutRequest(nameID: "alice", sessionIndex: "_s1", relayState: "rs", now: Corpus.now)?.request else {
            Issue.record("expected a form post")
            return
        }
        #expect(action.absoluteString == "https://idp.example.test/saml/slo")
        #expect(fields.map(\.name) == ["SAMLRequest", "RelayState"])
        let tree = try XMLTree.parse(Array(try #require(Data(base64Encoded: fields[0].value))))
        let root = try #require(tree.root)
        #expect(root.is(NS.protocol_, "LogoutRequest"))
        try SignatureCheck.verify(try #require(try SignatureCheck.signature(of: root)), signing: root, in: tree, keys: [TrustedKey(sp.certificate)])
        guard case .formPost = try a.logoutResponse(inResponseTo: "_l1", relayState: nil, now: Corpus.now) else {
            Issue.record("the response goes by POST too")
            return
        }
    }

    @Test func rawDeflateRoundTripsAndRefusesBombs() throws {
        let text = Array(String(repeating: "<a>gatehouse</a>", count: 1000).utf8)
        let packed = try #require(RawDeflate.compress(text))
        #expect(packed.count < text.count / 10)
        #expect(RawDeflate.decompress(packed, limit: text.count) == text)
        #expect(RawDeflate.decompress(packed, limit: text.count - 1) == nil)
        #expect(RawDeflate.decompress([0xFF, 0x00, 0x13], limit: 100) == nil)
    }

    @Test func generatedSPCredentialsMatchAndCertificatesAreChecked() throws {
        let (key, certificate) = try SAMLSigningCredential.generate(commonName: "sp.example.test", days: 30, now: Corpus.now)
        let credential = try SAMLSigningCredential(privateKeyPEM: key, certificatePEM: certificate)
        #expect(credential.certificate.subject.contains("sp.example.test"))
        #expect(abs(credential.certificate.notAfter.timeIntervalSince(Corpus.now) - 30 * 86_400) < 600)
        let other = try SAMLSigningCredential.generate(commonName: "other")
        #expect(throws: ConfigurationError.self) { try SAMLSigningCredential(privateKeyPEM: key, certificatePEM: other.certificatePEM) }
        #expect(throws: ConfigurationError.self) { try SAMLCertificate(base64OrPEM: "bm90IGEgY2VydGlmaWNhdGU=") }
    }
}
