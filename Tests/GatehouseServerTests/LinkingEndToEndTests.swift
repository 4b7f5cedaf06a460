import Foundation
import Testing
import GatehouseCore
import GatehouseJOSE
import GatehouseOIDC
import GatehouseServer
import GatehouseTestSupport

/// Link policies over real HTTP with two upstream providers on loopback: `TestOP` (the corporate
/// IdP the user first signed in with) and `Social`.
@Suite struct LinkingEndToEnd {
    static let backends = TestDatabases.available

    struct TwoProviders {
        let f: Federation
        let social: TestOpenIDProvider
        var admin: Admin { f.gatehouse.admin }
        var pool: PoolID { try! PoolID(f.pool) }
    }

    func withTwoProviders(_ backend: TestDatabases.Backend, _ body: (TwoProviders, TestBrowser) async throws -> Void) async throws {
        let f = try await Federation.start(backend)
        let social = try TestOpenIDProvider(clientID: "gatehouse-social")
        do {
            try await social.start()
            try await f.gatehouse.admin.createOIDCProvider(pool: f.pool, name: "Social", settings: OIDCProviderSettings(issuer: social.issuer, clientID: social.clientID), clientSecret: social.clientSecret)
            try await withBrowsers(1) { try await body(TwoProviders(f: f, social: social), $0[0]) }
        } catch {
            await social.stop()
            await f.stop()
            throw error
        }
        await social.stop()
        await f.stop()
    }

    /// Authorize with `provider`, walk through the upstream, and return Gatehouse's answer.
    func signIn(_ s: TwoProviders, _ browser: TestBrowser, provider: String) async throws -> TestBrowser.Reply {
        let start = try await browser.send(s.f.authorizeURL(extra: [("identity_provider", provider)]))
        return try await followUpstream(start, browser)
    }

    func followUpstream(_ start: TestBrowser.Reply, _ browser: TestBrowser) async throws -> TestBrowser.Reply {
        guard start.status == 302, let upstreamURL = start.location else { throw HarnessError("no redirect upstream: \(start.status) \(start.body)") }
        let atUpstream = try await browser.send(upstreamURL, withCookies: false)
        guard atUpstream.status == 302, let callback = atUpstream.location else { throw HarnessError("upstream did not redirect back") }
        return try await browser.send(callback)
    }

    /// The `sub` of the ID token a completed sign-in yields.
    func subject(_ s: TwoProviders, _ browser: TestBrowser, _ back: TestBrowser.Reply) async throws -> String {
        let code = try #require(back.locationQuery["code"], "\(back.status) \(back.location ?? back.body)")
        let tokens = try await s.f.redeem(browser, code: code)
        let idToken = try #require(tokens.json["id_token"]?.stringValue)
        return try #require(try UnverifiedJWS(compact: idToken).claims["sub"]?.stringValue)
    }

    @Test(arguments: backends) func anUntrustedProviderAssertingAVictimsEmailGetsItsOwnUser(_ backend: TestDatabases.Backend) async throws {
        try await withTwoProviders(backend) { s, browser in
            // The victim signs in through the corporate IdP, which is trusted to assert its users' email.
            try await s.admin.setLinkSettings(pool: s.f.pool, provider: "TestOP", LinkSettings(policy: .createUser, trustEmail: true))
            let victim = try await subject(s, browser, try await signIn(s, browser, provider: "TestOP"))
            // Social links by verified email, but is not trusted to assert email: the attacker's
            // verified claim of the victim's address must not reach the victim's account.
            try await s.admin.setLinkSettings(pool: s.f.pool, provider: "Social", LinkSettings(policy: .verifiedEmail, trustEmail: false))
            s.social.update {
                $0.subject = "attacker"
                $0.claims["email"] = .string("ADA@example.com")
                $0.claims["email_verified"] = .bool(true)
            }
            let attacker = try await subject(s, browser, try await signIn(s, browser, provider: "Social"))
            #expect(attacker != victim)
            #expect(try await s.f.directory.linkedIdentities(pool: s.pool, userID: victim).map(\.providerName) == ["TestOP"])

            // Trusted and verified: a new Social identity joins the account whose address a trusted
            // provider verified; the attacker's account, which merely claims it, does not count.
            try await s.admin.setLinkSettings(pool: s.f.pool, provider: "Social", LinkSettings(policy: .verifiedEmail, trustEmail: true))
            s.social.update { $0.subject = "ada-social" }
            let linked = try await subject(s, browser, try await signIn(s, browser, provider: "Social"))
            #expect(linked == victim)
            // Trusted but unverified: no link.
            s.social.update {
                $0.subject = "unverified"
                $0.claims["email_verified"] = .bool(false)
            }
            #expect(try await subject(s, browser, try await signIn(s, browser, provider: "Social")) != victim)
            #expect(try await s.f.directory.linkedIdentities(pool: s.pool, userID: victim).map(\.providerName).sorted() == ["Social", "TestOP"])
            #expect(try await s.f.directory.linkedIdentities(pool: s.pool, userID: attacker).map(\.upstreamSubject) == ["attacker"])
            let decisions = try await s.f.directory.auditEntries(pool: s.pool, after: nil, action: "link.created", limit: 10)
            #expect(decisions.count == 1 && decisions[0].target == "user:\(victim)")
        }
    }

    @Test(arguments: backends) func provingTheExistingAccountLinksBothIdentities(_ backend: TestDatabases.Backend) async throws {
        try await withTwoProviders(backend) { s, browser in
            let ada = try await subject(s, browser, try await signIn(s, browser, provider: "TestOP"))
            try await s.admin.setLinkSettings(pool: s.f.pool, provider: "Social", LinkSettings(policy: .proveExisting))
            s.social.update {
                $0.subject = "ada-social"
                $0.claims["email"] = .string("ada@example.com")
                $0.claims["email_verified"] = .bool(true)
            }
            let page = try await signIn(s, browser, provider: "Social")
            #expect(page.status == 200)
            #expect(page.body.contains("Sign in with TestOP"))
            #expect(try await s.f.directory.userID(pool: s.pool, providerName: "Social", upstreamIssuer: s.social.issuer, upstreamSubject: "ada-social") == nil, "nothing is linked before the proof")
            let prove = try #require(page.body.range(of: #"href="([^"]*link/prove[^"]*)""#, options: .regularExpression).map { String(page.body[$0]) })
            let url = String(prove.dropFirst(6).dropLast()).replacingOccurrences(of: "&amp;", with: "&")

            // Another browser cannot use the proof link.
            let elsewhere = try await withBrowsers(1) { others in try await others[0].send(url).status }
            #expect(elsewhere == 400)
            let back = try await followUpstream(try await browser.send(url), browser)
            #expect(try await subject(s, browser, back) == ada)
            #expect(try await s.f.directory.userID(pool: s.pool, providerName: "Social", upstreamIssuer: s.social.issuer, upstreamSubject: "ada-social") == ada)
            // From now on Social signs Ada in directly.
            #expect(try await subject(s, browser, try await signIn(s, browser, provider: "Social")) == ada)
        }
    }

    @Test func aProofThatSignsInToAnotherAccountLinksNothing() async throws {
        try await withTwoProviders(.sqlite) { s, browser in
            _ = try await subject(s, browser, try await signIn(s, browser, provider: "TestOP"))
            try await s.admin.setLinkSettings(pool: s.f.pool, provider: "Social", LinkSettings(policy: .proveExisting))
            s.social.update {
                $0.subject = "mallory-social"
                $0.claims["email"] = .string("ada@example.com")
            }
            let page = try await signIn(s, browser, provider: "Social")
            let prove = try #require(page.body.range(of: #"href="([^"]*link/prove[^"]*)""#, options: .regularExpression).map { String(page.body[$0]) })
            let url = String(prove.dropFirst(6).dropLast()).replacingOccurrences(of: "&amp;", with: "&")
            // The proof signs in to a different TestOP account (Mallory's own, not Ada's).
            s.f.upstream.update {
                $0.subject = "mallory"
                $0.claims["email"] = .string("mallory@example.com")
            }
            _ = try await subject(s, browser, try await signIn(s, browser, provider: "TestOP"))
            let back = try await followUpstream(try await browser.send(url), browser)
            #expect(back.locationQuery["error"] == "access_denied")
            #expect(try await s.f.directory.userID(pool: s.pool, providerName: "Social", upstreamIssuer: s.social.issuer, upstreamSubject: "mallory-social") == nil)
        }
    }

    @Test func aRefusingProviderSignsInOnlyWhatAnAdminLinked() async throws {
        try await withTwoProviders(.sqlite) { s, browser in
            let ada = try await subject(s, browser, try await signIn(s, browser, provider: "TestOP"))
            try await s.admin.setLinkSettings(pool: s.f.pool, provider: "Social", LinkSettings(policy: .refuse))
            s.social.update { $0.subject = "ada-social" }
            let refused = try await signIn(s, browser, provider: "Social")
            #expect(refused.locationQuery["error"] == "access_denied")
            let users = try await s.f.directory.countUsers(pool: s.pool)
            // The admin links the identity (never signed in), then it works.
            let merge = try await s.admin.link(pool: s.f.pool, userID: ada, provider: "Social", subject: "ada-social")
            #expect(merge.fromUserID == nil)
            #expect(try await subject(s, browser, try await signIn(s, browser, provider: "Social")) == ada)
            #expect(try await s.f.directory.countUsers(pool: s.pool) == users)
            // The ID token lists both identities in Cognito's shape.
            let code = try #require(try await signIn(s, browser, provider: "Social").locationQuery["code"])
            let idToken = try #require(try await s.f.redeem(browser, code: code).json["id_token"]?.stringValue)
            let claims = try UnverifiedJWS(compact: idToken).claims
            guard case .array(let identities) = claims["identities"] else {
                Issue.record("no identities claim")
                return
            }
            #expect(identities.count == 2)
            try await s.admin.unlink(pool: s.f.pool, provider: "Social", subject: "ada-social")
            await #expect(throws: DirectoryError.self) { try await s.admin.unlink(pool: s.f.pool, provider: "TestOP", subject: "upstream-user-1") }
        }
    }

    /// The tokens of a completed sign-in.
    func tokens(_ s: TwoProviders, _ browser: TestBrowser, _ back: TestBrowser.Reply) async throws -> [String: JSONValue] {
        let code = try #require(back.locationQuery["code"], "\(back.status) \(back.location ?? back.body)")
        return try await s.f.redeem(browser, code: code).json
    }

    @Test(arguments: backends) func aSignedInUserLinksAnotherProviderAfterAFreshSignIn(_ backend: TestDatabases.Backend) async throws {
        try await withTwoProviders(backend) { s, browser in
            // Managing links needs the gatehouse.links scope, which the client must allow.
            var client = try #require(try await s.f.directory.client(pool: s.pool, clientID: s.f.clientID))
            client.allowedScopes.append("gatehouse.links")
            try await s.f.directory.updateClient(client)
            let plain = try #require(try await tokens(s, browser, try await signIn(s, browser, provider: "TestOP"))["access_token"]?.stringValue)
            func linksLogin(_ provider: String = "TestOP") async throws -> [String: JSONValue] {
                let start = try await browser.send(s.f.authorizeURL(scope: "openid email profile gatehouse.links", extra: [("identity_provider", provider)]))
                return try await tokens(s, browser, try await followUpstream(start, browser))
            }
            let adaTokens = try await linksLogin()
            let access = try #require(adaTokens["access_token"]?.stringValue)
            let adaID = try #require(adaTokens["id_token"]?.stringValue)
            let ada = try #require(try UnverifiedJWS(compact: adaID).claims["sub"]?.stringValue)
            // The app's PKCE pair for link requests: the link is made only when the code is redeemed with it.
            let verifier = Secrets.randomToken()
            let challenge = Secrets.pkceChallenge(verifier: verifier)
            func intent(_ token: String?, provider: String = "Social", challenge: String? = challenge) async throws -> TestBrowser.Reply {
                var headers = [("Content-Type", "application/x-www-form-urlencoded")]
                if let token { headers.append(("Authorization", "Bearer \(token)")) }
                var form = [("provider", provider)]
                if let challenge { form.append(("code_challenge", challenge)) }
                return try await browser.send("\(s.f.issuer)/oauth2/links/intent", method: .POST, headers: headers, body: FormEncoding.encode(form), withCookies: false)
            }
            func linkURL(_ ticket: String, challenge: String = challenge) -> String {
                s.f.authorizeURL(challenge: challenge, extra: [("identity_provider", "Social"), ("link_intent", ticket)])
            }
            #expect(try await intent(nil).status == 401)
            #expect(try await intent("not-a-token").status == 401)
            #expect(try await intent(access, provider: "Nobody").status == 400)
            #expect(try await intent(access, challenge: nil).status == 400, "a link intent needs the app's PKCE challenge")
            #expect(try await intent(plain).status == 403, "a token without the gatehouse.links scope")
            // A token from an old upstream sign-in must sign in again first.
            s.f.upstream.update { $0.misbehaviour = .staleAuthTime }
            let staleAccess = try #require(try await linksLogin()["access_token"]?.stringValue)
            s.f.upstream.update { $0.misbehaviour = .none }
            let stepUp = try await intent(staleAccess)
            #expect(stepUp.status == 401 && stepUp.json["error"]?.stringValue == "insufficient_user_authentication")
            let ticket = try #require(try await intent(access).json["link_intent"]?.stringValue)

            // The link intent asks the provider for a fresh sign-in.
            s.social.update { $0.subject = "ada-social" }
            #expect(try await browser.send(linkURL(ticket, challenge: Secrets.pkceChallenge(verifier: Secrets.randomToken()))).locationQuery["error"] == "invalid_request",
                "the authorize request must carry the challenge the intent was made with")
            let ticket2 = try #require(try await intent(access).json["link_intent"]?.stringValue)
            let start = try await browser.send(linkURL(ticket2))
            let upstream = try #require(start.location)
            #expect(upstream.contains("prompt=login") && upstream.contains("max_age=0"))
            let back = try await followUpstream(start, browser)
            #expect(try await s.f.directory.userID(pool: s.pool, providerName: "Social", upstreamIssuer: s.social.issuer, upstreamSubject: "ada-social") == nil, "not before the code is redeemed")
            let code = try #require(back.locationQuery["code"])
            #expect(try await s.f.redeem(browser, code: code).status == 400, "without the verifier: no tokens, no link")
            #expect(try await s.f.directory.userID(pool: s.pool, providerName: "Social", upstreamIssuer: s.social.issuer, upstreamSubject: "ada-social") == nil)
            #expect(try await s.f.redeem(browser, code: code, verifier: verifier).json["id_token"] != nil)
            #expect(try await s.f.directory.userID(pool: s.pool, providerName: "Social", upstreamIssuer: s.social.issuer, upstreamSubject: "ada-social") == ada)
            // The ticket was single use.
            let again = try await browser.send(linkURL(ticket2))
            #expect(again.locationQuery["error"] == "invalid_request")

            // A link URL sent to someone else: they sign in, but their app session has no verifier, so nothing is linked.
            let lure = try #require(try await intent(access).json["link_intent"]?.stringValue)
            s.social.update { $0.subject = "victim-social" }
            let victimCode = try await withBrowsers(1) { victims in
                try await followUpstream(try await victims[0].send(linkURL(lure)), victims[0]).locationQuery["code"]
            }
            #expect(try await s.f.redeem(browser, code: try #require(victimCode), verifier: Secrets.randomToken()).status == 400)
            #expect(try await s.f.directory.userID(pool: s.pool, providerName: "Social", upstreamIssuer: s.social.issuer, upstreamSubject: "victim-social") == nil)

            // A provider that answers with an old session (no fresh sign-in) links nothing.
            s.social.update {
                $0.subject = "ada-stale"
                $0.misbehaviour = .staleAuthTime
            }
            let staleTicket = try #require(try await intent(access).json["link_intent"]?.stringValue)
            let stale = try await followUpstream(try await browser.send(linkURL(staleTicket)), browser)
            #expect(stale.locationQuery["error"] == "access_denied")
            #expect(try await s.f.directory.userID(pool: s.pool, providerName: "Social", upstreamIssuer: s.social.issuer, upstreamSubject: "ada-stale") == nil)
            s.social.update {
                $0.misbehaviour = .none
                $0.subject = "ada-social"
            }

            // The user lists their links, and may remove any but the last.
            let mine = try await browser.send("\(s.f.issuer)/oauth2/links", headers: [("Authorization", "Bearer \(access)")], withCookies: false)
            guard case .array(let identities)? = mine.json["identities"] else {
                Issue.record("no identities: \(mine.body)")
                return
            }
            #expect(identities.count == 2)

            // Mallory, signed in with her own account, cannot take Ada's Social identity.
            s.f.upstream.update { $0.subject = "mallory" }
            let malloryAccess = try #require(try await linksLogin()["access_token"]?.stringValue)
            let stolen = try #require(try await intent(malloryAccess).json["link_intent"]?.stringValue)
            let refused = try await followUpstream(try await browser.send(linkURL(stolen)), browser)
            #expect(refused.locationQuery["error"] == "access_denied")
            #expect(try await s.f.directory.userID(pool: s.pool, providerName: "Social", upstreamIssuer: s.social.issuer, upstreamSubject: "ada-social") == ada)

            let removed = try await browser.send("\(s.f.issuer)/oauth2/links?provider=Social&subject=ada-social", method: .DELETE, headers: [("Authorization", "Bearer \(access)")], withCookies: false)
            #expect(removed.status == 204)
            let last = try await browser.send("\(s.f.issuer)/oauth2/links?provider=TestOP&subject=upstream-user-1", method: .DELETE, headers: [("Authorization", "Bearer \(access)")], withCookies: false)
            #expect(last.status == 409)
            let audit = try await s.f.directory.auditEntries(pool: s.pool, after: nil, action: nil, limit: 100).filter { $0.actor == "user:\(ada)" }
            #expect(audit.map(\.action) == ["link.created", "link.removed"])
        }
    }
}
