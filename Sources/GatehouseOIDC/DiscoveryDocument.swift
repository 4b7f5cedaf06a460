public import Foundation
public import GatehouseCore

/// The parts of a provider's discovery document Gatehouse uses or checks.
public struct DiscoveryDocument: Sendable, Codable, Equatable {
    public var issuer: String
    public var authorizationEndpoint: String
    public var tokenEndpoint: String
    public var jwksURI: String
    public var userinfoEndpoint: String?
    public var authorizationResponseIssParameterSupported: Bool?
    public var responseModesSupported: [String]?
    public var tokenEndpointAuthMethodsSupported: [String]?
    public var codeChallengeMethodsSupported: [String]?
    public var idTokenSigningAlgValuesSupported: [String]?

    enum CodingKeys: String, CodingKey {
        case issuer
        case authorizationEndpoint = "authorization_endpoint"
        case tokenEndpoint = "token_endpoint"
        case jwksURI = "jwks_uri"
        case userinfoEndpoint = "userinfo_endpoint"
        case authorizationResponseIssParameterSupported = "authorization_response_iss_parameter_supported"
        case responseModesSupported = "response_modes_supported"
        case tokenEndpointAuthMethodsSupported = "token_endpoint_auth_methods_supported"
        case codeChallengeMethodsSupported = "code_challenge_methods_supported"
        case idTokenSigningAlgValuesSupported = "id_token_signing_alg_values_supported"
    }

    public static func url(forIssuer issuer: String) -> String {
        (issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer) + "/.well-known/openid-configuration"
    }

    /// Fetches and checks the document: its issuer must equal the configured one exactly (for
    /// Microsoft's multi-tenant endpoints, the configured one with `{tenantid}` in place of
    /// `common`, `organizations` or `consumers`), and every endpoint must be https (plain http
    /// only on loopback).
    public static func fetch(settings: OIDCProviderSettings, http: UpstreamHTTP) async throws -> DiscoveryDocument {
        try await fetchWithHeaders(settings: settings, http: http).0
    }

    static func fetchWithHeaders(settings: OIDCProviderSettings, http: UpstreamHTTP) async throws -> (DiscoveryDocument, [(String, String)]) {
        let issuer = settings.issuer
        let response = try await http.get(url(forIssuer: issuer))
        guard response.status == 200 else { throw UpstreamError(.misconfigured, "discovery at \(url(forIssuer: issuer)) answered HTTP \(response.status)") }
        guard let doc = try? JSONDecoder().decode(DiscoveryDocument.self, from: response.body) else {
            throw UpstreamError(.misconfigured, "discovery document is not valid JSON with the required fields")
        }
        let expected = settings.microsoftIssuerTemplate ?? issuer
        guard doc.issuer == expected else {
            var reason = "discovery issuer \(doc.issuer) differs from the configured \(expected)"
            if settings.kind == .microsoft { reason += " (a single-tenant Microsoft provider is configured with its tenant ID, not its domain)" }
            throw UpstreamError(.misconfigured, reason)
        }
        for endpoint in [doc.authorizationEndpoint, doc.tokenEndpoint, doc.jwksURI] + (doc.userinfoEndpoint.map { [$0] } ?? []) {
            guard let u = URL(string: endpoint), let host = u.host,
                u.scheme == "https" || (u.scheme == "http" && AppClient.isLoopbackHost(host))
            else { throw UpstreamError(.misconfigured, "discovery endpoint \(endpoint) is not https") }
        }
        return (doc, response.headers)
    }
}
