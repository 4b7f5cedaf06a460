import Foundation
import Testing
import GatehouseCore
import GatehouseJOSE
import GatehouseOIDC
import GatehouseServer
import GatehouseTestSupport

/// A provider set to keep its upstream login: every refresh of Gatehouse's tokens renews it at the
/// upstream and re-reads the user's claims; when the upstream refuses, the family is revoked.
@Suite struct UpstreamRefresh {
    static let backends = TestDatabases.available

    func withKeptUpstream(_ backend: TestDatabases.Backend, _ body: (Federation, TestBrowser) async throws -> Void) async throws {
        try await withFederation(backend, provider: { op in
            var spec = OIDCProviderSpec(preset: .oidc, clientID: op.clientID)
            spec.issuer = op.issuer
            spec.upstreamRefresh = true
            return (spec, op.clientSecret)
        }) { (f: Federation, browser: TestBrowser) async throws in
            for g in ["admins", "staff"] { try await f.gatehouse.admin.createGroup(pool: f.pool, name: g) }
            var mapping = AttributeMapping.oidcStandard
            mapping = AttributeMapping(rules: mapping.rules + [AttributeMapping.Rule(target: "groups", source: .attribute("groups"))])
            _ = try await f.gatehouse.admin.setMapping(pool: f.pool, provider: f.providerName, mapping: mapping)
            f.upstream.update { $0.claims["groups"] = .array([.string("admins"), .string("staff")]) }
            try await body(f, browser)
        }
    }

    static func groups(_ reply: TestBrowser.Reply) throws -> JSONValue? {
        try UnverifiedJWS(compact: try #require(reply.json["id_token"]?.stringValue)).claims["groups"]
    }

    @Test(arguments: backends) func aGroupRemovedUpstreamIsRemovedAtTheNextRefresh(_ backend: TestDatabases.Backend) async throws {
        try await withKeptUpstream(backend) { f, browser in
            let (claims, tokens) = try await f.signIn(browser)
            #expect(claims["groups"] == .array([.string("admins"), .string("staff")]))
            let refreshToken = try #require(tokens["refresh_token"]?.stringValue)
            // The upstream's refresh token is kept sealed, never in the clear.
            let stored = try await f.directory.rows(table: "refresh_families", column: "body")
            #expect(stored.contains { $0.contains("sealedRefreshToken") })

            f.upstream.update { $0.claims["groups"] = .array([.string("staff")]); $0.claims["name"] = .string("Ada King") }
            let before = f.upstream.tokenRequestCount
            let refreshed = try await f.refresh(browser, refreshToken)
            #expect(refreshed.status == 200, "\(refreshed.body)")
            #expect(f.upstream.tokenRequestCount == before + 1, "the upstream was asked")
            #expect(try Self.groups(refreshed) == .array([.string("staff")]))
            let idToken = try UnverifiedJWS(compact: try #require(refreshed.json["id_token"]?.stringValue))
            #expect(idToken.claims["name"]?.stringValue == "Ada King")

            // The upstream rotated its refresh token; the next refresh uses the new one.
            let next = try #require(refreshed.json["refresh_token"]?.stringValue)
            let again = try await f.refresh(browser, next)
            #expect(again.status == 200, "\(again.body)")
        }
    }

    @Test(arguments: backends) func aUserRevokedUpstreamLosesTheFamily(_ backend: TestDatabases.Backend) async throws {
        try await withKeptUpstream(backend) { f, browser in
            let (_, tokens) = try await f.signIn(browser)
            let refreshToken = try #require(tokens["refresh_token"]?.stringValue)
            let accessToken = try #require(tokens["access_token"]?.stringValue)
            f.upstream.revokeRefreshTokens(subject: f.upstream.settings.subject)
            let refused = try await f.refresh(browser, refreshToken)
            #expect(refused.status == 400)
            #expect(refused.json["error"]?.stringValue == "invalid_grant")
            // The family is revoked: its access tokens stop working and the token cannot be retried.
            let info = try await browser.send("\(f.issuer)/oauth2/userInfo", headers: [("Authorization", "Bearer \(accessToken)")], withCookies: false)
            #expect(info.status == 401)
            let retried = try await f.refresh(browser, refreshToken)
            #expect(retried.json["error"]?.stringValue == "invalid_grant")
        }
    }

    @Test func anUnreachableUpstreamSpendsNothing() async throws {
        try await withKeptUpstream(.sqlite) { f, browser in
            let (_, tokens) = try await f.signIn(browser)
            let refreshToken = try #require(tokens["refresh_token"]?.stringValue)
            await f.upstream.stop()
            let unavailable = try await f.refresh(browser, refreshToken)
            #expect(unavailable.status == 503)
            #expect(unavailable.json["error"]?.stringValue == "temporarily_unavailable")
            // The same token is still good once the upstream is back; here it is not, so the
            // family must still be live: its access token still works.
            let accessToken = try #require(tokens["access_token"]?.stringValue)
            let info = try await browser.send("\(f.issuer)/oauth2/userInfo", headers: [("Authorization", "Bearer \(accessToken)")], withCookies: false)
            #expect(info.status == 200)
        }
    }

    @Test func anUpstreamOutageIsNotARefusal() async throws {
        try await withKeptUpstream(.sqlite) { f, browser in
            let (_, tokens) = try await f.signIn(browser)
            let refreshToken = try #require(tokens["refresh_token"]?.stringValue)
            f.upstream.update { $0.tokenOutage = true }
            let unavailable = try await f.refresh(browser, refreshToken)
            #expect(unavailable.status == 503 && unavailable.json["error"]?.stringValue == "temporarily_unavailable")
            // Back up: the same token works, nothing was spent or revoked.
            f.upstream.update { $0.tokenOutage = false }
            let refreshed = try await f.refresh(browser, refreshToken)
            #expect(refreshed.status == 200, "\(refreshed.body)")
        }
    }

    @Test func aRefreshWithoutAnIDTokenIsReadFromUserinfoUnlessTenantRulesNeedOne() async throws {
        try await withKeptUpstream(.sqlite) { f, browser in
            let (_, tokens) = try await f.signIn(browser)
            f.upstream.update { $0.refreshWithoutIDToken = true; $0.claims["groups"] = .array([.string("staff")]) }
            let refreshed = try await f.refresh(browser, try #require(tokens["refresh_token"]?.stringValue))
            #expect(refreshed.status == 200, "\(refreshed.body)")
            #expect(try Self.groups(refreshed) == .array([.string("staff")]))
        }
        try await withFederation(flavor: .microsoft, provider: { op in
            var spec = OIDCProviderSpec(preset: .microsoft, clientID: op.clientID)
            spec.issuer = op.configuredIssuer
            spec.upstreamRefresh = true
            return (spec, op.clientSecret)
        }) { (f: Federation, browser: TestBrowser) async throws in
            let (_, tokens) = try await f.signIn(browser)
            f.upstream.update { $0.refreshWithoutIDToken = true }
            let refused = try await f.refresh(browser, try #require(tokens["refresh_token"]?.stringValue))
            #expect(refused.json["error"]?.stringValue == "invalid_grant", "the tenant can only be checked on a signed token")
        }
    }

    @Test func withoutUpstreamRefreshTheUpstreamIsNotAsked() async throws {
        try await withFederation { (f: Federation, browser: TestBrowser) async throws in
            f.upstream.update { $0.issueRefreshTokens = true }
            let (_, tokens) = try await f.signIn(browser)
            let before = f.upstream.tokenRequestCount
            let refreshed = try await f.refresh(browser, try #require(tokens["refresh_token"]?.stringValue))
            #expect(refreshed.status == 200)
            #expect(f.upstream.tokenRequestCount == before)
            #expect(try await f.directory.rows(table: "refresh_families", column: "body").allSatisfy { !$0.contains("sealedRefreshToken") })
        }
    }
}
