public import Foundation
public import GatehouseCore
import GatehouseJOSE

/// What `gatehouse oidc verify --provider` does: checks a configured provider against the live
/// upstream and names the exact cause of every misconfiguration it finds.
public enum ProviderCheck {
    public struct Finding: Sendable, CustomStringConvertible {
        public enum Status: String, Sendable { case ok = "ok", warning = "WARN", failed = "FAIL" }
        public let status: Status
        public let check: String
        public let detail: String
        public var description: String { "\(status.rawValue.padding(toLength: 4, withPad: " ", startingAt: 0)) \(check): \(detail)" }
    }

    /// Runs every check; `callbackURL` is the redirect URI registered upstream. The client
    /// credentials are probed by redeeming a code that cannot exist: a provider answers
    /// `invalid_grant` when it accepted the client and `invalid_client` when it did not.
    public static func run(settings: OIDCProviderSettings, secret: String?, callbackURL: String, http: UpstreamHTTP, now: Date) async -> [Finding] {
        var findings: [Finding] = []
        func add(_ status: Finding.Status, _ check: String, _ detail: String) { findings.append(Finding(status: status, check: check, detail: detail)) }

        do { try settings.validate() } catch { add(.failed, "settings", "\(error)") }
        let credential: ClientCredential
        do {
            credential = try ClientCredential.make(settings: settings, secret: secret)
            add(.ok, "client_auth", settings.kind == .apple ? "Apple client secret JWT (team \(settings.apple?.teamID ?? "?"), key \(settings.apple?.keyID ?? "?"))" : settings.clientAuthentication.rawValue)
        } catch {
            add(.failed, "client_auth", "\(error)")
            return findings
        }

        let tokenEndpoint: String
        if let endpoints = settings.endpoints {
            add(.ok, "endpoints", "OAuth 2.0 without ID tokens; user ID at \(settings.subjectClaim ?? "sub") of \(endpoints.userinfo)")
            tokenEndpoint = endpoints.token
        } else {
            let doc: DiscoveryDocument
            do {
                doc = try await DiscoveryDocument.fetch(settings: settings, http: http)
                add(.ok, "discovery", "issuer \(doc.issuer)")
            } catch {
                add(.failed, "discovery", "\(error)")
                return findings
            }
            tokenEndpoint = doc.tokenEndpoint
            if let algs = doc.idTokenSigningAlgValuesSupported {
                let shared = Set(algs).intersection(settings.allowedAlgorithms)
                if shared.isEmpty { add(.failed, "alg", "the provider signs ID tokens with \(algs.sorted()), none of the allowed \(settings.allowedAlgorithms)") }
                else { add(.ok, "alg", "allowed and offered: \(shared.sorted())") }
            }
            do {
                let keys = try await JWKSCache(jwksURI: doc.jwksURI, http: http, clock: SystemClock()).keys(refreshingFor: nil)
                let fitting = keys.filter { k in settings.allowedAlgorithms.contains { IDTokenVerifier.fits(k.jwk, $0) } }
                if fitting.isEmpty { add(.failed, "jwks", "\(keys.count) usable keys at \(doc.jwksURI), none for \(settings.allowedAlgorithms)") }
                else { add(.ok, "jwks", "\(fitting.count) key(s) for the allowed algorithms") }
            } catch {
                add(.failed, "jwks", "\(error)")
            }
            if settings.mode == .formPost, let modes = doc.responseModesSupported, !modes.contains("form_post") {
                add(.failed, "response_mode", "form_post is asked for but the provider offers \(modes)")
            }
            if let methods = doc.tokenEndpointAuthMethodsSupported {
                let ours = settings.kind == .apple ? "client_secret_post" : settings.clientAuthentication.rawValue
                if !methods.contains(ours) { add(.failed, "client_auth", "\(ours) is not among the provider's \(methods)") }
            }
            if let pkce = doc.codeChallengeMethodsSupported, !pkce.contains("S256") {
                add(.warning, "pkce", "the provider does not advertise S256; PKCE is sent anyway")
            }
            if settings.useUserInfo, doc.userinfoEndpoint == nil { add(.failed, "userinfo", "userinfo is enabled but the provider has no userinfo endpoint") }
            if settings.keepsUpstreamRefreshToken, settings.kind != .google, !settings.scopes.contains("offline_access") {
                add(.warning, "upstream_refresh", "most providers issue refresh tokens only for the offline_access scope, which is not requested")
            }
            if settings.keepsUpstreamRefreshToken, settings.kind == .google, settings.authorizationParameters?["access_type"] != "offline" {
                add(.warning, "upstream_refresh", "Google issues refresh tokens only with access_type=offline")
            }
        }

        // The credential probe.
        do {
            let endpoint = TokenEndpoint(settings: settings, credential: credential, http: http)
            _ = try await endpoint.call(tokenEndpoint, form: [
                ("grant_type", "authorization_code"), ("code", "gatehouse-check-" + Secrets.randomToken(bytes: 8)), ("redirect_uri", callbackURL),
            ], now: now)
            add(.warning, "credentials", "the token endpoint accepted a code that cannot exist")
        } catch let e as UpstreamError where e.upstreamCode != nil {
            let answer = e.reason
            if TokenEndpoint.clientRefusals.contains(e.upstreamCode ?? "") {
                add(.failed, "credentials", "the provider refused the client's credentials: \(answer)")
            } else if ["invalid_grant", "bad_verification_code"].contains(e.upstreamCode ?? "") {
                add(.ok, "credentials", "accepted (a made-up code was refused: \(answer))")
            } else {
                add(.warning, "credentials", "could not tell: \(answer)")
            }
        } catch {
            add(.failed, "credentials", "\(error)")
        }
        return findings
    }
}
