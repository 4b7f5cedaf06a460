public import Foundation
public import GatehouseCore
import GatehouseJOSE
import Crypto

/// Everything that goes into one pair of ID and access tokens.
public struct TokenRequest: Sendable {
    public var issuer: String
    public var pool: PoolID
    public var client: AppClient
    public var user: User
    public var groups: [String]
    public var identities: [LinkedIdentity]
    public var scope: [String]
    public var nonce: String?
    public var authTime: Date
    /// The refresh token family: access tokens carry it as `origin_jti` so revoking the family
    /// makes `/oauth2/userInfo` refuse them too.
    public var familyID: String
    public var now: Date
    /// The upstream authentication context, when the upstream said how the person signed in.
    public var acr: String? = nil
    public var amr: [String] = []

    public init(issuer: String, pool: PoolID, client: AppClient, user: User, groups: [String], identities: [LinkedIdentity], scope: [String], nonce: String?, authTime: Date, familyID: String, now: Date) {
        self.issuer = issuer
        self.pool = pool
        self.client = client
        self.user = user
        self.groups = groups
        self.identities = identities
        self.scope = scope
        self.nonce = nonce
        self.authTime = authTime
        self.familyID = familyID
        self.now = now
    }
}

public struct MintedTokens: Sendable {
    public let idToken: String
    public let accessToken: String
    public let accessTokenExpiresIn: Int
}

/// Mints Gatehouse's ID and access tokens (JWS, ES256 or RS256 per pool) with claims modelled on
/// Cognito's. Thread-safe.
public struct TokenMinter: Sendable {
    public let keyRing: SigningKeyRing

    public init(keyRing: SigningKeyRing) { self.keyRing = keyRing }

    /// Which pool attributes each scope releases into the ID token and userInfo.
    static let scopeAttributes: [String: [String]] = [
        "email": ["email", "email_verified"],
        "phone": ["phone_number", "phone_number_verified"],
        "profile": ["name", "given_name", "family_name", "middle_name", "nickname", "preferred_username", "profile",
                    "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at"],
        "address": ["address"],
    ]

    /// The user's claims released under `scope`: standard claims by scope, `custom:*` always.
    public static func userClaims(user: User, scope: [String]) -> [String: JSONValue] {
        var claims: [String: JSONValue] = [:]
        let allowed = Set(scope.flatMap { scopeAttributes[$0] ?? [] })
        for (name, value) in user.attributes where allowed.contains(name) || name.hasPrefix("custom:") {
            if name == "email_verified" || name == "phone_number_verified" {
                claims[name] = .bool(value == "true")
            } else {
                claims[name] = .string(value)
            }
        }
        return claims
    }

    /// The `identities` claim in Cognito's shape.
    public static func identitiesClaim(_ identities: [LinkedIdentity]) -> JSONValue {
        .array(identities.enumerated().map { i, link in
            .object([
                "userId": .string(link.upstreamSubject),
                "providerName": .string(link.providerName),
                "providerType": .string(link.providerKind == .saml ? "SAML" : "OIDC"),
                "issuer": .string(link.upstreamIssuer),
                "primary": .string(i == 0 ? "true" : "false"),
                "dateCreated": .string(String(link.createdAt.epochSeconds * 1000)),
            ])
        })
    }

    public func mint(_ r: TokenRequest) async throws -> MintedTokens {
        let (kid, key) = try await keyRing.currentSigner(pool: r.pool)
        let iat = Double(r.now.epochSeconds)
        let accessExp = iat + Double(r.client.accessTokenTTL)
        let groups: JSONValue = .array(r.groups.map(JSONValue.string))

        let access: [String: JSONValue] = [
            "iss": .string(r.issuer), "sub": .string(r.user.id), "client_id": .string(r.client.clientID),
            "token_use": .string("access"), "scope": .string(r.scope.joined(separator: " ")),
            "auth_time": .number(Double(r.authTime.epochSeconds)), "iat": .number(iat), "exp": .number(accessExp),
            "jti": .string(UUID().uuidString.lowercased()), "origin_jti": .string(r.familyID),
            "username": .string(r.user.username), "groups": groups,
        ]
        let accessToken = try JWSEncoder.sign(payloadJSON: Data(JSONValue.serialize(object: access).utf8), key: key, kid: kid, type: "at+jwt")

        var id = Self.userClaims(user: r.user, scope: r.scope)
        id["iss"] = .string(r.issuer)
        id["sub"] = .string(r.user.id)
        id["aud"] = .string(r.client.clientID)
        id["token_use"] = .string("id")
        id["auth_time"] = .number(Double(r.authTime.epochSeconds))
        id["iat"] = .number(iat)
        id["exp"] = .number(iat + Double(r.client.idTokenTTL))
        id["jti"] = .string(UUID().uuidString.lowercased())
        id["origin_jti"] = .string(r.familyID)
        id["username"] = .string(r.user.username)
        id["groups"] = groups
        id["identities"] = Self.identitiesClaim(r.identities)
        id["at_hash"] = .string(Self.accessTokenHash(accessToken))
        if let acr = r.acr { id["acr"] = .string(acr) }
        if !r.amr.isEmpty { id["amr"] = .array(r.amr.map(JSONValue.string)) }
        if let nonce = r.nonce { id["nonce"] = .string(nonce) }
        let idToken = try JWSEncoder.sign(payloadJSON: Data(JSONValue.serialize(object: id).utf8), key: key, kid: kid)
        return MintedTokens(idToken: idToken, accessToken: accessToken, accessTokenExpiresIn: r.client.accessTokenTTL)
    }

    /// OpenID Connect Core §3.1.3.6: the left half of SHA-256 of the access token, base64url.
    static func accessTokenHash(_ token: String) -> String {
        Base64URL.encode(Data(SHA256.hash(data: Data(token.utf8))).prefix(16))
    }
}

/// Checks access tokens Gatehouse itself issued (for `/oauth2/userInfo`).
public struct LocalAccessTokenVerifier: Sendable {
    public let keyRing: SigningKeyRing
    public init(keyRing: SigningKeyRing) { self.keyRing = keyRing }

    public struct Verified: Sendable {
        public let subject: String
        public let clientID: String
        public let scope: [String]
        public let familyID: String
        /// When the person last authenticated upstream (`auth_time`).
        public let authTime: Date?
    }

    public func verify(_ token: String, pool: PoolID, issuer: String, now: Date) async throws -> Verified {
        let jws = try UnverifiedJWS(compact: token)
        guard let kid = jws.keyID, let (key, alg) = try await keyRing.verificationKey(pool: pool, kid: kid) else {
            throw VerificationError(check: "kid", reason: "unknown key")
        }
        guard jws.algorithm == alg.rawValue, let jwsAlg = JWSAlgorithm(rawValue: alg.rawValue),
            jwsAlg.verify(signature: jws.signature, input: jws.signingInput, key: key)
        else { throw VerificationError(check: "signature", reason: "invalid signature") }
        let c = jws.claims
        var failures: [VerificationError.Failure] = []
        if c["iss"]?.stringValue != issuer { failures.append(.init(check: "iss", reason: "issuer mismatch")) }
        if c["token_use"]?.stringValue != "access" { failures.append(.init(check: "token_use", reason: "not an access token")) }
        if let exp = c["exp"]?.numberValue { if Double(now.epochSeconds) >= exp { failures.append(.init(check: "exp", reason: "expired")) } }
        else { failures.append(.init(check: "exp", reason: "missing")) }
        guard failures.isEmpty, let sub = c["sub"]?.stringValue, let clientID = c["client_id"]?.stringValue,
            let family = c["origin_jti"]?.stringValue
        else { throw VerificationError(failures.isEmpty ? [.init(check: "claims", reason: "missing sub, client_id or origin_jti")] : failures) }
        let scope = (c["scope"]?.stringValue ?? "").split(separator: " ").map(String.init)
        return Verified(subject: sub, clientID: clientID, scope: scope, familyID: family, authTime: c["auth_time"]?.numberValue.map { Date(timeIntervalSince1970: $0) })
    }
}
