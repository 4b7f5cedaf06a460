import Foundation
import Testing
import GatehouseCore
import GatehouseOIDC
import GatehouseServer
import GatehouseTestSupport

/// The relying-party checks of the OpenID Foundation's Basic, Config and key-rotation RP test plans,
/// plus RFC 9207's mix-up defence and the refusal of keys named by the token itself: each a case
/// with its expected verdict, run end to end against the loopback provider.
@Suite struct RelyingPartyConformance {
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        var misbehaviour = TestOpenIDProvider.Misbehaviour.none
        var configure: @Sendable (inout OIDCProviderSpec) -> Void = { _ in }
        var upstream: @Sendable (inout TestOpenIDProvider.Settings) -> Void = { _ in }
        /// The provider verifies `private_key_jwt` assertions with the key Gatehouse publishes.
        var clientKey = false
        /// The provider publishes a second key before the login.
        var rotateFirst = false
        /// nil: the login succeeds. Otherwise the app's error and the check named in Gatehouse's log.
        var refused: (appError: String, check: String)? = nil
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "a correct ID token is accepted"),
        Case(name: "discovery issuer mismatch", upstream: { $0.discoveryIssuer = "http://127.0.0.1:1/other" }, refused: ("server_error", "discovery issuer")),
        Case(name: "signature by another key", misbehaviour: .badSignature, refused: ("access_denied", "signature")),
        Case(name: "iss of another issuer", misbehaviour: .wrongIssuer, refused: ("access_denied", "iss")),
        Case(name: "aud without the client", misbehaviour: .wrongAudience, refused: ("access_denied", "aud")),
        Case(name: "azp of another client", misbehaviour: .wrongAzp, refused: ("access_denied", "azp")),
        Case(name: "several audiences and no azp", misbehaviour: .extraAudienceNoAzp, refused: ("access_denied", "azp")),
        Case(name: "exp in the past", misbehaviour: .expired, refused: ("access_denied", "exp")),
        Case(name: "iat in the future", misbehaviour: .futureIssuedAt, refused: ("access_denied", "iat")),
        Case(name: "nonce of another request", misbehaviour: .wrongNonce, refused: ("access_denied", "nonce")),
        Case(name: "nonce missing", misbehaviour: .missingNonce, refused: ("access_denied", "nonce")),
        Case(name: "sub missing", misbehaviour: .missingSubject, refused: ("access_denied", "sub")),
        Case(name: "kid absent and the JWKS holds one key", misbehaviour: .noKid),
        Case(name: "kid absent and the JWKS holds two keys", misbehaviour: .noKid, rotateFirst: true, refused: ("access_denied", "kid")),
        Case(name: "iat missing", misbehaviour: .missingIssuedAt, refused: ("access_denied", "iat")),
        Case(name: "alg none", misbehaviour: .algNone, refused: ("access_denied", "alg")),
        Case(name: "HS256 keyed with the client secret", misbehaviour: .hmac, refused: ("access_denied", "alg")),
        Case(name: "jwk header with the signer's own key", misbehaviour: .embeddedKey, refused: ("access_denied", "header parameter jwk")),
        Case(name: "jku header", misbehaviour: .jkuHeader, refused: ("access_denied", "header parameter jku")),
        Case(name: "x5u header", misbehaviour: .x5uHeader, refused: ("access_denied", "header parameter x5u")),
        Case(name: "x5c header", misbehaviour: .x5cHeader, refused: ("access_denied", "header parameter x5c")),
        Case(name: "userinfo sub of another user", configure: { $0.userinfo = true }, upstream: { $0.userinfoSubject = "someone-else" }, refused: ("access_denied", "userinfo_sub")),
        Case(name: "userinfo with the same sub", configure: { $0.userinfo = true }),
        Case(name: "client_secret_basic", configure: { $0.clientAuthentication = .clientSecretBasic }, upstream: { $0.clientAuth = .basic }),
        Case(name: "client_secret_post", configure: { $0.clientAuthentication = .clientSecretPost }, upstream: { $0.clientAuth = .post }),
        Case(name: "private_key_jwt", configure: { $0.clientAuthentication = .privateKeyJWT }, clientKey: true),
        Case(name: "client_secret_post where the provider wants basic", configure: { $0.clientAuthentication = .clientSecretPost }, upstream: { $0.clientAuth = .basic }, refused: ("server_error", "invalid_client")),
        Case(name: "form_post response mode", configure: { $0.responseMode = .formPost }),
        Case(name: "a query response when form_post was asked for", misbehaviour: .ignoresResponseMode, configure: { $0.responseMode = .formPost }, refused: ("access_denied", "response_mode")),
        Case(name: "RFC 9207 iss of another issuer", misbehaviour: .wrongIssParameter, refused: ("access_denied", "iss_param")),
        Case(name: "RFC 9207 iss advertised but missing", misbehaviour: .missingIssParameter, refused: ("access_denied", "iss_param")),
    ]

    @Test(arguments: cases) func relyingPartyCheck(_ c: Case) async throws {
        let sink = CapturingLogHandler.Sink()
        try await withFederation(logSink: sink, provider: { op in
            var spec = OIDCProviderSpec(preset: .oidc, clientID: op.clientID)
            spec.issuer = op.issuer
            c.configure(&spec)
            return (spec, spec.clientAuthentication == .privateKeyJWT ? nil : op.clientSecret)
        }) { (f: Federation, browser: TestBrowser) async throws in
            f.upstream.update { $0.misbehaviour = c.misbehaviour; c.upstream(&$0) }
            if c.rotateFirst { try f.upstream.rotateKey() }
            if c.clientKey { f.upstream.update { $0.clientAuth = .privateKeyJWT(jwksURL: "\(f.issuer)/providers/TestOP/jwks.json") } }
            let start = try await browser.send(f.authorizeURL())
            let back: TestBrowser.Reply
            if start.status == 302, start.location?.hasPrefix(f.upstream.issuer) == true {
                back = try await f.login(browser, url: f.authorizeURL()).appRedirect
            } else {
                back = start
            }
            let q = back.locationQuery
            if let (appError, check) = c.refused {
                #expect(q["code"] == nil)
                #expect(q["error"] == appError, "\(q)")
                #expect(back.headers.first(name: "Location") == nil, "a person sees a page, not a bare redirect")
                let rejected = sink.captured.filter { $0.contains("upstream login rejected") }
                #expect(rejected.contains { $0.contains(check) }, "the log names \(check): \(rejected)")
                #expect(try await f.directory.count(table: "users") == 0)
            } else {
                #expect(q["code"] != nil, "\(back.status) \(q) \(sink.captured.suffix(3))")
                #expect(q["state"] == "app-state" && q["iss"] == f.issuer)
            }
        }
    }

    /// Key rotation (the RP test plan's `rp-key-rotation-op-sign-key`): a token signed by a key
    /// published after the JWKS was cached is verified after exactly one refetch, and the next
    /// login needs none.
    @Test func aRotatedSigningKeyIsFetchedOnce() async throws {
        try await withFederation { (f: Federation, browser: TestBrowser) async throws in
            _ = try await f.signIn(browser)
            let fetched = f.upstream.jwksFetchCount
            try f.upstream.rotateKey()
            _ = try await f.signIn(browser)
            #expect(f.upstream.jwksFetchCount == fetched + 1)
            _ = try await f.signIn(browser)
            #expect(f.upstream.jwksFetchCount == fetched + 1)
        }
    }
}
