public import Foundation
public import GatehouseCore
import GatehouseJOSE
import Synchronization

/// The OpenID Connect relying-party adapter: authorization code flow with PKCE S256, `state` and
/// `nonce` bound to the server's login transaction, `query` or `form_post` responses, ID token
/// validation per OIDC Core §3.1.3.7 with the preset's quirks (Google's issuer spelling and `hd`,
/// Microsoft's tenant issuers, Apple's client secret and first-login name), optional userinfo
/// whose `sub` must match, and upstream refresh.
///
/// Thread-safe. Holds the provider's discovery and JWKS caches, shared by concurrent logins.
public final class OIDCAdapter: FederationAdapter, UpstreamRefreshing {
    public let providerName: String
    public let settings: OIDCProviderSettings
    public let credential: ClientCredential
    private let http: UpstreamHTTP
    private let clock: any GatehouseClock
    private let cachePolicy: CachePolicy
    private let basePolicy: IDTokenPolicy
    public let discovery: DiscoveryCache
    private let jwksCaches = Mutex<[(uri: String, cache: JWKSCache)]>([])
    /// A provider's JWKS URI rarely changes; a few are kept, the oldest dropped first.
    static let maximumJWKSCaches = 4

    public init(providerName: String, settings: OIDCProviderSettings, credential: ClientCredential, http: UpstreamHTTP, clock: any GatehouseClock, cachePolicy: CachePolicy = CachePolicy()) {
        self.providerName = providerName
        self.settings = settings
        self.credential = credential
        self.http = http
        self.clock = clock
        self.cachePolicy = cachePolicy
        self.basePolicy = Self.basePolicy(settings)
        self.discovery = DiscoveryCache(settings: settings, http: http, clock: clock, policy: cachePolicy)
    }

    /// Fetches discovery and JWKS ahead of the first login (called by the warm-up service).
    public func warm() async throws {
        let doc = try await discovery.current()
        _ = try await jwks(for: doc).keys(refreshingFor: nil)
    }

    public func jwks(for doc: DiscoveryDocument) -> JWKSCache {
        jwksCaches.withLock { caches in
            if let found = caches.first(where: { $0.uri == doc.jwksURI }) { return found.cache }
            let made = JWKSCache(jwksURI: doc.jwksURI, http: http, clock: clock, policy: cachePolicy)
            caches.append((doc.jwksURI, made))
            if caches.count > Self.maximumJWKSCaches { caches.removeFirst() }
            return made
        }
    }

    public func begin(_ state: UpstreamLoginState) async throws -> URL {
        let doc = try await discovery.current()
        return try AuthorizationFlow.requestURL(endpoint: doc.authorizationEndpoint, settings: settings, state: state, openID: true)
    }

    /// The ID token policy of this provider for one login (`nonce`) or one refresh (`subject`).
    public func policy(nonce: String?, subject: String? = nil) -> IDTokenPolicy {
        var p = basePolicy
        p.nonce = nonce
        p.expectedSubject = subject
        return p
    }

    /// The provider's policy without a login's nonce or a refresh's subject, made once.
    static func basePolicy(_ settings: OIDCProviderSettings) -> IDTokenPolicy {
        var p = IDTokenPolicy(issuer: settings.issuer, clientID: settings.clientID, allowedAlgorithms: Set(settings.allowedAlgorithms), clockSkew: TimeInterval(settings.clockSkewSeconds), nonce: nil)
        p.issuerTemplate = settings.microsoftIssuerTemplate
        p.allowedTenants = Set(settings.allowedTenants ?? [])
        if settings.microsoftTenantSegment == "organizations" { p.excludedTenants = [microsoftConsumerTenant] }
        if settings.kind == .google, let host = URL(string: settings.issuer)?.host {
            // Google documents both spellings of its issuer in ID tokens.
            p.issuerAliases = [host]
        }
        if let hd = settings.hostedDomain { p.requiredClaims["hd"] = hd }
        return p
    }

    static let microsoftConsumerTenant = ProviderPreset.microsoftConsumerTenant

    func isIssuer(_ iss: String) -> Bool {
        if let template = basePolicy.issuerTemplate {
            let parts = template.components(separatedBy: "{tenantid}")
            guard parts.count == 2, iss.hasPrefix(parts[0]), iss.hasSuffix(parts[1]), iss.count > parts[0].count + parts[1].count else { return false }
            return OIDCProviderSettings.isTenantID(String(iss.dropFirst(parts[0].count).dropLast(parts[1].count)))
        }
        return iss == settings.issuer
    }

    public func complete(_ callback: UpstreamCallback, state: UpstreamLoginState, now: Date) async throws -> VerifiedIdentity {
        let doc = try await discovery.current()
        let code = try AuthorizationFlow.code(
            from: callback, state: state, settings: settings, isIssuer: isIssuer, issAdvertised: doc.authorizationResponseIssParameterSupported == true)
        let endpoint = TokenEndpoint(settings: settings, credential: credential, http: http)
        let json = try await endpoint.call(doc.tokenEndpoint, form: AuthorizationFlow.codeExchangeForm(code: code, state: state), now: now)
        guard let idToken = json["id_token"]?.stringValue else {
            throw UpstreamError(.verification, "token response", failures: [.init(check: "id_token", reason: "token response has no id_token")])
        }
        var claims = try await verify(idToken, doc: doc, policy: policy(nonce: state.nonce), now: now)
        let verified = claims
        if settings.useUserInfo {
            try await addUserInfo(to: &claims, doc: doc, accessToken: json["access_token"]?.stringValue, subject: verified["sub"]?.stringValue ?? "")
        }
        if settings.kind == .apple, callback.viaPost, let user = callback.parameters["user"] {
            claims["user"] = Self.appleName(user)
        }
        let refresh = settings.keepsUpstreamRefreshToken ? json["refresh_token"]?.stringValue.map(RedactedSecret.init) : nil
        return identity(claims: claims, verified: verified, refreshToken: refresh, now: now)
    }

    public func refresh(token: RedactedSecret, issuer: String, subject: String, now: Date) async throws -> VerifiedIdentity {
        let doc = try await discovery.current()
        let endpoint = TokenEndpoint(settings: settings, credential: credential, http: http)
        let json = try await endpoint.call(doc.tokenEndpoint, form: [("grant_type", "refresh_token"), ("refresh_token", token.value)], now: now)
        var claims: [String: JSONValue]
        var verified: [String: JSONValue]
        if let idToken = json["id_token"]?.stringValue {
            // OpenID Connect Core §12.2: the same iss, sub and aud as at login; no nonce.
            verified = try await verify(idToken, doc: doc, policy: policy(nonce: nil, subject: subject), now: now)
            guard !isMultiTenant || verified["iss"]?.stringValue == issuer else {
                throw UpstreamError(.verification, "refreshed ID token", failures: [.init(check: "iss", reason: "issuer differs from the original login's")])
            }
            claims = verified
            if settings.useUserInfo {
                try await addUserInfo(to: &claims, doc: doc, accessToken: json["access_token"]?.stringValue, subject: subject)
            }
        } else {
            // Tenant and domain rules are checked on a signed token; without one, nothing passes.
            if isMultiTenant || !basePolicy.allowedTenants.isEmpty || !basePolicy.requiredClaims.isEmpty {
                throw UpstreamError(.verification, "refresh", failures: [.init(check: "id_token", reason: "the refresh answered no ID token to check the tenant or domain rules on")])
            }
            // No new ID token: the claims come from userinfo with the fresh access token.
            verified = ["sub": .string(subject), "iss": .string(issuer)]
            claims = verified
            try await addUserInfo(to: &claims, doc: doc, accessToken: json["access_token"]?.stringValue, subject: subject)
        }
        let next = json["refresh_token"]?.stringValue.map(RedactedSecret.init) ?? token
        return identity(claims: claims, verified: verified, refreshToken: next, now: now)
    }

    var isMultiTenant: Bool { basePolicy.issuerTemplate != nil }

    private func verify(_ idToken: String, doc: DiscoveryDocument, policy: IDTokenPolicy, now: Date) async throws -> [String: JSONValue] {
        do {
            return try await IDTokenVerifier.verify(idToken, keys: jwks(for: doc), policy: policy, now: now).claims
        } catch let e as VerificationError {
            throw UpstreamError(.verification, "ID token", failures: e.failures)
        }
    }

    private func addUserInfo(to claims: inout [String: JSONValue], doc: DiscoveryDocument, accessToken: String?, subject: String) async throws {
        guard let endpoint = doc.userinfoEndpoint, let accessToken else {
            throw UpstreamError(.misconfigured, "userinfo is needed but the provider has no userinfo endpoint or sent no access token")
        }
        let info = try await http.get(endpoint, bearer: accessToken)
        guard info.status == 200, let extra = try? JSONValue.parseObject(info.body) else {
            throw UpstreamError(.unreachable, "userinfo answered HTTP \(info.status) or invalid JSON")
        }
        guard extra["sub"]?.stringValue == subject else {
            throw UpstreamError(.verification, "userinfo", failures: [.init(check: "userinfo_sub", reason: "userinfo sub does not match the ID token")])
        }
        // Unsigned userinfo adds profile claims; it never overrides what the signed ID token
        // says about the token itself or the authentication.
        for (k, v) in extra where !Self.idTokenOnlyClaims.contains(k) { claims[k] = v }
    }

    /// Apple posts the person's name, once, as a JSON `user` form field beside the code. It is not
    /// signed, so only the name is read from it; the email comes from the ID token alone.
    static func appleName(_ text: String) -> JSONValue? {
        guard text.utf8.count <= 4096, let object = try? JSONValue.parseObject(Data(text.utf8)), case .object(let name)? = object["name"] else { return nil }
        var kept: [String: JSONValue] = [:]
        for key in ["firstName", "lastName"] {
            if let v = name[key]?.stringValue, !v.isEmpty, v.utf8.count <= 256 { kept[key] = .string(v) }
        }
        return kept.isEmpty ? nil : .object(["name": .object(kept)])
    }

    static let idTokenOnlyClaims: Set<String> = ["iss", "aud", "sub", "exp", "iat", "nbf", "nonce", "azp", "auth_time", "acr", "amr", "sid", "jti", "at_hash", "c_hash", "tid"]

    /// Builds the verified identity: profile claims from `claims`, the authentication context only
    /// from the signed ID token, and an `auth_time` kept only if it is not in the future. A
    /// multi-tenant Microsoft identity lives under its tenant's issuer; every other under the
    /// configured one (so Google's two issuer spellings are one namespace).
    func identity(claims: [String: JSONValue], verified: [String: JSONValue], refreshToken: RedactedSecret?, now: Date) -> VerifiedIdentity {
        Self.identity(
            provider: providerName, issuer: isMultiTenant ? (verified["iss"]?.stringValue ?? settings.issuer) : settings.issuer,
            claims: claims, verified: verified, now: now, skew: TimeInterval(settings.clockSkewSeconds), refreshToken: refreshToken)
    }

    static func identity(provider: String, issuer: String, claims: [String: JSONValue], verified: [String: JSONValue], now: Date, skew: TimeInterval, refreshToken: RedactedSecret? = nil) -> VerifiedIdentity {
        let amr: [String] = if case .array(let a) = verified["amr"] { a.compactMap(\.stringValue) } else { [] }
        let authTime = verified["auth_time"]?.numberValue.flatMap { t -> Date? in
            t > 0 && t <= now.timeIntervalSince1970 + skew ? Date(timeIntervalSince1970: t) : nil
        }
        return VerifiedIdentity(
            providerName: provider, providerKind: .oidc, upstreamIssuer: issuer,
            upstreamSubject: verified["sub"]?.stringValue ?? "",
            attributes: JSONValue.flatten(claims),
            authTime: authTime,
            acr: verified["acr"]?.stringValue, amr: amr, sessionIndex: verified["sid"]?.stringValue,
            upstreamRefreshToken: refreshToken)
    }
}
