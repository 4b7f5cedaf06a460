public import Foundation
public import GatehouseCore
import Crypto

/// The adapter for OAuth 2.0 providers without ID tokens (Facebook, GitHub, a generic one): the
/// authorization code flow with PKCE and `state`, then the profile from the provider's user API
/// over TLS with the access token. The user's ID is read from `subjectClaim`, the claims from
/// `claimsPath`. Facebook's Graph calls carry `appsecret_proof`; GitHub's primary verified email
/// comes from its emails API, and `email_verified` is set only from what that API says.
///
/// Such a provider proves no authentication time, so it can never satisfy a fresh-login demand
/// (self-service linking); it has no upstream refresh.
public final class OAuth2Adapter: FederationAdapter {
    public let providerName: String
    public let settings: OIDCProviderSettings
    private let endpoints: OIDCProviderSettings.Endpoints
    public let credential: ClientCredential
    private let http: UpstreamHTTP

    public init(providerName: String, settings: OIDCProviderSettings, credential: ClientCredential, http: UpstreamHTTP) throws {
        guard let endpoints = settings.endpoints else { throw UpstreamError(.misconfigured, "an OAuth 2.0 provider needs its endpoints") }
        self.providerName = providerName
        self.settings = settings
        self.endpoints = endpoints
        self.credential = credential
        self.http = http
    }

    public func begin(_ state: UpstreamLoginState) async throws -> URL {
        try AuthorizationFlow.requestURL(endpoint: endpoints.authorization, settings: settings, state: state, openID: false)
    }

    public func complete(_ callback: UpstreamCallback, state: UpstreamLoginState, now: Date) async throws -> VerifiedIdentity {
        let code = try AuthorizationFlow.code(from: callback, state: state, settings: settings, isIssuer: { $0 == self.settings.issuer }, issAdvertised: false)
        let json = try await TokenEndpoint(settings: settings, credential: credential, http: http)
            .call(endpoints.token, form: AuthorizationFlow.codeExchangeForm(code: code, state: state), now: now)
        guard let accessToken = json["access_token"]?.stringValue, !accessToken.isEmpty else {
            throw UpstreamError(.verification, "token response", failures: [.init(check: "access_token", reason: "token response has no access_token")])
        }
        let profile = try await userAPI(endpoints.userinfo, accessToken: accessToken)
        guard case .object(var claims)? = Self.value(at: settings.claimsPath, in: .object(profile)) else {
            throw UpstreamError(.verification, "user API", failures: [.init(check: "claims", reason: "no object at \(settings.claimsPath ?? "the root") of the user API's answer")])
        }
        guard let subject = Self.value(at: settings.subjectClaim ?? "sub", in: .object(profile)).flatMap(Self.identifier), !subject.isEmpty, subject.utf8.count <= 255 else {
            throw UpstreamError(.verification, "user API", failures: [.init(check: "sub", reason: "no user ID (1-255 characters) at \(settings.subjectClaim ?? "sub")")])
        }
        if let emails = endpoints.emails {
            Self.applyVerifiedEmail(try await emailsAPI(emails, accessToken: accessToken), to: &claims)
        }
        return VerifiedIdentity(
            providerName: providerName, providerKind: .oidc, upstreamIssuer: settings.issuer, upstreamSubject: subject,
            attributes: JSONValue.flatten(claims), authTime: nil, acr: nil, amr: [], sessionIndex: nil)
    }

    /// GET on the provider's API with the access token; Facebook's calls also carry
    /// `appsecret_proof` (HMAC-SHA256 of the token under the app secret), which an app can require.
    private func get(_ url: String, accessToken: String) async throws -> UpstreamHTTP.Response {
        var target = url
        if settings.kind == .facebook, case .secret(let secret) = credential {
            let proof = HMAC<SHA256>.authenticationCode(for: Data(accessToken.utf8), using: SymmetricKey(data: Data(secret.value.utf8)))
            target += (url.contains("?") ? "&" : "?") + "appsecret_proof=" + proof.map { String(format: "%02x", $0) }.joined()
        }
        return try await http.get(target, bearer: accessToken)
    }

    private func userAPI(_ url: String, accessToken: String) async throws -> [String: JSONValue] {
        let response = try await get(url, accessToken: accessToken)
        guard response.status == 200, let object = try? JSONValue.parseObject(response.body) else {
            throw UpstreamError(.unreachable, "the user API answered HTTP \(response.status) or not a JSON object")
        }
        return object
    }

    private func emailsAPI(_ url: String, accessToken: String) async throws -> [JSONValue]? {
        let response = try await get(url, accessToken: accessToken)
        // Without the user:email scope GitHub answers 404: the profile's public email stays, unverified.
        guard response.status == 200 else { return nil }
        guard case .array(let list)? = try? JSONValue.parse(response.body) else {
            throw UpstreamError(.unreachable, "the emails API did not answer a JSON array")
        }
        return list
    }

    /// GitHub: the primary address if the emails API says it is verified; otherwise the profile's
    /// address stays with `email_verified` false when the API lists it unverified, absent when it
    /// does not say.
    static func applyVerifiedEmail(_ list: [JSONValue]?, to claims: inout [String: JSONValue]) {
        claims["email_verified"] = nil
        guard let list else { return }
        let entries: [(email: String, primary: Bool, verified: Bool)] = list.compactMap {
            guard case .object(let o) = $0, let email = o["email"]?.stringValue else { return nil }
            return (email, o["primary"] == .bool(true), o["verified"] == .bool(true))
        }
        if let primary = entries.first(where: { $0.primary && $0.verified }) {
            claims["email"] = .string(primary.email)
            claims["email_verified"] = .bool(true)
        } else if let shown = claims["email"]?.stringValue, let entry = entries.first(where: { $0.email.lowercased() == shown.lowercased() }) {
            claims["email_verified"] = .bool(entry.verified)
        }
    }

    /// The value at a dotted path (`data.id`); the root for `nil`.
    static func value(at path: String?, in root: JSONValue) -> JSONValue? {
        guard let path else { return root }
        var current = root
        for part in path.split(separator: ".") {
            guard case .object(let o) = current, let next = o[String(part)] else { return nil }
            current = next
        }
        return current
    }

    /// A user ID as text: a string, or an integer (GitHub's numeric IDs) without a fraction.
    static func identifier(_ v: JSONValue) -> String? {
        if let s = v.stringValue { return s }
        if let n = v.numberValue, n == n.rounded(), abs(n) < 9_007_199_254_740_992 { return String(Int64(n)) }
        return nil
    }
}
