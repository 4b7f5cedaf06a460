import Foundation
import Testing
import GatehouseCore
import GatehouseJOSE
import GatehouseOIDC
import GatehouseTestSupport

/// The whole walk over real HTTP on 127.0.0.1, on SQLite and on PostgreSQL:
/// app -> /oauth2/authorize -> loopback OpenID provider -> callback -> mapping -> user -> code -> token.
@Suite struct EndToEnd {
    static let backends = TestDatabases.available

    func withFederation(_ backend: TestDatabases.Backend, logSink: CapturingLogHandler.Sink? = nil, _ body: (Federation, TestBrowser) async throws -> Void) async throws {
        try await GatehouseServerTests.withFederation(backend, logSink: logSink, body)
    }

    @Test(arguments: backends) func completeLoginIssuesTokensThatVerifyAgainstTheJWKS(_ backend: TestDatabases.Backend) async throws {
        try await withFederation(backend) { f, browser in
            let state = "a b&c=d/é+%"
            let (back, _) = try await f.login(browser, url: f.authorizeURL(state: state))
            #expect(back.status == 302)
            #expect(back.location?.hasPrefix(f.redirectURI + "?") == true)
            let q = back.locationQuery
            #expect(q["state"] == state, "state is echoed byte for byte")
            #expect(q["iss"] == f.issuer, "RFC 9207 iss in the authorization response")
            let code = try #require(q["code"])

            let tokens = try await f.redeem(browser, code: code)
            #expect(tokens.status == 200)
            #expect(tokens.headers.first(name: "Cache-Control") == "no-store")
            let json = tokens.json
            let idToken = try #require(json["id_token"]?.stringValue)
            let accessToken = try #require(json["access_token"]?.stringValue)
            let refreshToken = try #require(json["refresh_token"]?.stringValue)
            #expect(json["token_type"]?.stringValue == "Bearer")
            #expect(json["expires_in"]?.numberValue == 3600)

            let keys = try await f.publishedKeys(browser)
            let policy = IDTokenPolicy(issuer: f.issuer, clientID: f.clientID, allowedAlgorithms: ["ES256"], clockSkew: 5, nonce: "app-nonce")
            let verified = try await IDTokenVerifier.verify(idToken, keys: keys, policy: policy, now: Date())
            #expect(verified.claims["token_use"]?.stringValue == "id")
            #expect(verified.claims["email"]?.stringValue == "ada@example.com")
            #expect(verified.claims["email_verified"] == .bool(true))
            #expect(verified.claims["family_name"]?.stringValue == "Lovelace")
            #expect(verified.claims["username"]?.stringValue == "TestOP_upstream-user-1")
            guard case .array(let identities) = verified.claims["identities"], case .object(let first) = identities.first else {
                Issue.record("identities claim missing")
                return
            }
            #expect(first["providerName"]?.stringValue == "TestOP")
            #expect(first["userId"]?.stringValue == "upstream-user-1")
            #expect(first["providerType"]?.stringValue == "OIDC")

            // The access token is signed by the same published key and names the client.
            let access = try UnverifiedJWS(compact: accessToken)
            #expect(access.claims["token_use"]?.stringValue == "access")
            #expect(access.claims["client_id"]?.stringValue == f.clientID)
            let key = try #require(keys.prepared.first { $0.jwk.kid == access.keyID })
            #expect(JWSAlgorithm.es256.verify(signature: access.signature, input: access.signingInput, key: key.key))

            let info = try await browser.send("\(f.issuer)/oauth2/userInfo", headers: [("Authorization", "Bearer \(accessToken)")], withCookies: false)
            #expect(info.status == 200)
            #expect(info.json["sub"] == verified.claims["sub"])
            #expect(info.json["email"]?.stringValue == "ada@example.com")

            // A second login of the same upstream identity finds the same user.
            let (again, _) = try await f.login(browser)
            let second = try await f.redeem(browser, code: try #require(again.locationQuery["code"]))
            let secondID = try await IDTokenVerifier.verify(try #require(second.json["id_token"]?.stringValue), keys: keys, policy: policy, now: Date())
            #expect(secondID.subject == verified.subject)
            #expect(try await f.directory.countUsers(pool: try PoolID(f.pool)) == 1)

            // Refresh rotates; presenting the old token again revokes the whole family.
            let refreshed = try await browser.postForm("\(f.issuer)/oauth2/token", [("grant_type", "refresh_token"), ("refresh_token", refreshToken)], basic: (f.clientID, f.clientSecret))
            #expect(refreshed.status == 200)
            let next = try #require(refreshed.json["refresh_token"]?.stringValue)
            #expect(next != refreshToken)
            let reuse = try await browser.postForm("\(f.issuer)/oauth2/token", [("grant_type", "refresh_token"), ("refresh_token", refreshToken)], basic: (f.clientID, f.clientSecret))
            #expect(reuse.status == 400)
            #expect(reuse.json["error"]?.stringValue == "invalid_grant")
            let afterReuse = try await browser.postForm("\(f.issuer)/oauth2/token", [("grant_type", "refresh_token"), ("refresh_token", next)], basic: (f.clientID, f.clientSecret))
            #expect(afterReuse.json["error"]?.stringValue == "invalid_grant")
            let revokedInfo = try await browser.send("\(f.issuer)/oauth2/userInfo", headers: [("Authorization", "Bearer \(accessToken)")], withCookies: false)
            #expect(revokedInfo.status == 401, "access tokens of a revoked family are refused")
        }
    }

    @Test(arguments: backends) func rejectedLoginsLeaveNoUserNoCodeNoToken(_ backend: TestDatabases.Backend) async throws {
        try await withFederation(backend) { f, browser in
            let bad: [TestOpenIDProvider.Misbehaviour] = [.badSignature, .wrongAudience, .wrongNonce, .wrongIssuer, .expired, .algNone, .embeddedKey, .wrongIssParameter, .missingIssParameter]
            var lastCallback = ""
            for misbehaviour in bad {
                f.upstream.update { $0.misbehaviour = misbehaviour }
                let (back, callback) = try await f.login(browser)
                lastCallback = callback
                // A page for the person; its button carries the app's error to the registered URI.
                #expect(back.status == 400 && back.headers.first(name: "Location") == nil, "\(misbehaviour)")
                #expect(back.location?.hasPrefix(f.redirectURI) == true, "\(misbehaviour)")
                #expect(back.locationQuery["error"] == "access_denied", "\(misbehaviour)")
                #expect(back.locationQuery["code"] == nil, "\(misbehaviour)")
                #expect(back.locationQuery["state"] == "app-state", "\(misbehaviour)")
            }
            // Replaying a callback: the login transaction is single use.
            f.upstream.update { $0.misbehaviour = .none }
            let replay = try await browser.send(lastCallback)
            #expect(replay.status == 400)
            #expect(replay.location == nil)
            #expect(try await f.directory.count(table: "users") == 0)
            #expect(try await f.directory.count(table: "linked_identities") == 0)
            #expect(try await f.directory.count(table: "authorization_codes") == 0)
            #expect(try await f.directory.count(table: "refresh_tokens") == 0)
        }
    }

    @Test(arguments: backends) func aReplayedStateAfterSuccessGivesNoSecondCode(_ backend: TestDatabases.Backend) async throws {
        try await withFederation(backend) { f, browser in
            let (back, callback) = try await f.login(browser)
            #expect(back.locationQuery["code"] != nil)
            let replay = try await browser.send(callback)
            #expect(replay.status == 400)
            #expect(try await f.directory.count(table: "authorization_codes") == 1)
            #expect(f.upstream.tokenRequestCount == 1, "the replay never reached the upstream token endpoint")
        }
    }

    @Test func aCallbackFromAnotherBrowserIsRefused() async throws {
        try await withFederation(.sqlite) { f, browser in
            let start = try await browser.send(f.authorizeURL())
            let atUpstream = try await browser.send(try #require(start.location), withCookies: false)
            let callback = try #require(atUpstream.location)
            let (back, noCookie) = try await withBrowsers(2) { b in
                b[0].cookies["gatehouse_browser"] = Secrets.randomToken()
                return (try await b[0].send(callback), try await b[1].send(callback))
            }
            #expect(back.status == 400)
            #expect(back.location == nil)
            #expect(noCookie.status == 400)
            #expect(try await f.directory.count(table: "users") == 0)
            // The other browser could not cancel it: the browser that started the login finishes it.
            let mine = try await browser.send(callback)
            #expect(mine.locationQuery["code"] != nil)
        }
    }

    @Test func theBrowserCookieIsHttpOnlyAndLaxAndNotSecureOnLoopbackHTTP() async throws {
        try await withFederation(.sqlite) { f, browser in
            let start = try await browser.send(f.authorizeURL())
            let cookie = try #require(start.headers.first(name: "Set-Cookie"))
            #expect(cookie.hasPrefix("gatehouse_browser="))
            #expect(cookie.contains("HttpOnly"))
            #expect(cookie.contains("SameSite=Lax"))
            #expect(!cookie.contains("Secure"))
            #expect(start.headers.first(name: "X-Request-ID") != nil)
        }
    }

    @Test func upstreamErrorsReachTheAppAsOAuthErrors() async throws {
        try await withFederation(.sqlite) { f, browser in
            f.upstream.update { $0.authorizeError = "access_denied" }
            let (back, _) = try await f.login(browser)
            // The person sees a page saying what happened; its button takes them to the app with the error.
            #expect(back.status == 200 && back.headers.first(name: "Location") == nil)
            #expect(back.body.contains("Sign-in cancelled") && back.body.contains("TestOP"))
            #expect(back.returnLink?.hasPrefix(f.redirectURI + "?") == true)
            #expect(back.locationQuery["error"] == "access_denied")
            #expect(back.locationQuery["state"] == "app-state")
            #expect(back.locationQuery["iss"] == f.issuer)
            #expect(try await f.directory.count(table: "users") == 0)
        }
    }

    @Test func userinfoWhoseSubjectDiffersRejectsTheLogin() async throws {
        try await withFederation(.sqlite) { f, browser in
            var settings = OIDCProviderSettings(issuer: f.upstream.issuer, clientID: f.upstream.clientID)
            settings.useUserInfo = true
            try await f.gatehouse.admin.createOIDCProvider(pool: f.pool, name: "WithInfo", settings: settings, clientSecret: f.upstream.clientSecret)
            f.upstream.update { $0.userinfoSubject = "someone-else" }
            let (refused, _) = try await f.login(browser, url: f.authorizeURL(extra: [("identity_provider", "WithInfo")]))
            #expect(refused.locationQuery["error"] == "access_denied")
            #expect(try await f.directory.count(table: "users") == 0)
            f.upstream.update { $0.userinfoSubject = nil; $0.claims["picture"] = .string("https://img.example/ada.png") }
            let (ok, _) = try await f.login(browser, url: f.authorizeURL(extra: [("identity_provider", "WithInfo")]))
            #expect(ok.locationQuery["code"] != nil)
        }
    }

    @Test func clientLifetimesShapeTheTokens() async throws {
        try await withFederation(.sqlite) { f, browser in
            let (client, secret) = try await f.gatehouse.admin.createClient(pool: f.pool, name: "short", redirectURIs: [f.redirectURI], confidential: true, lifetimes: (300, 600, 3600))
            let (back, _) = try await f.login(browser, url: f.authorizeURL(clientID: client.clientID))
            let code = try #require(back.locationQuery["code"])
            let tokens = try await browser.postForm("\(f.issuer)/oauth2/token", [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", f.redirectURI)], basic: (client.clientID, try #require(secret)))
            #expect(tokens.json["expires_in"]?.numberValue == 600)
            let id = try UnverifiedJWS(compact: try #require(tokens.json["id_token"]?.stringValue))
            let iat = try #require(id.claims["iat"]?.numberValue)
            #expect(id.claims["exp"]?.numberValue == iat + 300)
        }
    }

    @Test(arguments: backends) func publicClientsMustUsePKCE(_ backend: TestDatabases.Backend) async throws {
        try await withFederation(backend) { f, browser in
            let refused = try await browser.send(f.authorizeURL(clientID: f.publicClientID))
            #expect(refused.status == 302)
            #expect(refused.locationQuery["error"] == "invalid_request")
            #expect(refused.locationQuery["state"] == "app-state")
            let plain = try await browser.send(f.authorizeURL(clientID: f.publicClientID, extra: [("identity_provider", "TestOP"), ("code_challenge", String(repeating: "a", count: 43)), ("code_challenge_method", "plain")]))
            #expect(plain.locationQuery["error"] == "invalid_request")

            let verifier = Secrets.randomToken()
            let (back, _) = try await f.login(browser, url: f.authorizeURL(clientID: f.publicClientID, challenge: Secrets.pkceChallenge(verifier: verifier)))
            let code = try #require(back.locationQuery["code"])
            let wrong = try await browser.postForm("\(f.issuer)/oauth2/token", [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", f.redirectURI), ("client_id", f.publicClientID), ("code_verifier", Secrets.randomToken())])
            #expect(wrong.json["error"]?.stringValue == "invalid_grant")

            let (back2, _) = try await f.login(browser, url: f.authorizeURL(clientID: f.publicClientID, challenge: Secrets.pkceChallenge(verifier: verifier)))
            let ok = try await browser.postForm("\(f.issuer)/oauth2/token", [("grant_type", "authorization_code"), ("code", try #require(back2.locationQuery["code"])), ("redirect_uri", f.redirectURI), ("client_id", f.publicClientID), ("code_verifier", verifier)])
            #expect(ok.status == 200)
            #expect(ok.json["id_token"] != nil)
        }
    }

    @Test(arguments: backends) func aWrongPresentationDoesNotBurnTheCode(_ backend: TestDatabases.Backend) async throws {
        try await withFederation(backend) { f, browser in
            let (back, _) = try await f.login(browser)
            let code = try #require(back.locationQuery["code"])
            let wrongRedirect = try await browser.postForm("\(f.issuer)/oauth2/token", [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", f.redirectURI + "x")], basic: (f.clientID, f.clientSecret))
            #expect(wrongRedirect.json["error"]?.stringValue == "invalid_grant")
            let wrongClient = try await browser.postForm("\(f.issuer)/oauth2/token", [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", f.redirectURI), ("client_id", f.publicClientID)])
            #expect(wrongClient.json["error"]?.stringValue == "invalid_grant")
            let right = try await f.redeem(browser, code: code)
            #expect(right.status == 200)
        }
    }

    @Test func refreshCanNarrowButNotWidenTheScope() async throws {
        try await withFederation(.sqlite) { f, browser in
            let (back, _) = try await f.login(browser)
            let tokens = try await f.redeem(browser, code: try #require(back.locationQuery["code"]))
            let refresh = try #require(tokens.json["refresh_token"]?.stringValue)
            let wider = try await browser.postForm("\(f.issuer)/oauth2/token", [("grant_type", "refresh_token"), ("refresh_token", refresh), ("scope", "openid email phone")], basic: (f.clientID, f.clientSecret))
            #expect(wider.json["error"]?.stringValue == "invalid_scope")
            let narrower = try await browser.postForm("\(f.issuer)/oauth2/token", [("grant_type", "refresh_token"), ("refresh_token", refresh), ("scope", "openid")], basic: (f.clientID, f.clientSecret))
            #expect(narrower.status == 200, "the refused widening did not spend the token")
            let access = try UnverifiedJWS(compact: try #require(narrower.json["access_token"]?.stringValue))
            #expect(access.claims["scope"]?.stringValue == "openid")
            let id = try UnverifiedJWS(compact: try #require(narrower.json["id_token"]?.stringValue))
            #expect(id.claims["email"] == nil)
        }
    }

    @Test(arguments: backends) func revocationAndLogoutEndTheLoginsTokens(_ backend: TestDatabases.Backend) async throws {
        try await withFederation(backend) { f, browser in
            func tokens() async throws -> [String: JSONValue] {
                let (back, _) = try await f.login(browser)
                return try await f.redeem(browser, code: try #require(back.locationQuery["code"])).json
            }
            func refresh(_ token: String) async throws -> Int {
                try await browser.postForm("\(f.issuer)/oauth2/token", [("grant_type", "refresh_token"), ("refresh_token", token)], basic: (f.clientID, f.clientSecret)).status
            }
            func userInfo(_ access: String) async throws -> Int {
                try await browser.send("\(f.issuer)/oauth2/userInfo", headers: [("Authorization", "Bearer \(access)")], withCookies: false).status
            }

            // RFC 7009 with the refresh token: the family is gone.
            let a = try await tokens()
            let aRefresh = try #require(a["refresh_token"]?.stringValue)
            let wrongClient = try await browser.postForm("\(f.issuer)/oauth2/revoke", [("token", aRefresh), ("client_id", f.publicClientID)])
            #expect(wrongClient.status == 200)
            #expect(try await refresh(aRefresh) == 200, "another client cannot revoke this client's token")
            let b = try await tokens()
            let bRefresh = try #require(b["refresh_token"]?.stringValue)
            #expect(try await browser.postForm("\(f.issuer)/oauth2/revoke", [("token", bRefresh), ("token_type_hint", "refresh_token")], basic: (f.clientID, f.clientSecret)).status == 200)
            #expect(try await refresh(bRefresh) == 400)
            #expect(try await userInfo(try #require(b["access_token"]?.stringValue)) == 401)

            // Revoking by access token ends its family too.
            let c = try await tokens()
            #expect(try await browser.postForm("\(f.issuer)/oauth2/revoke", [("token", try #require(c["access_token"]?.stringValue))], basic: (f.clientID, f.clientSecret)).status == 200)
            #expect(try await refresh(try #require(c["refresh_token"]?.stringValue)) == 400)

            // Logout with an id_token_hint revokes that login's refresh tokens.
            let d = try await tokens()
            let hint = try #require(d["id_token"]?.stringValue)
            let bye = try await browser.send("\(f.issuer)/logout?" + FormEncoding.encode([("client_id", f.clientID), ("post_logout_redirect_uri", "http://127.0.0.1:9/app/bye"), ("id_token_hint", hint), ("state", "s1")]))
            #expect(bye.status == 302)
            #expect(bye.location == "http://127.0.0.1:9/app/bye?state=s1")
            #expect(try await refresh(try #require(d["refresh_token"]?.stringValue)) == 400)
        }
    }

    @Test(arguments: backends) func keyRotationKeepsOldTokensVerifiable(_ backend: TestDatabases.Backend) async throws {
        try await withFederation(backend) { f, browser in
            let (first, _) = try await f.login(browser)
            let before = try await f.redeem(browser, code: try #require(first.locationQuery["code"]))
            let oldToken = try #require(before.json["id_token"]?.stringValue)
            // Published now, signing after 0 s: the next tokens use the new key.
            let record = try await f.gatehouse.admin.rotateKeys(pool: f.pool, activationDelay: 0)
            let keys = try await f.publishedKeys(browser)
            #expect(keys.prepared.count == 2)
            let (second, _) = try await f.login(browser)
            let after = try await f.redeem(browser, code: try #require(second.locationQuery["code"]))
            let newToken = try #require(after.json["id_token"]?.stringValue)
            #expect(try UnverifiedJWS(compact: newToken).keyID == record.kid)
            #expect(try UnverifiedJWS(compact: oldToken).keyID != record.kid)
            let policy = IDTokenPolicy(issuer: f.issuer, clientID: f.clientID, allowedAlgorithms: ["ES256"], clockSkew: 5, nonce: "app-nonce")
            _ = try await IDTokenVerifier.verify(oldToken, keys: keys, policy: policy, now: Date())
            _ = try await IDTokenVerifier.verify(newToken, keys: keys, policy: policy, now: Date())
        }
    }

    @Test(arguments: backends) func aReplayedCodeRevokesWhatItIssued(_ backend: TestDatabases.Backend) async throws {
        try await withFederation(backend) { f, browser in
            let (back, _) = try await f.login(browser)
            let code = try #require(back.locationQuery["code"])
            let first = try await f.redeem(browser, code: code)
            #expect(first.status == 200)
            let second = try await f.redeem(browser, code: code)
            #expect(second.json["error"]?.stringValue == "invalid_grant")
            let refresh = try #require(first.json["refresh_token"]?.stringValue)
            let refused = try await browser.postForm("\(f.issuer)/oauth2/token", [("grant_type", "refresh_token"), ("refresh_token", refresh)], basic: (f.clientID, f.clientSecret))
            #expect(refused.json["error"]?.stringValue == "invalid_grant")
        }
    }

    @Test func unregisteredRedirectsAndUnknownClientsGetAPageNotARedirect() async throws {
        try await withFederation(.sqlite) { f, browser in
            let evil = "\(f.issuer)/oauth2/authorize?" + FormEncoding.encode([("response_type", "code"), ("client_id", f.clientID), ("redirect_uri", "https://evil.example/cb"), ("scope", "openid")])
            let r1 = try await browser.send(evil)
            #expect(r1.status == 400)
            #expect(r1.location == nil)
            #expect(r1.body.contains("<h1>"))
            let r2 = try await browser.send("\(f.issuer)/oauth2/authorize?client_id=nobody&redirect_uri=\(FormEncoding.escape(f.redirectURI))")
            #expect(r2.status == 400)
            #expect(r2.location == nil)
            let dup = try await browser.send(f.authorizeURL() + "&client_id=again")
            #expect(dup.status == 400)
            #expect(dup.location == nil)
        }
    }

    @Test func chooserAndDomainRouting() async throws {
        try await withFederation(.sqlite) { f, browser in
            let chooser = try await browser.send(f.authorizeURL(extra: []))
            #expect(chooser.status == 200)
            #expect(chooser.body.contains("Continue with TestOP"))
            #expect(chooser.headers.first(name: "Content-Security-Policy") != nil)
            let routed = try await browser.send(f.authorizeURL(extra: [("idp_identifier", "grace@Example.com")]))
            #expect(routed.status == 302)
            #expect(routed.location?.hasPrefix(f.upstream.issuer) == true)
            let unknown = try await browser.send(f.authorizeURL(extra: [("idp_identifier", "x@nowhere.test")]))
            #expect(unknown.locationQuery["error"] == "invalid_request")
        }
    }

    @Test func aTamperedStateIsAPageAndTheRealLoginSurvives() async throws {
        try await withFederation(.sqlite) { f, browser in
            let start = try await browser.send(f.authorizeURL())
            let atUpstream = try await browser.send(try #require(start.location), withCookies: false)
            let callback = try #require(atUpstream.location)
            var parts = try #require(URLComponents(string: callback))
            parts.queryItems = parts.queryItems?.map { $0.name == "state" ? URLQueryItem(name: "state", value: Secrets.randomToken()) : $0 }
            let tampered = try await browser.send(try #require(parts.string))
            #expect(tampered.status == 400)
            #expect(tampered.location == nil)
            #expect(try await browser.send(callback).locationQuery["code"] != nil)
        }
    }

    @Test func redirectURIsMatchExactly() async throws {
        try await withFederation(.sqlite) { f, browser in
            for variant in [f.redirectURI + "/", f.redirectURI + "?x=1", "http://127.0.0.1:9/APP/callback", "HTTP://127.0.0.1:9/app/callback", "http://127.0.0.1:9/app%2Fcallback", "http://127.0.0.1:09/app/callback"] {
                let r = try await browser.send(f.authorizeURL(redirectURI: variant))
                #expect(r.status == 400, "\(variant)")
                #expect(r.location == nil, "\(variant)")
            }
            for variant in ["http://127.0.0.1:9/app/bye/", "http://127.0.0.1:9/app/bye?next=https://evil.example"] {
                let r = try await browser.send("\(f.issuer)/logout?" + FormEncoding.encode([("client_id", f.clientID), ("logout_uri", variant)]))
                #expect(r.status == 400, "\(variant)")
                #expect(r.location == nil)
            }
        }
    }

    @Test func clientSecretPostAuthenticatesAndTwoMethodsAreRefused() async throws {
        try await withFederation(.sqlite) { f, browser in
            let (back, _) = try await f.login(browser)
            let code = try #require(back.locationQuery["code"])
            let both = try await browser.postForm("\(f.issuer)/oauth2/token", [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", f.redirectURI), ("client_secret", f.clientSecret)], basic: (f.clientID, f.clientSecret))
            #expect(both.json["error"]?.stringValue == "invalid_request")
            let wrong = try await browser.postForm("\(f.issuer)/oauth2/token", [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", f.redirectURI), ("client_id", f.clientID), ("client_secret", "nope")])
            #expect(wrong.status == 401)
            #expect(wrong.headers.first(name: "WWW-Authenticate") == nil, "no Basic challenge when Basic was not used")
            let post = try await browser.postForm("\(f.issuer)/oauth2/token", [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", f.redirectURI), ("client_id", f.clientID), ("client_secret", f.clientSecret)])
            #expect(post.status == 200)
            #expect(post.json["id_token"] != nil)
        }
    }

    @Test func aRotatedKeyIsPublishedBeforeItSigns() async throws {
        try await withFederation(.sqlite) { f, browser in
            let (first, _) = try await f.login(browser)
            let before = try await f.redeem(browser, code: try #require(first.locationQuery["code"]))
            let currentKid = try UnverifiedJWS(compact: try #require(before.json["id_token"]?.stringValue)).keyID
            let record = try await f.gatehouse.admin.rotateKeys(pool: f.pool, activationDelay: 3600)
            let published = try await f.publishedKeys(browser).prepared.compactMap(\.jwk.kid)
            #expect(Set(published) == Set([record.kid, try #require(currentKid)]))
            let (second, _) = try await f.login(browser)
            let after = try await f.redeem(browser, code: try #require(second.locationQuery["code"]))
            #expect(try UnverifiedJWS(compact: try #require(after.json["id_token"]?.stringValue)).keyID == currentKid, "the new key does not sign before its time")
        }
    }

    @Test func logsCarryRequestIDsAndNoSecrets() async throws {
        let sink = CapturingLogHandler.Sink()
        var secrets: [String] = []
        try await withFederation(.sqlite, logSink: sink) { f, browser in
            let (back, callback) = try await f.login(browser, url: f.authorizeURL(state: "state-value-9f8e7d"))
            let code = try #require(back.locationQuery["code"])
            let tokens = try await f.redeem(browser, code: code)
            _ = try await browser.postForm("\(f.issuer)/oauth2/token", [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", f.redirectURI)], basic: (f.clientID, "wrong-secret-value"))
            let upstreamQuery = try #require(URLComponents(string: callback)?.queryItems)
            secrets = [code, f.clientSecret, "wrong-secret-value", "state-value-9f8e7d", f.upstream.clientSecret,
                       try #require(tokens.json["refresh_token"]?.stringValue), try #require(tokens.json["access_token"]?.stringValue),
                       try #require(tokens.json["id_token"]?.stringValue), try #require(browser.cookies["gatehouse_browser"])]
                + upstreamQuery.compactMap { $0.name == "code" || $0.name == "state" ? $0.value : nil }
        }
        let lines = sink.captured
        let requests = lines.filter { $0.contains(" request ") }
        #expect(requests.count == 4, "authorize, callback and two token requests")
        #expect(requests.allSatisfy { $0.contains("hb.request.id=") && $0.contains("status=") && $0.contains("path=/") })
        #expect(requests.contains { $0.contains("path=/acme/oauth2/token") && $0.contains("status=401") })
        for secret in secrets {
            #expect(!lines.contains { $0.contains(secret) }, "a secret reached the log")
        }
    }

    @Test func readinessFailsWhenTheDirectoryIsGone() async throws {
        try await withFederation(.sqlite) { f, browser in
            #expect(try await browser.send("\(f.gatehouse.baseURL)/readyz").status == 200)
            try await f.directory.shutdown()
            let r = try await browser.send("\(f.gatehouse.baseURL)/readyz")
            #expect(r.status == 503)
            #expect(try await browser.send("\(f.gatehouse.baseURL)/healthz").status == 200)
        }
    }

    @Test func hostileRequestsGetOAuthErrorsNeverA500() async throws {
        try await withFederation(.sqlite) { f, browser in
            let token = "\(f.issuer)/oauth2/token"
            let json = try await browser.send(token, method: .POST, headers: [("Content-Type", "application/json")], body: "{}", withCookies: false)
            #expect(json.status == 400)
            #expect(json.json["error"]?.stringValue == "invalid_request")
            let dup = try await browser.send(token, method: .POST, headers: [("Content-Type", "application/x-www-form-urlencoded")], body: "grant_type=a&grant_type=b", withCookies: false)
            #expect(dup.json["error"]?.stringValue == "invalid_request")
            let huge = try await browser.send(token, method: .POST, headers: [("Content-Type", "application/x-www-form-urlencoded")], body: "code=" + String(repeating: "x", count: 200_000), withCookies: false)
            #expect(huge.status == 413)
            let badSecret = try await browser.postForm(token, [("grant_type", "authorization_code"), ("code", "x"), ("redirect_uri", f.redirectURI)], basic: (f.clientID, "wrong"))
            #expect(badSecret.status == 401)
            #expect(badSecret.json["error"]?.stringValue == "invalid_client")
            #expect(badSecret.headers.first(name: "WWW-Authenticate") != nil)
            let grant = try await browser.postForm(token, [("grant_type", "password")], basic: (f.clientID, f.clientSecret))
            #expect(grant.json["error"]?.stringValue == "unsupported_grant_type")
            let badCode = try await browser.postForm(token, [("grant_type", "authorization_code"), ("code", "nope"), ("redirect_uri", f.redirectURI)], basic: (f.clientID, f.clientSecret))
            #expect(badCode.json["error"]?.stringValue == "invalid_grant")
            let noToken = try await browser.send("\(f.issuer)/oauth2/userInfo", withCookies: false)
            #expect(noToken.status == 401)
            let garbage = try await browser.send("\(f.issuer)/oauth2/userInfo", headers: [("Authorization", "Bearer a.b.c")], withCookies: false)
            #expect(garbage.status == 401)
            let unknownPool = try await browser.send("\(f.gatehouse.baseURL)/nopool/.well-known/openid-configuration")
            #expect(unknownPool.status == 404)
            let badCallback = try await browser.send("\(f.issuer)/oauth2/idpresponse?state=\(String(repeating: "z", count: 5000))")
            #expect(badCallback.status == 400)
            let revoke = try await browser.postForm("\(f.issuer)/oauth2/revoke", [("token", "unknown")], basic: (f.clientID, f.clientSecret))
            #expect(revoke.status == 200)
            // Text running more than 30 combining marks together (which Swift compares in time
            // growing with the square of the run) is refused wherever a client can send it.
            let marks = "a" + String(repeating: "\u{301}", count: 1000)
            let markForm = try await browser.postForm(token, [("grant_type", "authorization_code"), ("code", "x"), ("redirect_uri", f.redirectURI), ("x", marks)], basic: (f.clientID, f.clientSecret))
            #expect(markForm.status == 400)
            #expect(markForm.json["error"]?.stringValue == "invalid_request")
            let markClient = try await browser.postForm(token, [("grant_type", "authorization_code"), ("code", "x")], basic: (marks, f.clientSecret))
            #expect(markClient.status == 401)
            #expect(markClient.json["error"]?.stringValue == "invalid_client")
            let markBearer = try await browser.send("\(f.issuer)/oauth2/userInfo", headers: [("Authorization", "Bearer " + marks)], withCookies: false)
            #expect(markBearer.status == 401)
            let markType = try await browser.send(token, method: .POST, headers: [("Content-Type", marks)], body: "grant_type=x", withCookies: false)
            #expect(markType.json["error"]?.stringValue == "invalid_request")
            let markState = try await browser.send(f.authorizeURL() + "&x=" + FormEncoding.escape(marks))
            #expect(markState.status == 400)
            #expect(markState.location == nil)
        }
    }

    @Test func discoveryLogoutAndOperations() async throws {
        try await withFederation(.sqlite) { f, browser in
            let doc = try await browser.send("\(f.issuer)/.well-known/openid-configuration").json
            #expect(doc["issuer"]?.stringValue == f.issuer)
            #expect(doc["jwks_uri"]?.stringValue == f.issuer + "/.well-known/jwks.json")
            #expect(doc["code_challenge_methods_supported"] == .array([.string("S256")]))
            let bye = try await browser.send("\(f.issuer)/logout?client_id=\(f.clientID)&logout_uri=\(FormEncoding.escape("http://127.0.0.1:9/app/bye"))")
            #expect(bye.status == 302)
            #expect(bye.location == "http://127.0.0.1:9/app/bye")
            let evil = try await browser.send("\(f.issuer)/logout?client_id=\(f.clientID)&logout_uri=\(FormEncoding.escape("https://evil.example/"))")
            #expect(evil.status == 400)
            #expect(evil.location == nil)
            #expect(try await browser.send("\(f.gatehouse.baseURL)/healthz").status == 200)
            #expect(try await browser.send("\(f.gatehouse.baseURL)/readyz").status == 200)
            let (back, _) = try await f.login(browser)
            #expect(try await f.redeem(browser, code: try #require(back.locationQuery["code"])).status == 200)
            f.upstream.update { $0.misbehaviour = .badSignature }
            _ = try await f.login(browser)
            let metrics = try await browser.send("\(f.gatehouse.baseURL)/metrics").body
            #expect(metrics.contains("gatehouse_logins_total{provider=\"TestOP\",outcome=\"success_new_user\"} 1"))
            #expect(metrics.contains("gatehouse_logins_total{provider=\"TestOP\",outcome=\"verification\"} 1"))
            #expect(metrics.contains("gatehouse_verification_failures_total{reason=\"signature\"} 1"))
            #expect(metrics.contains("gatehouse_token_endpoint_duration_seconds"))
        }
    }
}
