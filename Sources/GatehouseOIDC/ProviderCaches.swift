public import Foundation
public import GatehouseCore
public import GatehouseJOSE

/// The parts of a provider's discovery document Gatehouse uses.
public struct DiscoveryDocument: Sendable, Codable, Equatable {
    public var issuer: String
    public var authorizationEndpoint: String
    public var tokenEndpoint: String
    public var jwksURI: String
    public var userinfoEndpoint: String?
    public var authorizationResponseIssParameterSupported: Bool?

    enum CodingKeys: String, CodingKey {
        case issuer
        case authorizationEndpoint = "authorization_endpoint"
        case tokenEndpoint = "token_endpoint"
        case jwksURI = "jwks_uri"
        case userinfoEndpoint = "userinfo_endpoint"
        case authorizationResponseIssParameterSupported = "authorization_response_iss_parameter_supported"
    }

    public static func url(forIssuer issuer: String) -> String {
        (issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer) + "/.well-known/openid-configuration"
    }

    /// Fetches and checks the document: its issuer must equal the configured one exactly, and every
    /// endpoint must be https (plain http only on loopback).
    public static func fetch(issuer: String, http: UpstreamHTTP) async throws -> DiscoveryDocument {
        let response = try await http.get(url(forIssuer: issuer))
        guard response.status == 200 else { throw UpstreamError(.misconfigured, "discovery answered HTTP \(response.status)") }
        guard let doc = try? JSONDecoder().decode(DiscoveryDocument.self, from: response.body) else {
            throw UpstreamError(.misconfigured, "discovery document is not valid JSON with the required fields")
        }
        guard doc.issuer == issuer else {
            throw UpstreamError(.misconfigured, "discovery issuer \(doc.issuer) differs from the configured \(issuer)")
        }
        for endpoint in [doc.authorizationEndpoint, doc.tokenEndpoint, doc.jwksURI] + (doc.userinfoEndpoint.map { [$0] } ?? []) {
            guard let u = URL(string: endpoint), let host = u.host,
                u.scheme == "https" || (u.scheme == "http" && AppClient.isLoopbackHost(host))
            else { throw UpstreamError(.misconfigured, "discovery endpoint \(endpoint) is not https") }
        }
        return doc
    }
}

/// A provider's JWKS, cached. An unknown `kid` triggers at most one refetch per `minimumRefetchInterval`
/// (a hostile or broken upstream cannot make Gatehouse hammer it); keys are never substituted.
public actor JWKSCache: VerificationKeySource {
    private let jwksURI: String
    private let http: UpstreamHTTP
    private let clock: any GatehouseClock
    private var prepared: [PreparedKey] = []
    private var fetchedAt: Date?
    private var lastForcedFetch: Date?
    public let maximumAge: TimeInterval
    public let minimumRefetchInterval: TimeInterval
    public private(set) var fetchCount = 0

    public init(jwksURI: String, http: UpstreamHTTP, clock: any GatehouseClock, maximumAge: TimeInterval = 3600, minimumRefetchInterval: TimeInterval = 30) {
        self.jwksURI = jwksURI
        self.http = http
        self.clock = clock
        self.maximumAge = maximumAge
        self.minimumRefetchInterval = minimumRefetchInterval
    }

    public func keys(refreshingFor unknownKid: String?) async throws -> [PreparedKey] {
        let now = clock.now()
        if let unknownKid, !prepared.contains(where: { $0.jwk.kid == unknownKid }) {
            if let last = lastForcedFetch, now.timeIntervalSince(last) < minimumRefetchInterval { return prepared }
            lastForcedFetch = now
            try await fetch(now: now)
            return prepared
        }
        if let fetchedAt, now.timeIntervalSince(fetchedAt) < maximumAge { return prepared }
        try await fetch(now: now)
        return prepared
    }

    private func fetch(now: Date) async throws {
        let response = try await http.get(jwksURI)
        guard response.status == 200, let set = try? JSONDecoder().decode(JWKSet.self, from: response.body) else {
            throw UpstreamError(.unreachable, "JWKS at \(jwksURI) answered HTTP \(response.status) or invalid JSON")
        }
        prepared = PreparedKey.prepare(set)
        fetchedAt = now
        fetchCount += 1
    }
}

/// The discovery document of one provider, cached for `maximumAge`; refreshed lazily or by `warm()`.
public actor DiscoveryCache {
    private let issuer: String
    private let http: UpstreamHTTP
    private let clock: any GatehouseClock
    private var document: DiscoveryDocument?
    private var fetchedAt: Date?
    public let maximumAge: TimeInterval

    public init(issuer: String, http: UpstreamHTTP, clock: any GatehouseClock, maximumAge: TimeInterval = 3600) {
        self.issuer = issuer
        self.http = http
        self.clock = clock
        self.maximumAge = maximumAge
    }

    public func current() async throws -> DiscoveryDocument {
        let now = clock.now()
        if let document, let fetchedAt, now.timeIntervalSince(fetchedAt) < maximumAge { return document }
        do {
            let fresh = try await DiscoveryDocument.fetch(issuer: issuer, http: http)
            document = fresh
            fetchedAt = now
            return fresh
        } catch {
            // Keep serving the last good document if a refresh fails; fail only if there is none.
            if let document { return document }
            throw error
        }
    }
}
