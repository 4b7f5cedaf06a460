public import Foundation

/// The state of one login in flight, from `/oauth2/authorize` to the upstream callback.
///
/// Stored by the server before the browser leaves for the upstream and consumed exactly once at the
/// callback. Its `id` is the `state` sent upstream; `browserBindingHash` ties it to the browser that
/// started it (the hash of a random value held in an HttpOnly cookie).
public struct LoginTransaction: Sendable, Codable, Equatable {
    public var id: String
    public var poolID: PoolID
    public var clientID: String
    public var redirectURI: String
    /// The app's `state`, echoed back byte for byte; `nil` when the app sent none.
    public var appState: String?
    public var appNonce: String?
    public var codeChallenge: String?
    public var scope: [String]
    public var providerName: String
    public var upstreamNonce: String
    public var upstreamCodeVerifier: String
    public var browserBindingHash: String
    public var createdAt: Date
    public var expiresAt: Date
    /// Set when this login proves an existing account for a pending link.
    public var pendingLinkID: String? = nil
    /// Set when a signed-in user links this provider to their own account (a link intent).
    public var linkToUserID: String? = nil

    public init(
        id: String, poolID: PoolID, clientID: String, redirectURI: String, appState: String?, appNonce: String?,
        codeChallenge: String?, scope: [String], providerName: String, upstreamNonce: String, upstreamCodeVerifier: String,
        browserBindingHash: String, createdAt: Date, expiresAt: Date
    ) {
        self.id = id
        self.poolID = poolID
        self.clientID = clientID
        self.redirectURI = redirectURI
        self.appState = appState
        self.appNonce = appNonce
        self.codeChallenge = codeChallenge
        self.scope = scope
        self.providerName = providerName
        self.upstreamNonce = upstreamNonce
        self.upstreamCodeVerifier = upstreamCodeVerifier
        self.browserBindingHash = browserBindingHash
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }

    /// How long a login may take at the upstream.
    public static let lifetime: TimeInterval = 600
}

/// An authorization code Gatehouse issued to an app, stored by its hash, redeemable once.
public struct AuthorizationCode: Sendable, Codable, Equatable {
    public var codeHash: String
    public var poolID: PoolID
    public var clientID: String
    public var userID: String
    public var redirectURI: String
    public var scope: [String]
    public var nonce: String?
    public var codeChallenge: String?
    public var authTime: Date
    public var providerName: String
    /// The refresh token family the exchange will create; revoked if the code is presented again.
    public var familyID: String
    public var createdAt: Date
    public var expiresAt: Date
    /// How the person signed in upstream (SAML AuthnContextClassRef or OIDC acr, and amr), carried
    /// into the ID token; and the upstream session, so a single logout can find this login's tokens.
    public var acr: String? = nil
    public var amr: [String]? = nil
    public var upstreamSessionIndex: String? = nil
    /// Whether the upstream stated when the person authenticated (OIDC `auth_time`, SAML
    /// AuthnInstant). When it did not (OAuth 2.0 providers), `authTime` is only when Gatehouse
    /// saw the login, which can never prove a fresh sign-in.
    public var authTimeStated: Bool? = nil
    /// A signed-in user's link of this login's upstream identity, made only when the code is redeemed
    /// (so with the app's PKCE verifier, in the app session that asked for it).
    public var pendingSelfLink: LinkedIdentity? = nil
    /// The upstream login kept for upstream refresh, when the provider keeps it.
    public var upstream: UpstreamGrant? = nil

    public init(
        codeHash: String, poolID: PoolID, clientID: String, userID: String, redirectURI: String, scope: [String],
        nonce: String?, codeChallenge: String?, authTime: Date, providerName: String, familyID: String, createdAt: Date, expiresAt: Date
    ) {
        self.codeHash = codeHash
        self.poolID = poolID
        self.clientID = clientID
        self.userID = userID
        self.redirectURI = redirectURI
        self.scope = scope
        self.nonce = nonce
        self.codeChallenge = codeChallenge
        self.authTime = authTime
        self.providerName = providerName
        self.familyID = familyID
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }

    public static let lifetime: TimeInterval = 300
}

/// The outcome of presenting an authorization code.
public enum CodeRedemption: Sendable, Equatable {
    /// First presentation within its lifetime: the code, now consumed.
    case redeemed(AuthorizationCode)
    /// The code was already redeemed: its family has been revoked (RFC 6749 §4.1.2).
    case replayed(familyID: String)
    /// No such code, or it expired.
    case invalid
}

/// A refresh token family: every token rotated from one authorization code. Revoking the family
/// revokes every token in it.
public struct RefreshTokenFamily: Sendable, Codable, Equatable {
    public var id: String
    public var poolID: PoolID
    public var clientID: String
    public var userID: String
    public var scope: [String]
    public var authTime: Date
    public var providerName: String
    public var createdAt: Date
    /// When every token of the family stops working, however often it rotated.
    public var expiresAt: Date
    public var revokedAt: Date?
    /// How the person signed in upstream (SAML AuthnContextClassRef or OIDC acr, and amr), carried
    /// into the ID token; and the upstream session, so a single logout can find this login's tokens.
    public var acr: String? = nil
    public var amr: [String]? = nil
    public var upstreamSessionIndex: String? = nil
    /// Whether the upstream stated when the person authenticated (OIDC `auth_time`, SAML
    /// AuthnInstant). When it did not (OAuth 2.0 providers), `authTime` is only when Gatehouse
    /// saw the login, which can never prove a fresh sign-in.
    public var authTimeStated: Bool? = nil
    /// The upstream login kept for upstream refresh, when the provider keeps it.
    public var upstream: UpstreamGrant? = nil

    public init(id: String, poolID: PoolID, clientID: String, userID: String, scope: [String], authTime: Date, providerName: String, createdAt: Date, expiresAt: Date, revokedAt: Date? = nil) {
        self.id = id
        self.poolID = poolID
        self.clientID = clientID
        self.userID = userID
        self.scope = scope
        self.authTime = authTime
        self.providerName = providerName
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
    }
}

/// The outcome of presenting a refresh token.
public enum RefreshRotation: Sendable, Equatable {
    /// The token was current: it is now spent and `newTokenHash` is the family's current token.
    case rotated(RefreshTokenFamily)
    /// The token had already been rotated: the whole family is now revoked.
    case reuseDetected(familyID: String)
    /// Unknown, expired, revoked, or issued to another client or pool.
    case invalid
    /// The requested scope is wider than the family's: nothing was spent.
    case scopeWidened
}

/// A signing key of a pool, as stored: the private key sealed with the master key.
///
/// A key is published in JWKS from `createdAt`, signs from `activatesAt` until `retiresAt`, and stays
/// published until `removeAfter` so the tokens it signed keep verifying until they expire.
public struct SigningKeyRecord: Sendable, Codable, Equatable {
    public var poolID: PoolID
    public var kid: String
    public var algorithm: SigningAlgorithm
    public var sealedPrivateKey: String
    public var createdAt: Date
    public var activatesAt: Date
    public var retiresAt: Date?
    public var removeAfter: Date?

    public init(poolID: PoolID, kid: String, algorithm: SigningAlgorithm, sealedPrivateKey: String, createdAt: Date, activatesAt: Date, retiresAt: Date? = nil, removeAfter: Date? = nil) {
        self.poolID = poolID
        self.kid = kid
        self.algorithm = algorithm
        self.sealedPrivateKey = sealedPrivateKey
        self.createdAt = createdAt
        self.activatesAt = activatesAt
        self.retiresAt = retiresAt
        self.removeAfter = removeAfter
    }

    public static func purpose(pool: PoolID, kid: String) -> String { "signing-key:\(pool)/\(kid)" }

    public func isPublished(at now: Date) -> Bool { createdAt <= now && (removeAfter.map { now < $0 } ?? true) }
    public func canSign(at now: Date) -> Bool { activatesAt <= now && (retiresAt.map { now < $0 } ?? true) }
}

/// What a refresh token family keeps of its upstream login to renew it: the upstream's refresh
/// token, sealed with the master key (purpose `upstream-refresh:{pool}/{family}`), and which
/// upstream identity it belongs to.
public struct UpstreamGrant: Sendable, Codable, Equatable {
    public var sealedRefreshToken: String
    public var issuer: String
    public var subject: String
    public init(sealedRefreshToken: String, issuer: String, subject: String) {
        self.sealedRefreshToken = sealedRefreshToken
        self.issuer = issuer
        self.subject = subject
    }
    public static func purpose(pool: PoolID, familyID: String) -> String { "upstream-refresh:\(pool)/\(familyID)" }
}
