import Foundation
public import GatehouseCore
import GatehouseJOSE
import GatehouseOIDC

/// What an admin asks for when adding an OpenID or OAuth 2.0 provider, from the CLI or the admin
/// API: a preset and only what differs from it.
public struct OIDCProviderSpec: Sendable {
    public var preset: ProviderPreset = .oidc
    public var clientID: String
    public var issuer: String? = nil
    public var scopes: [String] = []
    public var allowedAlgorithms: [String] = []
    public var clockSkewSeconds: Int? = nil
    public var userinfo = false
    public var clientAuthentication: OIDCProviderSettings.ClientAuthentication? = nil
    public var responseMode: OIDCProviderSettings.ResponseMode? = nil
    public var authorizationEndpoint: String? = nil
    public var tokenEndpoint: String? = nil
    public var userinfoEndpoint: String? = nil
    public var emailsEndpoint: String? = nil
    public var subjectClaim: String? = nil
    public var claimsPath: String? = nil
    /// Microsoft: `common` (default), `organizations`, `consumers`, or a tenant ID.
    public var tenant: String? = nil
    public var allowedTenants: [String] = []
    public var hostedDomain: String? = nil
    public var appleTeamID: String? = nil
    public var appleKeyID: String? = nil
    public var upstreamRefresh = false
    public var authorizationParameters: [String: String] = [:]

    public init(preset: ProviderPreset = .oidc, clientID: String) {
        self.preset = preset
        self.clientID = clientID
    }

    /// The settings: the preset's, then every given option over them.
    public func settings() throws -> OIDCProviderSettings {
        var endpoints: OIDCProviderSettings.Endpoints? = nil
        let given = [authorizationEndpoint, tokenEndpoint, userinfoEndpoint]
        if given.contains(where: { $0 != nil }) {
            guard let a = authorizationEndpoint, let t = tokenEndpoint, let u = userinfoEndpoint else {
                throw DirectoryError(.invalid, "give the authorization, token and userinfo endpoints together")
            }
            guard [.facebook, .github, .oauth2].contains(preset) else {
                throw DirectoryError(.invalid, "endpoints are for OAuth 2.0 presets (facebook, github, oauth2); an OpenID provider is found from its issuer")
            }
            endpoints = .init(authorization: a, token: t, userinfo: u, emails: emailsEndpoint)
        }
        if preset == .github, var e = endpoints, e.emails == nil, let u = URL(string: e.userinfo) {
            // A GitHub Enterprise or stand-in user API keeps the emails API beside it.
            e.emails = u.appendingPathComponent("emails").absoluteString
            endpoints = e
        }
        if preset == .oauth2, endpoints == nil { throw DirectoryError(.invalid, "an OAuth 2.0 provider needs its authorization, token and userinfo endpoints") }
        if preset == .oidc || preset == .oauth2, issuer == nil { throw DirectoryError(.invalid, "the issuer is required") }
        if let tenant, preset == .microsoft, !["common", "organizations", "consumers"].contains(tenant), !OIDCProviderSettings.isTenantID(tenant) {
            throw DirectoryError(.invalid, "a Microsoft tenant is common, organizations, consumers or a tenant ID (GUID)")
        }
        var s = preset.settings(clientID: clientID, issuer: issuer, endpoints: endpoints, tenant: tenant ?? "common")
        if !scopes.isEmpty { s.scopes = scopes }
        if !allowedAlgorithms.isEmpty { s.allowedAlgorithms = allowedAlgorithms }
        if let clockSkewSeconds { s.clockSkewSeconds = clockSkewSeconds }
        if userinfo { s.useUserInfo = true }
        if let clientAuthentication { s.clientAuthentication = clientAuthentication }
        if let responseMode { s.responseMode = responseMode }
        if let subjectClaim { s.subjectClaim = subjectClaim }
        if let claimsPath { s.claimsPath = claimsPath }
        if !allowedTenants.isEmpty { s.allowedTenants = allowedTenants.map { $0.lowercased() } }
        if let hostedDomain { s.hostedDomain = hostedDomain.lowercased() }
        if appleTeamID != nil || appleKeyID != nil { s.apple = .init(teamID: appleTeamID ?? "", keyID: appleKeyID ?? "") }
        var params = authorizationParameters
        if upstreamRefresh {
            s.keepUpstreamRefreshToken = true
            switch preset {
            case .google: params["access_type"] = params["access_type"] ?? "offline"
            case .microsoft, .oidc: if !s.scopes.contains("offline_access") { s.scopes.append("offline_access") }
            default: break
            }
        }
        if !params.isEmpty { s.authorizationParameters = params }
        try s.validate()
        return s
    }
}

extension Admin {
    /// Adds an OpenID or OAuth 2.0 provider from a spec. For `private_key_jwt` without a given key,
    /// Gatehouse makes an RSA key; its public half is served at
    /// `/{pool}/providers/{name}/jwks.json` for the provider to register.
    @discardableResult
    public func createOIDCProvider(
        pool: String, name: String, spec: OIDCProviderSpec, clientSecret: String?, mapping: AttributeMapping? = nil, idpIdentifiers: [String] = []
    ) async throws -> IdentityProvider {
        let settings = try spec.settings()
        var secret = clientSecret
        if settings.clientAuthentication == .privateKeyJWT, settings.kind != .apple, secret == nil {
            secret = try JWSSigningKey.generate(.rs256).pemRepresentation
        }
        // The credential must be usable before anything is stored (an Apple key that is not a
        // P-256 key, a missing secret).
        do { _ = try ClientCredential.make(settings: settings, secret: secret) } catch let e as UpstreamError {
            throw DirectoryError(.invalid, e.reason)
        }
        return try await createOIDCProvider(pool: pool, name: name, settings: settings, clientSecret: secret, mapping: mapping ?? spec.preset.defaultMapping, idpIdentifiers: idpIdentifiers)
    }
}

extension Admin {
    /// The provider's client secret (or private key), opened with the master key, for checks.
    public func openedClientSecret(of provider: IdentityProvider) throws -> String? {
        try provider.sealedClientSecret.map {
            String(decoding: try masterKey.open($0, purpose: IdentityProvider.secretPurpose(pool: provider.poolID, provider: provider.name)), as: UTF8.self)
        }
    }
}
