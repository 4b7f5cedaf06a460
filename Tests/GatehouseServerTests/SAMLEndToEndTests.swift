import Foundation
import Testing
import GatehouseCore
import GatehouseJOSE
import GatehouseOIDC
import GatehouseDirectory
import GatehouseServer
import GatehouseTestSupport

/// Logs a user in through Gatehouse's SAML adapter against a real IdP: Debian's SimpleSAMLphp on
/// loopback, which checks Gatehouse's AuthnRequest signature and signs its Response and Assertion.
@Suite(.enabled(if: SimpleSAMLphpIdP.isInstalled || SimpleSAMLphpIdP.isRequired, "SimpleSAMLphp is installed by scripts/test.sh"))
struct SAMLEndToEnd {
    static let backends = TestDatabases.available
    let redirectURI = "http://127.0.0.1:9/app/callback"
    let logoutURI = "http://127.0.0.1:9/app/bye"

    struct Setup {
        let gatehouse: RunningGatehouse
        let idp: SimpleSAMLphpIdP
        let directory: SQLDirectory
        let clientID: String
        let clientSecret: String
        let provider: IdentityProvider
        var issuer: String { "\(gatehouse.baseURL)/acme" }
    }

    func withSetup(_ backend: TestDatabases.Backend, signatures: String = "both", idpInitiated: Bool = false, metadataFromURL: Bool = false, encrypted: Bool = false, _ body: (Setup, TestBrowser) async throws -> Void) async throws {
        let directory = try await TestDatabases.make(backend)
        let idp = try SimpleSAMLphpIdP()
        var running: RunningGatehouse?
        let browser = TestBrowser()
        do {
            try await idp.start()
            let gatehouse = try await RunningGatehouse.start(directory: directory)
            running = gatehouse
            try await gatehouse.admin.createPool(name: "acme", displayName: "Acme Corp")
            let (client, secret) = try await gatehouse.admin.createClient(pool: "acme", name: "web", redirectURIs: [redirectURI], logoutURIs: [logoutURI], confidential: true)
            let metadata = try await browser.send(idp.metadataURL, withCookies: false)
            try #require(metadata.status == 200, "SimpleSAMLphp metadata: \(metadata.status)\n\(idp.logs())")
            var options = Admin.SAMLOptions()
            options.signatures = signatures
            options.nameIDFormat = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
            options.allowIdPInitiated = idpInitiated
            if metadataFromURL { options.metadataURL = idp.metadataURL }
            let provider = try await gatehouse.admin.createSAMLProvider(
                pool: "acme", name: "Corp", metadataXML: metadata.body, options: options,
                mapping: AttributeMapping([
                    "email": "urn:oid:0.9.2342.19200300.100.1.3", "given_name": "urn:oid:2.5.4.42",
                    "family_name": "urn:oid:2.5.4.4",
                ]))
            let saml = try #require(provider.saml)
            try idp.trust(spEntityID: saml.spEntityID, acsURL: saml.acsURL, spCertificatePEM: saml.spCertificatePEM, sloURL: saml.sloURL, encryptAssertions: encrypted)
            try await body(Setup(gatehouse: gatehouse, idp: idp, directory: directory, clientID: client.clientID, clientSecret: secret ?? "", provider: provider), browser)
        } catch {
            let logs = idp.logs()
            await browser.shutdown()
            await running?.stop()
            idp.stop()
            await TestDatabases.discard(directory)
            Issue.record("SimpleSAMLphp logs:\n\(logs.suffix(4000))")
            throw error
        }
        await browser.shutdown()
        await running?.stop()
        idp.stop()
        await TestDatabases.discard(directory)
    }

    /// Walks app -> Gatehouse -> SimpleSAMLphp (login form) -> the POST back to the ACS, and
    /// returns the form SimpleSAMLphp's page would post to the ACS.
    func signIn(_ s: Setup, _ browser: TestBrowser, state: String = "app-state") async throws -> HTMLForm {
        let authorize = "\(s.issuer)/oauth2/authorize?" + FormEncoding.encode([
            ("response_type", "code"), ("client_id", s.clientID), ("redirect_uri", redirectURI), ("scope", "openid email profile"),
            ("state", state), ("nonce", "n-1"), ("identity_provider", "Corp"),
        ])
        let start = try await browser.send(authorize)
        try #require(start.status == 302, "authorize: \(start.status) \(start.body)")
        let url = try #require(start.location)
        #expect(url.hasPrefix(s.idp.baseURL + "/saml2/idp/SSOService.php?SAMLRequest="))
        #expect(URLComponents(string: url)?.queryItems?.contains { $0.name == "Signature" } == true)
        return try await followIdP(from: url, browser)
    }

    /// Follows SimpleSAMLphp's redirects, fills its login form, and returns the page's ACS form.
    func followIdP(from start: String, _ browser: TestBrowser) async throws -> HTMLForm {
        var url = start
        for _ in 0..<10 {
            let page = try await browser.send(url)
            if [301, 302, 303].contains(page.status), let next = page.location {
                url = URL(string: next, relativeTo: URL(string: url))!.absoluteString
                continue
            }
            try #require(page.status == 200, "SimpleSAMLphp answered \(page.status): \(page.body.prefix(2000))")
            var form = try #require(HTMLForm.first(in: page.body, pageURL: url), "no form in \(page.body.prefix(2000))")
            if form["SAMLResponse"] != nil { return form }
            form.fields.removeAll { $0.0 == "username" || $0.0 == "password" }
            form.fields += [("username", SimpleSAMLphpIdP.username), ("password", SimpleSAMLphpIdP.password)]
            let posted = try await browser.send(form.action, method: .POST, headers: [("Content-Type", "application/x-www-form-urlencoded")], body: FormEncoding.encode(form.fields))
            if posted.status == 200, let next = HTMLForm.first(in: posted.body, pageURL: form.action), next["SAMLResponse"] != nil { return next }
            try #require([301, 302, 303].contains(posted.status), "login form answered \(posted.status): \(posted.body.prefix(2000))")
            url = URL(string: posted.location!, relativeTo: URL(string: form.action))!.absoluteString
        }
        throw HarnessError("SimpleSAMLphp never posted back")
    }

    /// Posts the ACS form as a browser does: first cross-site (no Gatehouse cookie), then the
    /// re-post from Gatehouse's own page, which carries it.
    func postToACS(_ form: HTMLForm, _ browser: TestBrowser) async throws -> TestBrowser.Reply {
        let crossSite = try await browser.postForm(form.action, form.fields)
        try #require(crossSite.status == 200, "ACS without cookie: \(crossSite.status) \(crossSite.body.prefix(500))")
        let again = try #require(HTMLForm.first(in: crossSite.body, pageURL: form.action))
        #expect(again.action == form.action)
        #expect(again["SAMLResponse"] == form["SAMLResponse"])
        #expect(crossSite.headers.first(name: "Content-Security-Policy")?.contains("script-src 'sha256-") == true)
        return try await browser.send(again.action, method: .POST, headers: [("Content-Type", "application/x-www-form-urlencoded")], body: FormEncoding.encode(again.fields))
    }

    @Test(arguments: backends) func aUserSignsInThroughSimpleSAMLphpAndGetsTokens(_ backend: TestDatabases.Backend) async throws {
        try await withSetup(backend) { s, browser in
            let acsForm = try await signIn(s, browser)
            #expect(acsForm.action == s.provider.saml?.acsURL)
            let back = try await postToACS(acsForm, browser)
            try #require(back.status == 302, "ACS: \(back.status) \(back.body.prefix(1000))")
            let q = back.locationQuery
            #expect(back.location?.hasPrefix(redirectURI + "?") == true)
            #expect(q["state"] == "app-state")
            #expect(q["iss"] == s.issuer)
            let code = try #require(q["code"])
            let tokens = try await browser.postForm("\(s.issuer)/oauth2/token", [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI)], basic: (s.clientID, s.clientSecret))
            #expect(tokens.status == 200)
            let keys = StaticKeySource(try JSONDecoder().decode(JWKSet.self, from: Data(try await browser.send("\(s.issuer)/.well-known/jwks.json").body.utf8)))
            let policy = IDTokenPolicy(issuer: s.issuer, clientID: s.clientID, allowedAlgorithms: ["ES256"], clockSkew: 5, nonce: "n-1")
            let verified = try await IDTokenVerifier.verify(try #require(tokens.json["id_token"]?.stringValue), keys: keys, policy: policy, now: Date())
            #expect(verified.claims["email"]?.stringValue == "alice@corp.example.test")
            #expect(verified.claims["given_name"]?.stringValue == "Alice")
            #expect(verified.claims["family_name"]?.stringValue == "Liddell")
            // SimpleSAMLphp's username/password source says Password; the class maps to acr, and to amr.
            #expect(verified.claims["acr"]?.stringValue == "urn:oasis:names:tc:SAML:2.0:ac:classes:Password")
            #expect(verified.claims["amr"] == .array([.string("pwd")]))
            guard case .array(let identities) = verified.claims["identities"], case .object(let first) = identities.first else {
                Issue.record("identities claim missing")
                return
            }
            #expect(first["providerName"]?.stringValue == "Corp")
            #expect(first["providerType"]?.stringValue == "SAML")
            // The persistent NameID SimpleSAMLphp derives from uid is the upstream subject.
            let users = try await s.directory.listUsers(pool: try PoolID("acme"), after: nil, limit: 10)
            #expect(users.count == 1)

            // The same SAMLResponse again: the transaction is spent (and the assertion remembered).
            let replay = try await browser.send(acsForm.action, method: .POST, headers: [("Content-Type", "application/x-www-form-urlencoded")], body: FormEncoding.encode(acsForm.fields))
            #expect(replay.status == 400)
            #expect(try await s.directory.countUsers(pool: try PoolID("acme")) == 1)
        }
    }

    @Test func aResponseFromAnotherBrowserIsRefusedEvenAfterTheResend() async throws {
        try await withSetup(.sqlite) { s, browser in
            let acsForm = try await signIn(s, browser)
            // A second browser (an attacker holding the victim's response, or a login-CSRF victim)
            // has no cookie or another one: the resend carries the wrong binding.
            try await withBrowsers(1) { browsers in
                let other = browsers[0]
                let crossSite = try await other.postForm(acsForm.action, acsForm.fields)
                let again = try #require(HTMLForm.first(in: crossSite.body, pageURL: acsForm.action))
                let refused = try await other.send(again.action, method: .POST, headers: [("Content-Type", "application/x-www-form-urlencoded")], body: FormEncoding.encode(again.fields))
                #expect(refused.status == 400)
                _ = try await other.send(s.gatehouse.baseURL + "/acme/oauth2/authorize?client_id=\(s.clientID)&redirect_uri=\(FormEncoding.escape(redirectURI))&response_type=code&scope=openid&identity_provider=Corp")
                let withOtherCookie = try await other.send(again.action, method: .POST, headers: [("Content-Type", "application/x-www-form-urlencoded")], body: FormEncoding.encode(again.fields))
                #expect(withOtherCookie.status == 400)
                #expect(try await s.directory.countUsers(pool: try PoolID("acme")) == 0)
                // The rightful browser still completes: the other browser could not cancel its login.
                let back = try await postToACS(acsForm, browser)
                #expect(back.status == 302)
                #expect(back.locationQuery["code"] != nil)
            }
        }
    }

    @Test func spMetadataIsServedSignedWithTheProvidersCertificate() async throws {
        try await withSetup(.sqlite) { s, browser in
            let reply = try await browser.send("\(s.issuer)/saml2/metadata/Corp")
            #expect(reply.status == 200)
            #expect(reply.headers.first(name: "Content-Type") == "application/samlmetadata+xml")
            #expect(reply.body.contains("entityID=\"\(s.provider.saml!.spEntityID)\""))
            #expect(reply.body.contains("Location=\"\(s.provider.saml!.acsURL)\""))
            #expect(reply.body.contains("AuthnRequestsSigned=\"true\""))
            #expect(reply.body.contains("<md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"\(s.provider.saml!.sloURL!)\"/>"))
            #expect(reply.body.contains("<ds:SignatureValue>"))
            let unknown = try await browser.send("\(s.issuer)/saml2/metadata/Nope")
            #expect(unknown.status == 404)
        }
    }

    @Test func idpInitiatedLoginIsOffByDefaultAndWhenOnItsAssertionCannotBeReplayed() async throws {
        for enabled in [false, true] {
            try await withSetup(.sqlite, idpInitiated: enabled) { s, browser in
                let relay = FormEncoding.encode([("client_id", s.clientID), ("redirect_uri", redirectURI), ("scope", "openid email")])
                let start = s.idp.baseURL + "/saml2/idp/SSOService.php?" + FormEncoding.encode([("spentityid", s.provider.saml!.spEntityID), ("RelayState", relay)])
                let form = try await followIdP(from: start, browser)
                #expect(form["RelayState"] == relay)
                let reply = try await browser.postForm(form.action, form.fields)
                if !enabled {
                    #expect(reply.status == 400)
                    #expect(try await s.directory.countUsers(pool: try PoolID("acme")) == 0)
                    return
                }
                try #require(reply.status == 302, "IdP-initiated: \(reply.status) \(reply.body.prefix(500))")
                #expect(reply.location?.hasPrefix(redirectURI + "?") == true)
                #expect(reply.locationQuery["code"] != nil)
                #expect(reply.locationQuery["state"] == nil)
                // The same response again: no transaction protects it, the replay cache does.
                let replay = try await browser.postForm(form.action, form.fields)
                #expect(replay.status == 400 && replay.returnLink != nil)
                #expect(replay.locationQuery["error"] == "access_denied")
                #expect(replay.locationQuery["code"] == nil)
                let metrics = try await browser.send(s.gatehouse.baseURL + "/metrics")
                #expect(metrics.body.contains("gatehouse_verification_failures_total{reason=\"replay\"} 1"))
            }
        }
    }

    @Test func metadataFromAURLIsRefreshedAndTheLastGoodCopyKeptWhenTheIdPIsGone() async throws {
        try await withSetup(.sqlite, metadataFromURL: true) { s, browser in
            let refresher = SAMLMetadataRefresher(gatehouse: s.gatehouse.gatehouse)
            let acme = try PoolID("acme")
            #expect(await refresher.refreshOnce(force: true)["acme/Corp"] == .unchanged)
            #expect(await refresher.refreshOnce()["acme/Corp"] == .notDue, "fetched again only when its cacheDuration says")
            // The IdP rolls over to a new key: the refreshed metadata carries it, and logins keep working.
            let next = try s.idp.rotateKey()
            #expect(await refresher.refreshOnce(force: true)["acme/Corp"] == .updated)
            let stored = try #require(try await s.directory.provider(pool: acme, name: "Corp")?.saml?.metadataXML)
            #expect(stored.contains(next))
            let back = try await postToACS(try await signIn(s, browser), browser)
            #expect(back.status == 302)
            #expect(back.locationQuery["code"] != nil, "signed with the new key, verified with the refreshed metadata")
            // The IdP goes away: the refresh fails, is counted, and the last good copy stays.
            s.idp.stop()
            guard case .failed = await refresher.refreshOnce(force: true)["acme/Corp"] else {
                Issue.record("a refresh from a stopped IdP must fail")
                return
            }
            #expect(try await s.directory.provider(pool: acme, name: "Corp")?.saml?.metadataXML == stored)
            let metrics = try await browser.send(s.gatehouse.baseURL + "/metrics")
            #expect(metrics.body.contains("gatehouse_saml_metadata_refresh_failures_total{provider=\"Corp\"} 1"))
            #expect(metrics.body.contains("gatehouse_saml_certificate_expiry_seconds{pool=\"acme\",provider=\"Corp\"}"))
        }
    }

    /// Signs in through SimpleSAMLphp and redeems the code: the ID token and the refresh token.
    func tokens(_ s: Setup, _ browser: TestBrowser) async throws -> (idToken: String, refreshToken: String) {
        let back = try await postToACS(try await signIn(s, browser), browser)
        let code = try #require(back.locationQuery["code"])
        let tokens = try await browser.postForm("\(s.issuer)/oauth2/token", [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI)], basic: (s.clientID, s.clientSecret))
        return (try #require(tokens.json["id_token"]?.stringValue), try #require(tokens.json["refresh_token"]?.stringValue))
    }

    func refreshWorks(_ s: Setup, _ browser: TestBrowser, _ token: String) async throws -> Bool {
        let reply = try await browser.postForm("\(s.issuer)/oauth2/token", [("grant_type", "refresh_token"), ("refresh_token", token)], basic: (s.clientID, s.clientSecret))
        return reply.status == 200
    }

    /// Follows redirects until one leaves for `stop` (not fetched); returns the locations visited.
    func follow(_ start: String, _ browser: TestBrowser, until stop: String) async throws -> [String] {
        var url = start
        var visited: [String] = []
        for _ in 0..<12 {
            visited.append(url)
            if url.hasPrefix(stop) { return visited }
            let page = try await browser.send(url)
            guard [301, 302, 303].contains(page.status), let next = page.location else {
                throw HarnessError("\(url) answered \(page.status): \(page.body.prefix(1500))")
            }
            url = URL(string: next, relativeTo: URL(string: url))!.absoluteString
        }
        throw HarnessError("never reached \(stop): \(visited)")
    }

    @Test func spInitiatedLogoutEndsTheSessionAtTheIdPAndRevokesTheTokens() async throws {
        try await withSetup(.sqlite) { s, browser in
            let (idToken, refreshToken) = try await tokens(s, browser)
            let logout = "\(s.issuer)/logout?" + FormEncoding.encode([("client_id", s.clientID), ("logout_uri", logoutURI), ("id_token_hint", idToken), ("state", "bye")])
            let first = try await browser.send(logout)
            try #require(first.status == 302)
            let toIdP = try #require(first.location)
            #expect(toIdP.hasPrefix(s.idp.baseURL + "/saml2/idp/SingleLogoutService.php?SAMLRequest="))
            #expect(!(try await refreshWorks(s, browser, refreshToken)), "Gatehouse's side ends at once")
            // SimpleSAMLphp checks the LogoutRequest's signature, ends its session, and answers.
            let visited = try await follow(toIdP, browser, until: logoutURI)
            #expect(visited.contains { $0.hasPrefix(s.provider.saml!.sloURL! + "?SAMLResponse=") })
            #expect(visited.last == logoutURI + "?state=bye")
            // The IdP session is gone: a new login asks for the password again.
            let again = try await browser.send("\(s.issuer)/oauth2/authorize?" + FormEncoding.encode([
                ("response_type", "code"), ("client_id", s.clientID), ("redirect_uri", redirectURI), ("scope", "openid"), ("identity_provider", "Corp")]))
            let atIdP = try await follow(try #require(again.location), browser, until: s.idp.baseURL + "/module.php/core/loginuserpass.php")
            #expect(atIdP.last?.contains("loginuserpass.php") == true)
        }
    }

    @Test func idpInitiatedLogoutRevokesThatLoginsTokensAndAnswersSigned() async throws {
        try await withSetup(.sqlite) { s, browser in
            // Two logins (the second one is not asked for a password).
            let (_, first) = try await tokens(s, browser)
            let (_, second) = try await tokens(s, browser)
            let done = "http://127.0.0.1:9/idp-logout-done"
            let start = s.idp.baseURL + "/saml2/idp/initSLO.php?" + FormEncoding.encode([("RelayState", done)])
            let visited = try await follow(start, browser, until: done)
            let atGatehouse = try #require(visited.first { $0.hasPrefix(s.provider.saml!.sloURL! + "?SAMLRequest=") }, "\(visited)")
            #expect(atGatehouse.contains("&Signature="))
            #expect(visited.contains { $0.hasPrefix(s.idp.baseURL + "/saml2/idp/SingleLogoutService.php?SAMLResponse=") }, "Gatehouse answers the IdP")
            #expect(!(try await refreshWorks(s, browser, second)), "the named session's refresh tokens are revoked")
            // SimpleSAMLphp gives each assertion its own SessionIndex and names the latest: the
            // earlier login, under another SessionIndex, is not the session the IdP ended.
            #expect(try await refreshWorks(s, browser, first))
            // A forged LogoutRequest (unsigned) is refused and revokes nothing.
            let forged = try await browser.send(s.provider.saml!.sloURL! + "?SAMLRequest=" + FormEncoding.escape(Data("x".utf8).base64EncodedString()))
            #expect(forged.status == 400)
        }
    }

    @Test func anAssertionSimpleSAMLphpEncryptsForTheSPKeyIsDecryptedAndVerified() async throws {
        try await withSetup(.sqlite, signatures: "assertion", encrypted: true) { s, browser in
            let acsForm = try await signIn(s, browser)
            let value = try #require(acsForm["SAMLResponse"])
            let xml = String(decoding: try #require(Data(base64Encoded: value)), as: UTF8.self)
            #expect(xml.contains("EncryptedAssertion"))
            #expect(!xml.contains("alice@corp.example.test"), "nothing of the assertion is in clear")
            let back = try await postToACS(acsForm, browser)
            try #require(back.status == 302, "ACS: \(back.status) \(back.body.prefix(500))")
            #expect(back.locationQuery["code"] != nil)
        }
    }
}
