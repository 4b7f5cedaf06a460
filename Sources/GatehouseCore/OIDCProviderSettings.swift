public import Foundation

/// Settings of an upstream OpenID provider, or of an OAuth 2.0 provider without ID tokens (Facebook,
/// GitHub, a generic one) whose profile comes from its user API.
///
/// Fields added after the first version are optional, so stored providers keep decoding; the
/// accessors below give their defaults.
public struct OIDCProviderSettings: Sendable, Codable, Equatable {
    public enum ClientAuthentication: String, Sendable, Codable, CaseIterable {
        case clientSecretBasic = "client_secret_basic"
        case clientSecretPost = "client_secret_post"
        /// RFC 7523 client assertion signed with a key Gatehouse holds for this provider.
        case privateKeyJWT = "private_key_jwt"
        case none
    }

    /// Where the authorization response comes back: the query of a GET, or a cross-site POST.
    public enum ResponseMode: String, Sendable, Codable, CaseIterable {
        case query
        case formPost = "form_post"
    }

    /// The endpoints of a provider that has no discovery document (OAuth 2.0 only).
    public struct Endpoints: Sendable, Codable, Equatable {
        public var authorization: String
        public var token: String
        /// The user API the profile is read from (with the access token as bearer).
        public var userinfo: String
        /// GitHub's emails API, read for the primary verified address.
        public var emails: String?
        public init(authorization: String, token: String, userinfo: String, emails: String? = nil) {
            self.authorization = authorization
            self.token = token
            self.userinfo = userinfo
            self.emails = emails
        }
        var all: [String] { [authorization, token, userinfo] + (emails.map { [$0] } ?? []) }
    }

    /// Sign in with Apple: the client secret is an ES256 JWT Gatehouse signs with the team's key
    /// (the key itself is the provider's sealed secret).
    public struct AppleSigning: Sendable, Codable, Equatable {
        public var teamID: String
        public var keyID: String
        public init(teamID: String, keyID: String) {
            self.teamID = teamID
            self.keyID = keyID
        }
    }

    /// Exactly as the provider's discovery document and ID tokens spell it. For an OAuth 2.0
    /// provider it names the namespace its user IDs live in (e.g. `https://github.com`).
    public var issuer: String
    public var clientID: String
    public var scopes: [String]
    /// The JWS algorithms accepted for this provider's ID tokens; never `none` nor HMAC.
    public var allowedAlgorithms: [String]
    public var clockSkewSeconds: Int
    public var useUserInfo: Bool
    public var clientAuthentication: ClientAuthentication
    /// Which preset made these settings; the preset also names the provider's quirks.
    public var preset: ProviderPreset?
    public var responseMode: ResponseMode?
    /// Set for OAuth 2.0 providers: no discovery, no ID token.
    public var endpoints: Endpoints?
    /// OAuth 2.0: dotted path of the user's stable ID in the user API's answer (default `sub`).
    public var subjectClaim: String?
    /// OAuth 2.0: dotted path of the object holding the claims in the user API's answer (default: the root).
    public var claimsPath: String?
    /// Microsoft multi-tenant: the tenant IDs (`tid`) allowed to sign in; empty allows any the endpoint admits.
    public var allowedTenants: [String]?
    /// Google Workspace: the `hd` claim every ID token must carry.
    public var hostedDomain: String?
    public var apple: AppleSigning?
    /// Keep the upstream refresh token (sealed) and re-read the upstream's claims on every refresh.
    public var keepUpstreamRefreshToken: Bool?
    /// Extra parameters of the authorization request (e.g. Google's `access_type=offline`).
    public var authorizationParameters: [String: String]?

    public static let supportedAlgorithms: Set<String> = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "PS384", "PS512"]

    public init(
        issuer: String, clientID: String, scopes: [String] = ["openid", "email", "profile"],
        allowedAlgorithms: [String] = ["RS256"], clockSkewSeconds: Int = 60, useUserInfo: Bool = false,
        clientAuthentication: ClientAuthentication = .clientSecretBasic
    ) {
        self.issuer = issuer
        self.clientID = clientID
        self.scopes = scopes
        self.allowedAlgorithms = allowedAlgorithms
        self.clockSkewSeconds = clockSkewSeconds
        self.useUserInfo = useUserInfo
        self.clientAuthentication = clientAuthentication
    }

    public var kind: ProviderPreset { preset ?? .oidc }
    /// OAuth 2.0 without ID tokens: the identity is whatever the user API answers over TLS.
    public var isOAuthOnly: Bool { endpoints != nil }
    public var mode: ResponseMode { responseMode ?? .query }
    public var keepsUpstreamRefreshToken: Bool { keepUpstreamRefreshToken ?? false }

    /// Microsoft's multi-tenant endpoints (`common`, `organizations`) publish an issuer with a
    /// `{tenantid}` placeholder that each token fills with its `tid`. (`consumers` is one tenant,
    /// that of personal accounts: the preset configures its tenant ID.)
    public var microsoftTenantSegment: String? {
        guard kind == .microsoft, let u = URL(string: issuer) else { return nil }
        let parts = u.path.split(separator: "/")
        guard let first = parts.first, ["common", "organizations"].contains(String(first)) else { return nil }
        return String(first)
    }

    /// The issuer template a multi-tenant Microsoft discovery document names.
    public var microsoftIssuerTemplate: String? {
        guard let segment = microsoftTenantSegment else { return nil }
        return issuer.replacingOccurrences(of: "/\(segment)/", with: "/{tenantid}/")
    }

    public func validate() throws {
        guard let u = URL(string: issuer), u.query == nil, u.fragment == nil, let host = u.host else {
            throw DirectoryError(.invalid, "issuer must be an absolute URL without query or fragment")
        }
        guard u.scheme == "https" || (u.scheme == "http" && AppClient.isLoopbackHost(host)) else {
            throw DirectoryError(.invalid, "issuer must use https (plain http only on loopback)")
        }
        guard !clientID.isEmpty, clientID.utf8.count <= 512 else { throw DirectoryError(.invalid, "client_id is required") }
        if let endpoints {
            for e in endpoints.all {
                guard let eu = URL(string: e), let h = eu.host, eu.scheme == "https" || (eu.scheme == "http" && AppClient.isLoopbackHost(h)) else {
                    throw DirectoryError(.invalid, "endpoint \(e) must be an https URL (plain http only on loopback)")
                }
            }
        } else {
            guard scopes.contains("openid") else { throw DirectoryError(.invalid, "scopes must include openid") }
            guard !allowedAlgorithms.isEmpty, allowedAlgorithms.allSatisfy({ Self.supportedAlgorithms.contains($0) }) else {
                throw DirectoryError(.invalid, "allowed algorithms must be among \(Self.supportedAlgorithms.sorted()); none and HMAC are refused")
            }
        }
        guard (0...600).contains(clockSkewSeconds) else { throw DirectoryError(.invalid, "clock skew must be 0-600 seconds") }
        for path in [subjectClaim, claimsPath].compactMap({ $0 }) where path.isEmpty || path.utf8.count > 128 {
            throw DirectoryError(.invalid, "a claim path is 1-128 characters")
        }
        if kind == .apple {
            guard let apple, !apple.teamID.isEmpty, !apple.keyID.isEmpty else {
                throw DirectoryError(.invalid, "Sign in with Apple needs the team ID, key ID and private key")
            }
        }
        if let tenants = allowedTenants, !tenants.allSatisfy(Self.isTenantID) {
            throw DirectoryError(.invalid, "allowed tenants are tenant IDs (GUIDs)")
        }
        if keepsUpstreamRefreshToken, isOAuthOnly {
            throw DirectoryError(.invalid, "upstream refresh needs an OpenID provider (its ID token is re-verified)")
        }
    }

    /// A Microsoft tenant ID: a lowercase GUID.
    public static func isTenantID(_ s: String) -> Bool {
        let groups = s.split(separator: "-", omittingEmptySubsequences: false).map(\.count)
        return groups == [8, 4, 4, 4, 12] && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) || $0 == 0x2D }
    }
}

/// Ready-made settings for the providers app teams ask for first, and the two generic kinds.
/// Each fills in endpoints, scopes, claim names and quirks from the provider's public documentation;
/// an admin supplies only the client ID and secret (Apple: team ID, key ID and key).
public enum ProviderPreset: String, Sendable, Codable, CaseIterable {
    /// Any standards-compliant OpenID provider, from its issuer URL alone.
    case oidc
    case google
    case microsoft
    case apple
    case facebook
    case github
    /// An OAuth 2.0 provider without ID tokens, with configured endpoints and a claim path.
    case oauth2

    /// The settings this preset fills in. `issuer` (OIDC presets) and `endpoints` (OAuth presets)
    /// override the real provider's, for a private deployment or a stand-in.
    public func settings(clientID: String, issuer: String? = nil, endpoints: OIDCProviderSettings.Endpoints? = nil, tenant: String = "common") -> OIDCProviderSettings {
        var s: OIDCProviderSettings
        switch self {
        case .oidc:
            s = OIDCProviderSettings(issuer: issuer ?? "", clientID: clientID)
        case .google:
            s = OIDCProviderSettings(issuer: issuer ?? "https://accounts.google.com", clientID: clientID)
        case .microsoft:
            // Personal accounts live in one tenant, whose discovery names its ID.
            let segment = tenant == "consumers" ? Self.microsoftConsumerTenant : tenant
            s = OIDCProviderSettings(issuer: issuer ?? "https://login.microsoftonline.com/\(segment)/v2.0", clientID: clientID, clientAuthentication: .clientSecretPost)
        case .apple:
            s = OIDCProviderSettings(issuer: issuer ?? "https://appleid.apple.com", clientID: clientID, scopes: ["openid", "name", "email"], clientAuthentication: .clientSecretPost)
            s.responseMode = .formPost
        case .facebook:
            s = OIDCProviderSettings(issuer: issuer ?? "https://www.facebook.com", clientID: clientID, scopes: ["public_profile", "email"], clientAuthentication: .clientSecretPost)
            s.endpoints = endpoints ?? .init(
                authorization: "https://www.facebook.com/v21.0/dialog/oauth", token: "https://graph.facebook.com/v21.0/oauth/access_token",
                userinfo: "https://graph.facebook.com/v21.0/me?fields=id,name,email,first_name,last_name,picture")
            s.subjectClaim = "id"
        case .github:
            s = OIDCProviderSettings(issuer: issuer ?? "https://github.com", clientID: clientID, scopes: ["read:user", "user:email"], clientAuthentication: .clientSecretPost)
            s.endpoints = endpoints ?? .init(
                authorization: "https://github.com/login/oauth/authorize", token: "https://github.com/login/oauth/access_token",
                userinfo: "https://api.github.com/user", emails: "https://api.github.com/user/emails")
            s.subjectClaim = "id"
        case .oauth2:
            s = OIDCProviderSettings(issuer: issuer ?? "", clientID: clientID, scopes: [], clientAuthentication: .clientSecretBasic)
            s.endpoints = endpoints
        }
        s.preset = self
        return s
    }

    /// The tenant of personal Microsoft accounts.
    public static let microsoftConsumerTenant = "9188040d-6c67-4c5b-b112-36a304b66dad"

    /// What a new provider of this preset maps when the admin gives no mapping.
    public var defaultMapping: AttributeMapping {
        typealias R = AttributeMapping.Rule
        switch self {
        case .oidc, .oauth2: return .oidcStandard
        case .google:
            return AttributeMapping([
                "email": "email", "email_verified": "email_verified", "name": "name", "given_name": "given_name",
                "family_name": "family_name", "picture": "picture", "locale": "locale",
            ])
        case .microsoft:
            // Microsoft's `email` is not verified by Microsoft (any tenant admin can set it), so no
            // email_verified is mapped: such an address can never link accounts.
            return AttributeMapping([
                "email": "email", "name": "name", "given_name": "given_name", "family_name": "family_name",
                "preferred_username": "preferred_username",
            ])
        case .apple:
            // Apple sends the name once, on the first login, outside the ID token.
            return AttributeMapping(rules: [
                R(target: "email", source: .attribute("email")),
                R(target: "email_verified", source: .attribute("email_verified")),
                R(target: "given_name", source: .attribute("user.name.firstName"), update: .firstLogin),
                R(target: "family_name", source: .attribute("user.name.lastName"), update: .firstLogin),
                R(target: "name", source: .expression("trim(\"{{user.name.firstName}} {{user.name.lastName}}\")"), update: .firstLogin),
            ])
        case .facebook:
            // Facebook does not say whether the address is verified: no email_verified.
            return AttributeMapping([
                "email": "email", "name": "name", "given_name": "first_name", "family_name": "last_name", "picture": "picture.data.url",
            ])
        case .github:
            return AttributeMapping([
                "email": "email", "email_verified": "email_verified", "name": "name", "preferred_username": "login",
                "picture": "avatar_url", "profile": "html_url",
            ])
        }
    }
}
