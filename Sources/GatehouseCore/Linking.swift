public import Foundation

/// What happens at the first login of an upstream identity no user has yet, per provider.
public enum LinkPolicy: String, Sendable, Codable, CaseIterable {
    /// A new user (the default, as in Cognito).
    case createUser = "create_user"
    /// Join the one user with this email, only when the provider is trusted to assert email and
    /// says the email is verified; otherwise a new user.
    case verifiedEmail = "verified_email"
    /// When users with this email exist, the person must first sign in with a provider already
    /// linked to one of them; the link then joins both upstream identities. Otherwise a new user.
    case proveExisting = "prove_existing"
    /// No user is created: only identities an admin linked may sign in.
    case refuse
}

/// A provider's linking settings.
public struct LinkSettings: Sendable, Codable, Equatable {
    public var policy: LinkPolicy
    /// Whether this provider's `email_verified` may be believed (a corporate IdP that owns the
    /// domain, or Google for Gmail addresses) — never the default.
    public var trustEmail: Bool

    public init(policy: LinkPolicy = .createUser, trustEmail: Bool = false) {
        self.policy = policy
        self.trustEmail = trustEmail
    }
}

/// What the user store should do with an identity it has no link for, as the server decided from
/// the provider's policy and what the upstream asserted.
public enum NewIdentityRule: Sendable, Equatable {
    case createUser
    /// Link to the only user for whom a trusted provider verified this email (lowercased); a new
    /// user when there is none; a refusal when several have it.
    case linkVerifiedEmail(String)
    /// If users have this email, ask for proof; otherwise a new user.
    case proveExisting(email: String)
    case refuse
}

/// Why and how a login's user was found: for the token path, metrics and the audit log.
public enum LoginOutcome: Sendable, Equatable {
    /// The identity was already linked.
    case existing
    /// A new user was created with this identity.
    case created
    /// The identity was linked to an existing user with the same verified email.
    case linkedByVerifiedEmail
}

/// A login's user, or why there is none yet.
public enum LoginDecision: Sendable, Equatable {
    case user(User, LoginOutcome)
    /// Users with the asserted email exist; the person must prove one of them.
    case needsProof(candidateUserIDs: [String])
    case refused(reason: String)
}

/// An upstream identity waiting to be linked once the person proves an existing account, bound to
/// the browser that started it and to the app request it will complete.
public struct PendingLink: Sendable, Codable, Equatable {
    public var id: String
    public var poolID: PoolID
    /// The identity to link (its `userID` is empty until the proof).
    public var identity: LinkedIdentity
    /// What the identity's mapping set at every login, applied to the proven user.
    public var attributes: [String: String]
    public var candidateUserIDs: [String]
    public var clientID: String
    public var redirectURI: String
    public var appState: String?
    public var appNonce: String?
    public var codeChallenge: String?
    public var scope: [String]
    public var browserBindingHash: String
    public var createdAt: Date
    public var expiresAt: Date

    public init(
        id: String, poolID: PoolID, identity: LinkedIdentity, attributes: [String: String], candidateUserIDs: [String], clientID: String,
        redirectURI: String, appState: String?, appNonce: String?, codeChallenge: String?, scope: [String], browserBindingHash: String,
        createdAt: Date, expiresAt: Date
    ) {
        self.id = id
        self.poolID = poolID
        self.identity = identity
        self.attributes = attributes
        self.candidateUserIDs = candidateUserIDs
        self.clientID = clientID
        self.redirectURI = redirectURI
        self.appState = appState
        self.appNonce = appNonce
        self.codeChallenge = codeChallenge
        self.scope = scope
        self.browserBindingHash = browserBindingHash
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }

    public static let lifetime: TimeInterval = 600
}

/// One entry of the audit log: an admin change or a link decision.
public struct AuditEntry: Sendable, Codable, Equatable {
    /// Sorts by time (see `LoginSample.newID`).
    public var id: String
    public var poolID: PoolID
    public var at: Date
    /// `cli`, an admin credential's name, `login` for decisions made at sign-in, or `user:{id}`.
    public var actor: String
    /// For example `link.created`, `link.moved`, `link.removed`, `mapping.saved`.
    public var action: String
    /// What was acted on, for example `user:{id}` or `provider:{name}`.
    public var target: String
    public var before: JSONValue?
    public var after: JSONValue?

    public init(id: String, poolID: PoolID, at: Date, actor: String, action: String, target: String, before: JSONValue? = nil, after: JSONValue? = nil) {
        self.id = id
        self.poolID = poolID
        self.at = at
        self.actor = actor
        self.action = action
        self.target = target
        self.before = before
        self.after = after
    }
}

extension LinkedIdentity {
    /// The identity's key as JSON, for the audit log.
    public var auditValue: JSONValue {
        .object([
            "provider": .string(providerName), "issuer": .string(upstreamIssuer), "subject": .string(upstreamSubject),
            "user": .string(userID),
        ])
    }
}

/// How an admin's link of an identity that already belonged to another user was carried out.
public struct LinkMerge: Sendable, Equatable {
    /// The user the identity was taken from, and whether that user was deleted (it had no
    /// identity left) after its attributes and groups were merged into the target.
    public var fromUserID: String?
    public var fromUserDeleted: Bool
    public init(fromUserID: String?, fromUserDeleted: Bool) {
        self.fromUserID = fromUserID
        self.fromUserDeleted = fromUserDeleted
    }
}

/// A credential for the admin HTTP API, made by the CLI. Only the hash of its secret is stored;
/// the secret is shown once. A credential may be limited to one pool.
public struct AdminCredential: Sendable, Codable, Equatable {
    /// Names the actor in the audit log (`admin:{name}`).
    public var name: String
    public var secretHash: String
    /// The one pool it may act on; `nil` for every pool.
    public var poolID: PoolID?
    public var createdAt: Date
    public var revokedAt: Date?

    public init(name: String, secretHash: String, poolID: PoolID?, createdAt: Date, revokedAt: Date? = nil) {
        self.name = name
        self.secretHash = secretHash
        self.poolID = poolID
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }

    /// 1-64 of `A-Z a-z 0-9 . _ -`.
    public static func isValidName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count) && name.utf8.allSatisfy { c in
            (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x2E || c == 0x5F || c == 0x2D
        }
    }
}

/// A signed-in user's request to link another provider to their account: a single-use ticket the
/// app got with the user's access token, presented at `/oauth2/authorize` as `link_intent`.
public struct LinkIntent: Sendable, Codable, Equatable {
    /// The hash of the ticket.
    public var ticketHash: String
    public var poolID: PoolID
    public var userID: String
    public var clientID: String
    public var providerName: String
    /// The refresh family of the token that asked: it must still be live when the ticket is used.
    public var familyID: String
    /// The app's PKCE challenge: the authorize request must carry it, and the link is made only when
    /// the code is redeemed with its verifier, so a link URL sent to someone else links nothing.
    public var codeChallenge: String
    public var createdAt: Date
    public var expiresAt: Date

    /// The scope an access token needs to manage its user's links (and the app client must allow).
    public static let scope = "gatehouse.links"
    /// How recently the person must have signed in for their token to add or remove a link.
    public static let maximumAuthenticationAge: TimeInterval = 600

    public init(ticketHash: String, poolID: PoolID, userID: String, clientID: String, providerName: String, familyID: String, codeChallenge: String, createdAt: Date, expiresAt: Date) {
        self.familyID = familyID
        self.codeChallenge = codeChallenge
        self.ticketHash = ticketHash
        self.poolID = poolID
        self.userID = userID
        self.clientID = clientID
        self.providerName = providerName
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }

    public static let lifetime: TimeInterval = 300
}
