import Foundation
import Testing
import GatehouseCore
import GatehouseJOSE
import GatehouseOIDC
import GatehouseServer
import GatehouseTestSupport

/// Each preset over real HTTP against a loopback stand-in that answers as that provider does
/// (see `TestOpenIDProvider.Flavor`), through Gatehouse's real authorize, callback, mapping and
/// token path.
@Suite struct ProviderPresets {
    func identity(_ f: Federation, _ claims: [String: JSONValue]) async throws -> LinkedIdentity {
        let links = try await f.directory.linkedIdentities(pool: try PoolID(f.pool), userID: try #require(claims["sub"]?.stringValue))
        return try #require(links.first)
    }

    @Test func googleAcceptsBothIssuerSpellingsAndEnforcesTheHostedDomain() async throws {
        try await withFederation(flavor: .google, provider: { op in
            var spec = OIDCProviderSpec(preset: .google, clientID: op.clientID)
            spec.issuer = op.issuer
            spec.hostedDomain = "example.com"
            return (spec, op.clientSecret)
        }) { (f: Federation, browser: TestBrowser) async throws in
            f.upstream.update { $0.shortIssuer = true; $0.claims["hd"] = .string("example.com"); $0.claims["picture"] = .string("https://pic.example/a.png") }
            let (claims, _) = try await f.signIn(browser)
            #expect(claims["email"]?.stringValue == "ada@example.com")
            #expect(claims["email_verified"] == .bool(true))
            #expect(claims["picture"]?.stringValue == "https://pic.example/a.png")
            // Both spellings are one namespace: the identity lives under the configured issuer.
            #expect(try await identity(f, claims).upstreamIssuer == f.upstream.issuer)
            f.upstream.update { $0.shortIssuer = false }
            #expect(try await f.signIn(browser).claims["sub"] == claims["sub"])

            f.upstream.update { $0.claims["hd"] = .string("elsewhere.example") }
            #expect(try await f.refusedSignIn(browser) == "access_denied", "a user of another Workspace domain")
            f.upstream.update { $0.claims["hd"] = nil }
            #expect(try await f.refusedSignIn(browser) == "access_denied", "a consumer account has no hd")
        }
    }

    @Test func microsoftCommonChecksTheTokensTenant() async throws {
        try await withFederation(flavor: .microsoft, provider: { op in
            var spec = OIDCProviderSpec(preset: .microsoft, clientID: op.clientID)
            spec.issuer = op.configuredIssuer
            return (spec, op.clientSecret)
        }) { (f: Federation, browser: TestBrowser) async throws in
            let tenant = f.upstream.settings.tenantID
            let (claims, _) = try await f.signIn(browser)
            // The identity is the tenant's: the same sub in another tenant is another person.
            #expect(try await identity(f, claims).upstreamIssuer == f.upstream.issuer + "/\(tenant)/v2.0")
            #expect(claims["email"]?.stringValue == "ada@example.com")
            #expect(claims["email_verified"] == nil, "Microsoft does not verify email; the preset maps none")

            // Another user (so nothing but the tenant check can refuse it).
            f.upstream.update { $0.misbehaviour = .tenantMismatch; $0.subject = "another-user" }
            #expect(try await f.refusedSignIn(browser) == "access_denied", "iss names another tenant than tid")
            f.upstream.update { $0.misbehaviour = .none; $0.tenantID = "not-a-guid" }
            #expect(try await f.refusedSignIn(browser) == "access_denied")
        }
    }

    @Test func microsoftOrganizationsRefusesPersonalAccounts() async throws {
        try await withFederation(flavor: .microsoft, provider: { op in
            var spec = OIDCProviderSpec(preset: .microsoft, clientID: op.clientID)
            spec.issuer = op.issuer + "/organizations/v2.0"
            return (spec, op.clientSecret)
        }) { (f: Federation, browser: TestBrowser) async throws in
            _ = try await f.signIn(browser)
            f.upstream.update { $0.tenantID = ProviderPreset.microsoftConsumerTenant; $0.subject = "personal-user" }
            #expect(try await f.refusedSignIn(browser) == "access_denied")
        }
    }

    @Test func microsoftAllowedTenantsAreEnforced() async throws {
        try await withFederation(flavor: .microsoft, provider: { op in
            var spec = OIDCProviderSpec(preset: .microsoft, clientID: op.clientID)
            spec.issuer = op.configuredIssuer
            spec.allowedTenants = ["0a0b0c0d-1111-2222-3333-444455556666"]
            return (spec, op.clientSecret)
        }) { (f: Federation, browser: TestBrowser) async throws in
            #expect(try await f.refusedSignIn(browser) == "access_denied")
            f.upstream.update { $0.tenantID = "0a0b0c0d-1111-2222-3333-444455556666" }
            _ = try await f.signIn(browser)
        }
    }

    @Test func appleUsesFormPostASignedClientSecretAndTheFirstLoginName() async throws {
        try await withFederation(flavor: .apple, provider: { op in
            var spec = OIDCProviderSpec(preset: .apple, clientID: op.clientID)
            spec.issuer = op.issuer
            spec.appleTeamID = op.appleTeamID
            spec.appleKeyID = op.appleKeyID
            return (spec, op.appleKey.pemRepresentation)
        }) { (f: Federation, browser: TestBrowser) async throws in
            let (first, _) = try await f.signIn(browser)
            #expect(first["email"]?.stringValue == "x7k2p9@privaterelay.appleid.com")
            #expect(first["email_verified"] == .bool(true), "Apple's \"true\" string is a verified address")
            #expect(first["given_name"]?.stringValue == "Ada")
            #expect(first["family_name"]?.stringValue == "Lovelace")
            #expect(first["name"]?.stringValue == "Ada Lovelace")
            // Apple sends the name only once; the next login keeps it.
            let (second, _) = try await f.signIn(browser)
            #expect(second["sub"] == first["sub"])
            #expect(second["given_name"]?.stringValue == "Ada")
            #expect(f.upstream.tokenRequestCount == 2, "the stand-in accepted Gatehouse's ES256 client secret twice")
        }
    }

    @Test func appleRefusesAClientSecretSignedWithAnotherKey() async throws {
        try await withFederation(flavor: .apple, provider: { op in
            var spec = OIDCProviderSpec(preset: .apple, clientID: op.clientID)
            spec.issuer = op.issuer
            spec.appleTeamID = op.appleTeamID
            spec.appleKeyID = op.appleKeyID
            return (spec, try JWSSigningKey.generate(.es256).pemRepresentation)
        }) { (f: Federation, browser: TestBrowser) async throws in
            // A refused client is a misconfiguration: the app hears server_error.
            #expect(try await f.refusedSignIn(browser) == "server_error")
        }
    }

    @Test func facebookProfileComesFromTheGraphAPIWithAppSecretProof() async throws {
        try await withFederation(flavor: .facebook, provider: { op in
            (Self.oauthSpec(.facebook, op), op.clientSecret)
        }) { (f: Federation, browser: TestBrowser) async throws in
            let (claims, _) = try await f.signIn(browser)
            #expect(claims["email"]?.stringValue == "ada@example.com")
            #expect(claims["email_verified"] == nil, "Facebook does not say the address is verified")
            #expect(claims["given_name"]?.stringValue == "Ada")
            #expect(claims["picture"]?.stringValue == "https://graph.example/pic.jpg")
            let link = try await identity(f, claims)
            #expect(link.upstreamSubject == "10158000000000001")
            #expect(link.upstreamIssuer == f.upstream.issuer)
            f.upstream.update { $0.authorizeError = "access_denied" }
            #expect(try await f.refusedSignIn(browser) == "access_denied")
        }
    }

    @Test func facebookWithAWrongSecretFailsOnItsProof() async throws {
        try await withFederation(flavor: .facebook, provider: { op in
            (Self.oauthSpec(.facebook, op), "not-the-app-secret")
        }) { (f: Federation, browser: TestBrowser) async throws in
            // The token endpoint refuses the secret (an error object, not a code).
            #expect(try await f.refusedSignIn(browser) == "access_denied")
            #expect(try await f.directory.count(table: "users") == 0)
        }
    }

    @Test func githubReadsThePrimaryVerifiedEmailAndNumericIDs() async throws {
        try await withFederation(flavor: .github, provider: { op in
            (Self.oauthSpec(.github, op), op.clientSecret)
        }) { (f: Federation, browser: TestBrowser) async throws in
            let (claims, _) = try await f.signIn(browser)
            #expect(claims["email"]?.stringValue == "ada@example.com")
            #expect(claims["email_verified"] == .bool(true))
            #expect(claims["preferred_username"]?.stringValue == "ada")
            #expect(try await identity(f, claims).upstreamSubject == "583231")

            // Primary address unverified: no email_verified true, whatever /user shows.
            f.upstream.update {
                $0.subject = "583232"
                $0.claims["email"] = .string("grace@example.com")
                $0.githubEmails = [.object(["email": .string("grace@example.com"), "primary": .bool(true), "verified": .bool(false)])]
            }
            let (unverified, _) = try await f.signIn(browser)
            #expect(unverified["email"]?.stringValue == "grace@example.com")
            #expect(unverified["email_verified"] == .bool(false))
        }
    }

    /// GitHub states no authentication time, so its sign-in (perhaps from an old session) can
    /// never be the fresh one that changing an account's sign-ins demands.
    @Test func anOAuthSignInIsNeverFreshEnoughToChangeLinks() async throws {
        try await withFederation(flavor: .github, provider: { op in
            (Self.oauthSpec(.github, op), op.clientSecret)
        }) { (f: Federation, browser: TestBrowser) async throws in
            var client = try #require(try await f.directory.client(pool: try PoolID(f.pool), clientID: f.clientID))
            client.allowedScopes.append("gatehouse.links")
            try await f.directory.updateClient(client)
            let (back, _) = try await f.login(browser, url: f.authorizeURL(scope: "openid gatehouse.links"))
            let tokens = try await f.redeem(browser, code: try #require(back.locationQuery["code"])).json
            let access = try #require(tokens["access_token"]?.stringValue)
            let intent = try await browser.send(
                "\(f.issuer)/oauth2/links/intent", method: .POST,
                headers: [("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", "Bearer \(access)")],
                body: FormEncoding.encode([("provider", "TestOP"), ("code_challenge", Secrets.pkceChallenge(verifier: Secrets.randomToken()))]), withCookies: false)
            #expect(intent.status == 401 && intent.json["error"]?.stringValue == "insufficient_user_authentication", "\(intent.body)")
        }
    }

    @Test func githubAnswersErrorsWithHTTP200AndTheyAreStillErrors() async throws {
        try await withFederation(flavor: .github, provider: { op in
            (Self.oauthSpec(.github, op), "wrong-secret")
        }) { (f: Federation, browser: TestBrowser) async throws in
            #expect(try await f.refusedSignIn(browser) == "server_error")
            #expect(try await f.directory.count(table: "users") == 0)
        }
    }

    @Test func githubWithoutTheEmailScopeHasNoVerifiedEmail() async throws {
        try await withFederation(flavor: .github, provider: { op in
            var spec = Self.oauthSpec(.github, op)
            spec.scopes = ["read:user"]
            return (spec, op.clientSecret)
        }) { (f: Federation, browser: TestBrowser) async throws in
            let (claims, _) = try await f.signIn(browser)
            #expect(claims["email"] == nil && claims["email_verified"] == nil)
        }
    }

    @Test func genericOAuth2ReadsTheConfiguredClaimPaths() async throws {
        try await withFederation(provider: { op in
            var spec = OIDCProviderSpec(preset: .oauth2, clientID: op.clientID)
            spec.issuer = op.issuer
            spec.authorizationEndpoint = op.endpoints.authorization
            spec.tokenEndpoint = op.endpoints.token
            spec.userinfoEndpoint = op.endpoints.userinfo
            spec.subjectClaim = "data.sub"
            spec.claimsPath = "data"
            return (spec, op.clientSecret)
        }) { (f: Federation, browser: TestBrowser) async throws in
            // The user API answers {"data": {"sub": …, "email": …}}.
            f.upstream.update { $0.userinfoEnvelope = "data" }
            let (claims, _) = try await f.signIn(browser)
            #expect(claims["email"]?.stringValue == "ada@example.com")
            #expect(try await identity(f, claims).upstreamSubject == "upstream-user-1")
            // The provider names its issuer in the response (RFC 9207); another is a mix-up.
            f.upstream.update { $0.misbehaviour = .wrongIssParameter }
            #expect(try await f.refusedSignIn(browser) == "access_denied")
        }
    }

    @Test func genericOIDCWithFormPostAndPrivateKeyJWT() async throws {
        try await withFederation(provider: { op in
            var spec = OIDCProviderSpec(preset: .oidc, clientID: op.clientID)
            spec.issuer = op.issuer
            spec.responseMode = .formPost
            spec.clientAuthentication = .privateKeyJWT
            return (spec, nil)
        }) { (f: Federation, browser: TestBrowser) async throws in
            // The provider fetches Gatehouse's published client key, as a registered jwks_uri.
            let jwksURL = "\(f.issuer)/providers/TestOP/jwks.json"
            f.upstream.update { $0.clientAuth = .privateKeyJWT(jwksURL: jwksURL) }
            let published = try await browser.send(jwksURL)
            #expect(published.status == 200 && published.body.contains("\"kty\":\"RSA\"") && !published.body.contains("\"d\""))
            let (claims, _) = try await f.signIn(browser)
            #expect(claims["email"]?.stringValue == "ada@example.com")
            _ = try await f.signIn(browser)
            #expect(f.upstream.tokenRequestCount == 2, "each assertion is fresh (the stand-in refuses a repeated jti)")
        }
    }

    /// A form_post response carried to another browser (a login CSRF or a stolen form) is refused
    /// even after Gatehouse's re-post, and leaves the rightful browser's login intact.
    @Test func aFormPostResponseFromAnotherBrowserIsRefused() async throws {
        try await withFederation(provider: { op in
            var spec = OIDCProviderSpec(preset: .oidc, clientID: op.clientID)
            spec.issuer = op.issuer
            spec.responseMode = .formPost
            return (spec, op.clientSecret)
        }) { (f: Federation, browser: TestBrowser) async throws in
            let start = try await browser.send(f.authorizeURL())
            let upstreamURL = try #require(start.location)
            let atUpstream = try await browser.send(upstreamURL, withCookies: false)
            let form = try #require(HTMLForm.first(in: atUpstream.body, pageURL: upstreamURL))
            try await withBrowsers(1) { others in
                let other = others[0]
                let crossSite = try await other.postForm(form.action, form.fields)
                let again = try #require(HTMLForm.first(in: crossSite.body, pageURL: form.action))
                let refused = try await other.send(again.action, method: .POST, headers: [("Content-Type", "application/x-www-form-urlencoded")], body: FormEncoding.encode(again.fields))
                #expect(refused.status == 400 && refused.location == nil, "\(refused.status)")
            }
            let back = try await f.postBack(form, browser)
            #expect(back.locationQuery["code"] != nil, "the rightful browser still completes its login")
        }
    }

    static func oauthSpec(_ preset: ProviderPreset, _ op: TestOpenIDProvider) -> OIDCProviderSpec {
        var spec = OIDCProviderSpec(preset: preset, clientID: op.clientID)
        spec.issuer = op.issuer
        spec.authorizationEndpoint = op.endpoints.authorization
        spec.tokenEndpoint = op.endpoints.token
        spec.userinfoEndpoint = op.endpoints.userinfo
        spec.emailsEndpoint = op.endpoints.emails
        return spec
    }
}
