public import Foundation
public import GatehouseCore
import GatehouseJOSE
import Logging

/// The OpenID Connect relying-party adapter: authorization code flow with PKCE S256, `state` and
/// `nonce` bound to the server's login transaction, ID token validation per OIDC Core §3.1.3.7, and
/// optional userinfo whose `sub` must match.
///
/// Thread-safe. Holds the provider's discovery and JWKS caches, shared by concurrent logins.
public final class OIDCAdapter: FederationAdapter {
    public let providerName: String
    public let settings: OIDCProviderSettings
    private let clientSecret: String?
    private let http: UpstreamHTTP
    private let clock: any GatehouseClock
    let discovery: DiscoveryCache
    private let jwksCaches = JWKSCacheBox()

    public init(providerName: String, settings: OIDCProviderSettings, clientSecret: String?, http: UpstreamHTTP, clock: any GatehouseClock) {
        self.providerName = providerName
        self.settings = settings
        self.clientSecret = clientSecret
        self.http = http
        self.clock = clock
        self.discovery = DiscoveryCache(issuer: settings.issuer, http: http, clock: clock)
    }

    /// Fetches discovery and JWKS ahead of the first login (called by the warm-up service).
    public func warm() async throws {
        let doc = try await discovery.current()
        _ = try await jwks(for: doc).keys(refreshingFor: nil)
    }

    func jwks(for doc: DiscoveryDocument) async -> JWKSCache {
        await jwksCaches.cache(for: doc.jwksURI) { JWKSCache(jwksURI: doc.jwksURI, http: http, clock: clock) }
    }

    public func begin(_ state: UpstreamLoginState) async throws -> URL {
        let doc = try await discovery.current()
        guard var components = URLComponents(string: doc.authorizationEndpoint) else {
            throw UpstreamError(.misconfigured, "authorization endpoint is not a URL")
        }
        var items = components.queryItems ?? []
        items += [
            URLQueryItem(name: "response_type", value: "code"),
            URLQueryItem(name: "client_id", value: settings.clientID),
            URLQueryItem(name: "redirect_uri", value: state.callbackURL),
            URLQueryItem(name: "scope", value: settings.scopes.joined(separator: " ")),
            URLQueryItem(name: "state", value: state.state),
            URLQueryItem(name: "nonce", value: state.nonce),
            URLQueryItem(name: "code_challenge", value: Secrets.pkceChallenge(verifier: state.pkceVerifier)),
            URLQueryItem(name: "code_challenge_method", value: "S256"),
        ]
        if state.forceFreshLogin {
            // max_age=0 also obliges the provider to state auth_time (OpenID Connect Core 3.1.2.1).
            items += [URLQueryItem(name: "prompt", value: "login"), URLQueryItem(name: "max_age", value: "0")]
        }
        components.percentEncodedQuery = items.map { FormEncoding.escape($0.name) + "=" + FormEncoding.escape($0.value ?? "") }.joined(separator: "&")
        guard let url = components.url else { throw UpstreamError(.misconfigured, "cannot build the authorization URL") }
        return url
    }

    public func complete(_ callback: UpstreamCallback, state: UpstreamLoginState, now: Date) async throws -> VerifiedIdentity {
        let p = callback.parameters
        let doc = try await discovery.current()
        // RFC 9207: the authorization response names its issuer; a mismatch is a mix-up attack.
        if let iss = p["iss"] {
            guard iss == settings.issuer else { throw UpstreamError(.verification, "authorization response", failures: [.init(check: "iss_param", reason: "authorization response iss \(iss) is not \(settings.issuer)")]) }
        } else if doc.authorizationResponseIssParameterSupported == true {
            throw UpstreamError(.verification, "authorization response", failures: [.init(check: "iss_param", reason: "provider advertises iss in authorization responses but sent none")])
        }
        guard let returnedState = p["state"], Secrets.constantTimeEquals(returnedState, state.state) else {
            throw UpstreamError(.verification, "authorization response", failures: [.init(check: "state", reason: "state does not match the login transaction")])
        }
        if let error = p["error"] {
            let code = String(error.prefix(64).filter { $0.isLetter || $0 == "_" })
            throw UpstreamError(.upstreamRefused, code.isEmpty ? "error" : code)
        }
        guard let code = p["code"], !code.isEmpty, code.utf8.count <= 4096 else {
            throw UpstreamError(.verification, "authorization response", failures: [.init(check: "code", reason: "no authorization code")])
        }

        // Code exchange.
        var form: [(String, String)] = [
            ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", state.callbackURL),
            ("code_verifier", state.pkceVerifier),
        ]
        var basic: (String, String)? = nil
        switch settings.clientAuthentication {
        case .clientSecretBasic:
            basic = (settings.clientID, clientSecret ?? "")
        case .clientSecretPost:
            form += [("client_id", settings.clientID), ("client_secret", clientSecret ?? "")]
        case .none:
            form.append(("client_id", settings.clientID))
        }
        let response = try await http.postForm(doc.tokenEndpoint, form: form, basicAuth: basic)
        guard let json = try? JSONDecoder().decode([String: JSONValue].self, from: response.body) else {
            throw UpstreamError(.unreachable, "token endpoint answered HTTP \(response.status) without JSON")
        }
        guard response.status == 200 else {
            let err = json["error"]?.stringValue.map { String($0.prefix(64)) } ?? "HTTP \(response.status)"
            throw UpstreamError(.upstreamRefused, "token endpoint refused the code: \(err)")
        }
        guard let idToken = json["id_token"]?.stringValue else {
            throw UpstreamError(.verification, "token response", failures: [.init(check: "id_token", reason: "token response has no id_token")])
        }
        if let type = json["token_type"]?.stringValue, type.lowercased() != "bearer" {
            throw UpstreamError(.verification, "token response", failures: [.init(check: "token_type", reason: "token_type \(type) is not Bearer")])
        }

        let policy = IDTokenPolicy(issuer: settings.issuer, clientID: settings.clientID, allowedAlgorithms: Set(settings.allowedAlgorithms), clockSkew: TimeInterval(settings.clockSkewSeconds), nonce: state.nonce)
        let verified: VerifiedIDToken
        do {
            verified = try await IDTokenVerifier.verify(idToken, keys: await jwks(for: doc), policy: policy, now: now)
        } catch let e as VerificationError {
            throw UpstreamError(.verification, "ID token", failures: e.failures)
        }

        var claims = verified.claims
        if settings.useUserInfo {
            guard let endpoint = doc.userinfoEndpoint, let accessToken = json["access_token"]?.stringValue else {
                throw UpstreamError(.misconfigured, "userinfo is enabled but the provider has no userinfo endpoint or sent no access token")
            }
            let info = try await http.get(endpoint, bearer: accessToken)
            guard info.status == 200, let extra = try? JSONDecoder().decode([String: JSONValue].self, from: info.body) else {
                throw UpstreamError(.unreachable, "userinfo answered HTTP \(info.status) or invalid JSON")
            }
            guard extra["sub"]?.stringValue == verified.subject else {
                throw UpstreamError(.verification, "userinfo", failures: [.init(check: "userinfo_sub", reason: "userinfo sub does not match the ID token")])
            }
            // Unsigned userinfo adds profile claims; it never overrides what the signed ID token
            // says about the token itself or the authentication.
            for (k, v) in extra where !Self.idTokenOnlyClaims.contains(k) { claims[k] = v }
        }
        return Self.identity(provider: providerName, issuer: settings.issuer, claims: claims, verified: verified.claims, now: now, skew: TimeInterval(settings.clockSkewSeconds))
    }

    static let idTokenOnlyClaims: Set<String> = ["iss", "aud", "sub", "exp", "iat", "nbf", "nonce", "azp", "auth_time", "acr", "amr", "sid", "jti", "at_hash", "c_hash"]

    /// Builds the verified identity: profile claims from `claims`, the authentication context only
    /// from the signed ID token, and an `auth_time` kept only if it is not in the future.
    static func identity(provider: String, issuer: String, claims: [String: JSONValue], verified: [String: JSONValue], now: Date, skew: TimeInterval) -> VerifiedIdentity {
        let amr: [String] = if case .array(let a) = verified["amr"] { a.compactMap(\.stringValue) } else { [] }
        let authTime = verified["auth_time"]?.numberValue.flatMap { t -> Date? in
            t > 0 && t <= now.timeIntervalSince1970 + skew ? Date(timeIntervalSince1970: t) : nil
        }
        return VerifiedIdentity(
            providerName: provider, providerKind: .oidc, upstreamIssuer: issuer,
            upstreamSubject: verified["sub"]?.stringValue ?? "",
            attributes: JSONValue.flatten(claims),
            authTime: authTime,
            acr: verified["acr"]?.stringValue, amr: amr, sessionIndex: verified["sid"]?.stringValue)
    }
}

/// Keeps one JWKS cache per JWKS URI for an adapter.
actor JWKSCacheBox {
    private var caches: [String: JWKSCache] = [:]
    func cache(for uri: String, make: () -> JWKSCache) -> JWKSCache {
        if let c = caches[uri] { return c }
        let c = make()
        caches[uri] = c
        return c
    }
}
