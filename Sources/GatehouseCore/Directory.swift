public import Foundation

// The Directory: narrow storage protocols, one per concern. Every backend (SQLite, PostgreSQL)
// implements all of them and passes one conformance suite. Implementations are thread-safe.

public protocol PoolStore: Sendable {
    func createPool(_ pool: Pool) async throws
    func pool(_ id: PoolID) async throws -> Pool?
    func listPools() async throws -> [Pool]
    func updatePool(_ pool: Pool) async throws
}

public protocol AppClientStore: Sendable {
    func createClient(_ client: AppClient) async throws
    func updateClient(_ client: AppClient) async throws
    func client(pool: PoolID, clientID: String) async throws -> AppClient?
    func listClients(pool: PoolID) async throws -> [AppClient]
    func deleteClient(pool: PoolID, clientID: String) async throws
}

public protocol IdentityProviderStore: Sendable {
    func createProvider(_ provider: IdentityProvider) async throws
    func updateProvider(_ provider: IdentityProvider) async throws
    func provider(pool: PoolID, name: String) async throws -> IdentityProvider?
    func listProviders(pool: PoolID) async throws -> [IdentityProvider]
    func deleteProvider(pool: PoolID, name: String) async throws
}

/// A federated login as the user store sees it: the upstream identity and what the mapping made of it.
public struct FederatedLogin: Sendable {
    public var identity: LinkedIdentity
    /// The username if a user is created.
    public var username: String
    /// Set at every login.
    public var attributes: [String: String]
    /// Set only when the user is created.
    public var initialAttributes: [String: String]
    /// The pool groups the mapping names (`nil` when the mapping has no groups rule). Groups the pool
    /// does not have are ignored; memberships an admin made are never removed by a login.
    public var groups: [String]?
    public var groupsOnCreationOnly: Bool
    /// What to do if no user has this identity yet.
    public var newIdentity: NewIdentityRule
    /// The (lowercased) email this login's provider is trusted to assert and verified; recorded on
    /// the user so that verified-email linking matches only such addresses.
    public var trustedEmail: String?

    public init(
        identity: LinkedIdentity, username: String, attributes: [String: String], initialAttributes: [String: String] = [:],
        groups: [String]? = nil, groupsOnCreationOnly: Bool = false, newIdentity: NewIdentityRule = .createUser, trustedEmail: String? = nil
    ) {
        self.newIdentity = newIdentity
        self.trustedEmail = trustedEmail
        self.identity = identity
        self.username = username
        self.attributes = attributes
        self.initialAttributes = initialAttributes
        self.groups = groups
        self.groupsOnCreationOnly = groupsOnCreationOnly
    }
}

public protocol UserStore: Sendable {
    /// Finds the user linked to the login's identity (by pool, provider, upstream issuer and subject:
    /// a subject is unique only per issuer) and updates its attributes; or, for an identity without a
    /// user, applies `login.newIdentity`: creates the user and the link, links to the one user with
    /// the verified email, asks for proof, or refuses. Every write, the audit entry of a link
    /// decision included, is one transaction: concurrent first logins of one identity produce
    /// exactly one user, and a link is never half made.
    ///
    /// Attributes and mapped groups are written in the same transaction; a group membership made by
    /// a login is tagged with its provider, so the next login of that provider can replace it.
    func resolveLogin(_ login: FederatedLogin, now: Date) async throws -> LoginDecision
    /// Users whose email is `email` (compared lowercased), at most `limit`. (Verified-email linking
    /// matches only addresses a trusted provider verified: `FederatedLogin.trustedEmail`.)
    func users(pool: PoolID, email: String, limit: Int) async throws -> [User]
    /// Joins `identity` to the user `identity.userID`. An identity that belonged to another user is
    /// moved: that user's attributes fill the target's gaps (the target's own values win), its
    /// group memberships are added, its refresh tokens are revoked, and it is deleted if it has no
    /// identity left. One transaction, with its audit entry.
    func linkIdentity(_ identity: LinkedIdentity, actor: String, now: Date) async throws -> LinkMerge
    /// Links a pending identity to `userID` after the person proved that account, applying the
    /// pending identity's attributes; refuses if the identity was linked to someone else meanwhile.
    func completePendingLink(_ pending: PendingLink, userID: String, now: Date) async throws -> User
    /// Links `identity` to `identity.userID` only if no other user has it: `false` (and nothing
    /// written) when it belongs to someone else. One transaction, with its audit entry.
    func claimIdentity(_ identity: LinkedIdentity, actor: String, now: Date) async throws -> Bool
    /// Removes a link; refused (`conflict`) if it is the user's last, and (`notFound`) if `owner` is
    /// given and the link is not that user's. The user's row is locked first, so two removals of a
    /// user's last two links cannot both succeed.
    func unlinkIdentity(pool: PoolID, providerName: String, upstreamIssuer: String, upstreamSubject: String, owner: String?, actor: String, now: Date) async throws
    func user(pool: PoolID, id: String) async throws -> User?
    func user(pool: PoolID, username: String) async throws -> User?
    /// Users ordered by username, after `after` (exclusive), at most `limit`.
    func listUsers(pool: PoolID, after: String?, limit: Int) async throws -> [User]
    func setUserEnabled(pool: PoolID, id: String, enabled: Bool, now: Date) async throws
    func deleteUser(pool: PoolID, id: String) async throws
    func linkedIdentities(pool: PoolID, userID: String) async throws -> [LinkedIdentity]
    /// The user an upstream identity is linked to, if any.
    func userID(pool: PoolID, providerName: String, upstreamIssuer: String, upstreamSubject: String) async throws -> String?
    func createGroup(_ group: Group) async throws
    func listGroups(pool: PoolID) async throws -> [Group]
    func addUser(pool: PoolID, userID: String, toGroup group: String) async throws
    func groups(pool: PoolID, userID: String) async throws -> [String]
    func countUsers(pool: PoolID) async throws -> Int
}

extension UserStore {
    /// A login that creates the user if needed, for tests and benchmarks: the user, and whether it is new.
    public func resolveLogin(identity: LinkedIdentity, username: String, attributes: [String: String], now: Date) async throws -> (user: User, created: Bool) {
        guard case .user(let user, let outcome) = try await resolveLogin(FederatedLogin(identity: identity, username: username, attributes: attributes), now: now) else {
            throw DirectoryError(.invalid, "a login with the create-user rule did not yield a user")
        }
        return (user, outcome == .created)
    }
}

/// Credentials of the admin HTTP API.
public protocol AdminCredentialStore: Sendable {
    /// Creates the credential and writes `audit` in the same transaction: both or neither.
    func createAdminCredential(_ credential: AdminCredential, audit: [AuditEntry]) async throws
    /// The live (not revoked) credential with this secret hash.
    func adminCredential(secretHash: String) async throws -> AdminCredential?
    func listAdminCredentials() async throws -> [AdminCredential]
    /// Revokes the live credential and writes `audit` in the same transaction: both or neither.
    func revokeAdminCredential(name: String, now: Date, audit: [AuditEntry]) async throws
}

/// The audit log: admin changes and link decisions.
public protocol AuditStore: Sendable {
    func recordAudit(_ entry: AuditEntry) async throws
    /// Oldest first, after `after` (an entry id, exclusive), at most `limit`; optionally one action.
    func auditEntries(pool: PoolID, after: String?, action: String?, limit: Int) async throws -> [AuditEntry]
}

/// A provider's attribute mapping over time, and the logins kept to preview it against.
public protocol MappingStore: Sendable {
    /// Sets the provider's mapping and records it as the next version, atomically; returns that version.
    func saveMapping(pool: PoolID, provider: String, mapping: AttributeMapping, author: String, note: String?, now: Date) async throws -> MappingVersion
    /// Newest first.
    func mappingVersions(pool: PoolID, provider: String) async throws -> [MappingVersion]
    func mappingVersion(pool: PoolID, provider: String, version: Int) async throws -> MappingVersion?
    /// Keeps redacted logins in one transaction, dropping each provider's oldest beyond `keep`.
    func recordLoginSamples(_ samples: [LoginSample], keep: Int) async throws
    /// Newest first.
    func loginSamples(pool: PoolID, provider: String, limit: Int) async throws -> [LoginSample]
}

public protocol LoginStateStore: Sendable {
    func saveLoginTransaction(_ transaction: LoginTransaction) async throws
    /// Returns the transaction and deletes it, once, if `browserBindingHash` is the one it was stored
    /// with; `nil` if unknown, already consumed, expired, or started in another browser (which leaves
    /// it in place for the browser that did start it).
    func consumeLoginTransaction(id: String, browserBindingHash: String, now: Date) async throws -> LoginTransaction?
    func saveAuthorizationCode(_ code: AuthorizationCode) async throws
    /// The stored code, consumed or not, without changing it: the token endpoint checks client,
    /// redirect URI and PKCE before it consumes, so a wrong presentation does not burn the code.
    func authorizationCode(hash: String) async throws -> AuthorizationCode?
    /// Consumes a code once. A second presentation revokes the code's refresh token family.
    /// (Pending links below share the login transaction's rules: single use, bound to the browser.)
    func redeemAuthorizationCode(hash: String, now: Date) async throws -> CodeRedemption
    func savePendingLink(_ link: PendingLink) async throws
    /// The pending link if `browserBindingHash` is the one it was stored with and it has not expired.
    func pendingLink(id: String, browserBindingHash: String, now: Date) async throws -> PendingLink?
    /// Returns and deletes it, once, under the same conditions.
    func consumePendingLink(id: String, browserBindingHash: String, now: Date) async throws -> PendingLink?
    func saveLinkIntent(_ intent: LinkIntent) async throws
    /// Returns and deletes the intent with this ticket hash, once, if it has not expired.
    func consumeLinkIntent(ticketHash: String, now: Date) async throws -> LinkIntent?
}

public protocol RefreshTokenStore: Sendable {
    /// Stores a new family with its first token.
    func createFamily(_ family: RefreshTokenFamily, firstTokenHash: String) async throws
    /// Spends `presentedHash` and stores `newTokenHash` in the same family, atomically. Nothing is spent
    /// unless the token belongs to `clientID` in `pool`, its family is live, and `requestedScope` (if
    /// any) is within the family's scope. The family row is locked first, so a concurrent revocation
    /// either wins (and this fails) or applies to the new token too.
    /// `upstream`, when given, replaces the family's upstream grant in the same transaction (the
    /// upstream refresh token renewed for this rotation).
    func rotate(presentedHash: String, clientID: String, pool: PoolID, requestedScope: [String]?, newTokenHash: String, upstream: UpstreamGrant?, now: Date) async throws -> RefreshRotation
    /// Revokes the family a token belongs to, if the token was issued to `clientID`. Unknown tokens are ignored.
    /// The family of an unspent token issued to `clientID` in `pool`, if the family is live; spends nothing.
    func liveFamily(tokenHash: String, clientID: String, pool: PoolID, now: Date) async throws -> RefreshTokenFamily?
    func revokeFamily(containing tokenHash: String, clientID: String, now: Date) async throws
    func revokeFamily(id: String, now: Date) async throws
    func family(id: String) async throws -> RefreshTokenFamily?
    /// The user's refresh token families that are neither revoked nor expired.
    func activeFamilies(pool: PoolID, userID: String, now: Date) async throws -> [RefreshTokenFamily]
}

public protocol SigningKeyStore: Sendable {
    func addSigningKey(_ key: SigningKeyRecord) async throws
    func updateSigningKey(_ key: SigningKeyRecord) async throws
    func signingKeys(pool: PoolID) async throws -> [SigningKeyRecord]
}

public protocol ReplayCache: Sendable {
    /// Records `key` in `namespace` until `expiresAt`. Returns `true` the first time, `false` if the key
    /// was already recorded and has not expired: the caller must then reject.
    func remember(namespace: String, key: String, expiresAt: Date, now: Date) async throws -> Bool
}

/// Every store together: what the server is given.
public protocol Directory: PoolStore, AppClientStore, IdentityProviderStore, UserStore, MappingStore, AuditStore, AdminCredentialStore, LoginStateStore,
    RefreshTokenStore, SigningKeyStore, ReplayCache
{
    /// A short name for logs and readiness: `sqlite` or `postgresql`.
    var backendName: String { get }
    /// Applies every migration not yet applied. Safe to call on every start and from several processes.
    func migrate() async throws
    /// Whether the database answers (for readiness).
    func ping() async throws
    /// Deletes expired login transactions, codes, replay entries and dead refresh families.
    func purgeExpired(now: Date) async throws
    func shutdown() async throws
}

extension RefreshTokenStore {
    public func rotate(presentedHash: String, clientID: String, pool: PoolID, requestedScope: [String]?, newTokenHash: String, now: Date) async throws -> RefreshRotation {
        try await rotate(presentedHash: presentedHash, clientID: clientID, pool: pool, requestedScope: requestedScope, newTokenHash: newTokenHash, upstream: nil, now: now)
    }
}
