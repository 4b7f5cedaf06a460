public import Foundation
public import GatehouseCore
internal import SQLKit

extension SQLDirectory {
    static let userColumns = "pool_id, id, username, attributes, enabled, created_at, updated_at"

    static func decodeUser(_ row: any SQLRow) throws -> User {
        User(
            poolID: try PoolID(try row.string("pool_id")), id: try row.string("id"), username: try row.string("username"),
            attributes: try Body.decode([String: String].self, try row.string("attributes")),
            enabled: try row.int("enabled") != 0, createdAt: Date(epochSeconds: try row.int("created_at")),
            updatedAt: Date(epochSeconds: try row.int("updated_at"))
        )
    }

    /// Thrown inside a login's transaction to roll it back and try again: a concurrent login of the
    /// same identity committed first.
    struct LostRace: Error {}

    public func resolveLogin(_ login: FederatedLogin, now: Date) async throws -> LoginDecision {
        let identity = login.identity
        for _ in 0..<5 {
            do {
                return try await transaction { db in try await Self.resolve(db, login, now: now) }
            } catch is LostRace {
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        throw DirectoryError(.conflict, "the login of \(identity.providerName) identity could not settle; try again")
    }

    static func linkedUserID(_ db: any SQLDatabase, _ i: LinkedIdentity) async throws -> String? {
        try await db.raw("SELECT user_id FROM linked_identities WHERE pool_id = \(bind: i.poolID.rawValue) AND provider_name = \(bind: i.providerName) AND upstream_issuer = \(bind: i.upstreamIssuer) AND upstream_subject = \(bind: i.upstreamSubject)").first()
            .map { try $0.string("user_id") }
    }

    static func loadUser(_ db: any SQLDatabase, pool: String, id: String) async throws -> User? {
        try await db.raw("SELECT \(unsafeRaw: userColumns) FROM users WHERE pool_id = \(bind: pool) AND id = \(bind: id)").first().map(decodeUser)
    }

    /// Merges `attributes` into the stored user (theirs win) and writes it if anything changed.
    /// A trusted address that is no longer the user's email stops being trusted.
    static func applyAttributes(_ db: any SQLDatabase, _ user: inout User, _ attributes: [String: String], now: Date) async throws {
        let merged = user.attributes.merging(attributes) { $1 }
        guard merged != user.attributes else { return }
        user.attributes = merged
        user.updatedAt = now
        try await db.raw("""
            UPDATE users SET attributes = \(bind: try Body.encode(merged)), email = \(bind: merged["email"]?.lowercased()), updated_at = \(bind: now.epochSeconds),
                trusted_email = CASE WHEN trusted_email = \(bind: merged["email"]?.lowercased() ?? "") THEN trusted_email ELSE NULL END
            WHERE pool_id = \(bind: user.poolID.rawValue) AND id = \(bind: user.id)
            """).run()
    }

    /// Records that a trusted provider verified the user's current email.
    static func trustEmail(_ db: any SQLDatabase, _ user: User, _ trusted: String?) async throws {
        guard let trusted, trusted == user.attributes["email"]?.lowercased() else { return }
        try await db.raw("UPDATE users SET trusted_email = \(bind: trusted) WHERE pool_id = \(bind: user.poolID.rawValue) AND id = \(bind: user.id)").run()
    }

    /// Inserts the link, or throws `LostRace` if a concurrent transaction linked the identity first.
    static func insertLink(_ db: any SQLDatabase, _ i: LinkedIdentity, userID: String, now: Date) async throws {
        let inserted = try await db.raw("""
            INSERT INTO linked_identities (pool_id, provider_name, upstream_subject, provider_kind, upstream_issuer, user_id, created_at)
            VALUES (\(bind: i.poolID.rawValue), \(bind: i.providerName), \(bind: i.upstreamSubject), \(bind: i.providerKind.rawValue),
                    \(bind: i.upstreamIssuer), \(bind: userID), \(bind: now.epochSeconds))
            ON CONFLICT DO NOTHING RETURNING user_id
            """).first()
        guard inserted != nil else { throw LostRace() }
    }

    static func resolve(_ db: any SQLDatabase, _ login: FederatedLogin, now: Date) async throws -> LoginDecision {
        let identity = login.identity
        let pool = identity.poolID.rawValue
        if let userID = try await linkedUserID(db, identity) {
            guard var user = try await loadUser(db, pool: pool, id: userID) else {
                throw DirectoryError(.invalid, "a linked identity points at a missing user")
            }
            try await applyAttributes(db, &user, login.attributes, now: now)
            try await trustEmail(db, user, login.trustedEmail)
            if let groups = login.groups, !login.groupsOnCreationOnly {
                try await assignMappedGroups(db, pool: pool, userID: userID, provider: identity.providerName, groups: groups)
            }
            return .user(user, .existing)
        }
        switch login.newIdentity {
        case .createUser:
            break
        case .refuse:
            return .refused(reason: "this identity provider signs in only identities an administrator has linked")
        case .proveExisting(let email):
            let candidates = try await userIDs(db, pool: pool, email: email, limit: 10)
            if !candidates.isEmpty { return .needsProof(candidateUserIDs: candidates) }
        case .linkVerifiedEmail(let email):
            let candidates = try await userIDs(db, pool: pool, trustedEmail: email, limit: 2)
            if candidates.count > 1 {
                return .refused(reason: "this sign-in cannot be linked to an account automatically; ask an administrator")
            }
            if let target = candidates.first, var user = try await loadUser(db, pool: pool, id: target) {
                try await insertLink(db, identity, userID: target, now: now)
                try await applyAttributes(db, &user, login.attributes, now: now)
                try await trustEmail(db, user, login.trustedEmail)
                if let groups = login.groups, !login.groupsOnCreationOnly {
                    try await assignMappedGroups(db, pool: pool, userID: target, provider: identity.providerName, groups: groups)
                }
                var linked = identity
                linked.userID = target
                try await audit(db, AuditEntry(
                    id: LoginSample.newID(at: Date()), poolID: identity.poolID, at: now, actor: "login", action: "link.created", target: "user:\(target)",
                    after: .object(["identity": linked.auditValue, "reason": .string("verified email asserted by a trusted provider")])))
                return .user(user, .linkedByVerifiedEmail)
            }
        }
        let attributes = login.initialAttributes.merging(login.attributes) { $1 }
        let user = User(poolID: identity.poolID, id: UUID().uuidString.lowercased(), username: login.username, attributes: attributes, createdAt: now, updatedAt: now)
        let inserted = try await db.raw("""
            INSERT INTO users (pool_id, id, username, email, attributes, enabled, created_at, updated_at)
            VALUES (\(bind: pool), \(bind: user.id), \(bind: user.username), \(bind: attributes["email"]?.lowercased()),
                    \(bind: try Body.encode(attributes)), 1, \(bind: now.epochSeconds), \(bind: now.epochSeconds))
            ON CONFLICT (pool_id, username) DO NOTHING RETURNING id
            """).first()
        // The deterministic username is taken: a concurrent first login of this identity won.
        guard inserted != nil else { throw LostRace() }
        try await insertLink(db, identity, userID: user.id, now: now)
        try await trustEmail(db, user, login.trustedEmail)
        if let groups = login.groups {
            try await assignMappedGroups(db, pool: pool, userID: user.id, provider: identity.providerName, groups: groups)
        }
        return .user(user, .created)
    }

    static func userIDs(_ db: any SQLDatabase, pool: String, email: String, limit: Int) async throws -> [String] {
        try await db.raw("SELECT id FROM users WHERE pool_id = \(bind: pool) AND email = \(bind: email.lowercased()) ORDER BY id LIMIT \(bind: Int64(limit))").all()
            .map { try $0.string("id") }
    }

    static func userIDs(_ db: any SQLDatabase, pool: String, trustedEmail email: String, limit: Int) async throws -> [String] {
        try await db.raw("SELECT id FROM users WHERE pool_id = \(bind: pool) AND trusted_email = \(bind: email.lowercased()) ORDER BY id LIMIT \(bind: Int64(limit))").all()
            .map { try $0.string("id") }
    }

    public func users(pool: PoolID, email: String, limit: Int) async throws -> [User] {
        try await session { db in
            try await db.raw("SELECT \(unsafeRaw: Self.userColumns) FROM users WHERE pool_id = \(bind: pool.rawValue) AND email = \(bind: email.lowercased()) ORDER BY id LIMIT \(bind: Int64(max(1, min(limit, 1000))))").all().map(Self.decodeUser)
        }
    }

    static func audit(_ db: any SQLDatabase, _ entry: AuditEntry) async throws {
        try await db.raw("INSERT INTO audit_log (id, pool_id, action, body) VALUES (\(bind: entry.id), \(bind: entry.poolID.rawValue), \(bind: entry.action), \(bind: try Body.encode(entry)))").run()
    }

    public func recordAudit(_ entry: AuditEntry) async throws {
        try await session { db in try await Self.audit(db, entry) }
    }

    public func auditEntries(pool: PoolID, after: String?, action: String?, limit: Int) async throws -> [AuditEntry] {
        let limit = Int64(max(1, min(limit, 1000)))
        return try await session { db in
            let rows = if let action {
                try await db.raw("SELECT body FROM audit_log WHERE pool_id = \(bind: pool.rawValue) AND id > \(bind: after ?? "") AND action = \(bind: action) ORDER BY id LIMIT \(bind: limit)").all()
            } else {
                try await db.raw("SELECT body FROM audit_log WHERE pool_id = \(bind: pool.rawValue) AND id > \(bind: after ?? "") ORDER BY id LIMIT \(bind: limit)").all()
            }
            return try rows.map { try Body.decode(AuditEntry.self, try $0.string("body")) }
        }
    }

    public func linkIdentity(_ identity: LinkedIdentity, actor: String, now: Date) async throws -> LinkMerge {
        do {
            return try await transaction { db in try await Self.link(db, identity, actor: actor, now: now) }
        } catch is LostRace {
            throw DirectoryError(.conflict, "the identity was linked by another request meanwhile; try again")
        }
    }

    static func link(_ db: any SQLDatabase, _ identity: LinkedIdentity, actor: String, now: Date) async throws -> LinkMerge {
        let pool = identity.poolID.rawValue
        let target = identity.userID
        guard try await lockUser(db, pool: pool, id: target), var targetUser = try await loadUser(db, pool: pool, id: target) else {
            throw DirectoryError(.notFound, "no user \(target) in pool \(pool)")
        }
        let source = try await linkedUserID(db, identity)
        if source == target { return LinkMerge(fromUserID: nil, fromUserDeleted: false) }
        if let source { _ = try await lockUser(db, pool: pool, id: source) }
        var merge = LinkMerge(fromUserID: source, fromUserDeleted: false)
        if let source {
            try await db.raw("UPDATE linked_identities SET user_id = \(bind: target) WHERE pool_id = \(bind: pool) AND provider_name = \(bind: identity.providerName) AND upstream_issuer = \(bind: identity.upstreamIssuer) AND upstream_subject = \(bind: identity.upstreamSubject)").run()
            if let sourceUser = try await Self.loadUser(db, pool: pool, id: source) {
                // The stated rule: the target's values win; the source fills what the target lacks.
                try await Self.applyAttributes(db, &targetUser, sourceUser.attributes.merging(targetUser.attributes) { $1 }, now: now)
                try await db.raw("INSERT INTO group_members (pool_id, group_name, user_id, source) SELECT pool_id, group_name, \(bind: target), source FROM group_members WHERE pool_id = \(bind: pool) AND user_id = \(bind: source) ON CONFLICT DO NOTHING").run()
                try await db.raw("UPDATE refresh_families SET revoked_at = \(bind: now.epochSeconds) WHERE pool_id = \(bind: pool) AND user_id = \(bind: source) AND revoked_at IS NULL").run()
                let left = try await db.raw("SELECT COUNT(*) AS n FROM linked_identities WHERE pool_id = \(bind: pool) AND user_id = \(bind: source)").first()?.int("n") ?? 0
                if left == 0 {
                    try await Self.deleteUserRows(db, pool: pool, id: source)
                    merge.fromUserDeleted = true
                }
            }
        } else {
            try await Self.insertLink(db, identity, userID: target, now: now)
        }
        var after = identity.auditValue
        if case .object(var o) = after {
            if let source { o["merged_from"] = .string(source) }
            o["merged_user_deleted"] = .bool(merge.fromUserDeleted)
            after = .object(o)
        }
        try await Self.audit(db, AuditEntry(
            id: LoginSample.newID(at: Date()), poolID: identity.poolID, at: now, actor: actor, action: source == nil ? "link.created" : "link.moved",
            target: "user:\(target)", before: source.map { .object(["user": .string($0)]) }, after: after))
        return merge
    }

    public func claimIdentity(_ identity: LinkedIdentity, actor: String, now: Date) async throws -> Bool {
        for _ in 0..<5 {
            do {
                return try await transaction { db in
                    if let existing = try await Self.linkedUserID(db, identity) { return existing == identity.userID }
                    guard try await Self.loadUser(db, pool: identity.poolID.rawValue, id: identity.userID) != nil else {
                        throw DirectoryError(.notFound, "no user \(identity.userID)")
                    }
                    try await Self.insertLink(db, identity, userID: identity.userID, now: now)
                    try await Self.audit(db, AuditEntry(
                        id: LoginSample.newID(at: Date()), poolID: identity.poolID, at: now, actor: actor, action: "link.created",
                        target: "user:\(identity.userID)", after: .object(["identity": identity.auditValue, "reason": .string("the user linked it after a fresh sign-in")])))
                    return true
                }
            } catch is LostRace {
                continue
            }
        }
        throw DirectoryError(.conflict, "the identity is being linked by another request; try again")
    }

    public func completePendingLink(_ pending: PendingLink, userID: String, now: Date) async throws -> User {
        try await transaction { db in
            let pool = pending.poolID.rawValue
            guard pending.candidateUserIDs.contains(userID), var user = try await Self.loadUser(db, pool: pool, id: userID) else {
                throw DirectoryError(.invalid, "the account proven is not the one this sign-in would link to")
            }
            if let existing = try await Self.linkedUserID(db, pending.identity) {
                guard existing == userID else { throw DirectoryError(.conflict, "the identity was linked to another account meanwhile") }
            } else {
                do {
                    try await Self.insertLink(db, pending.identity, userID: userID, now: now)
                } catch is LostRace {
                    throw DirectoryError(.conflict, "the identity was linked to another account meanwhile")
                }
            }
            try await Self.applyAttributes(db, &user, pending.attributes, now: now)
            var linked = pending.identity
            linked.userID = userID
            try await Self.audit(db, AuditEntry(
                id: LoginSample.newID(at: Date()), poolID: pending.poolID, at: now, actor: "login", action: "link.created", target: "user:\(userID)",
                after: .object(["identity": linked.auditValue, "reason": .string("the person signed in to the existing account first")])))
            return user
        }
    }

    /// Takes the user row's lock (a no-op UPDATE; SQLite locks the database) so that link changes of
    /// one user queue up.
    static func lockUser(_ db: any SQLDatabase, pool: String, id: String) async throws -> Bool {
        try await db.raw("UPDATE users SET updated_at = updated_at WHERE pool_id = \(bind: pool) AND id = \(bind: id) RETURNING id").first() != nil
    }

    public func unlinkIdentity(pool: PoolID, providerName: String, upstreamIssuer: String, upstreamSubject: String, owner: String?, actor: String, now: Date) async throws {
        try await transaction { db in
            let p = pool.rawValue
            let identity = LinkedIdentity(poolID: pool, providerName: providerName, providerKind: .oidc, upstreamIssuer: upstreamIssuer, upstreamSubject: upstreamSubject, userID: "", createdAt: now)
            guard let userID = try await Self.linkedUserID(db, identity), owner.map({ $0 == userID }) ?? true else {
                throw DirectoryError(.notFound, "no such linked identity")
            }
            _ = try await Self.lockUser(db, pool: p, id: userID)
            let count = try await db.raw("SELECT COUNT(*) AS n FROM linked_identities WHERE pool_id = \(bind: p) AND user_id = \(bind: userID)").first()?.int("n") ?? 0
            guard count > 1 else { throw DirectoryError(.conflict, "this is the user's last linked identity; it cannot be unlinked") }
            let deleted = try await db.raw("DELETE FROM linked_identities WHERE pool_id = \(bind: p) AND provider_name = \(bind: providerName) AND upstream_issuer = \(bind: upstreamIssuer) AND upstream_subject = \(bind: upstreamSubject) AND user_id = \(bind: userID) RETURNING user_id").first()
            guard deleted != nil else { throw DirectoryError(.conflict, "the identity moved meanwhile; try again") }
            var removed = identity
            removed.userID = userID
            try await Self.audit(db, AuditEntry(id: LoginSample.newID(at: Date()), poolID: pool, at: now, actor: actor, action: "link.removed", target: "user:\(userID)", before: removed.auditValue))
        }
    }

    /// Replaces the memberships `provider`'s mapping gave the user with `groups` (those the pool has).
    /// A membership an admin made is left alone, and is not taken over by the mapping.
    static func assignMappedGroups(_ db: any SQLDatabase, pool: String, userID: String, provider: String, groups: [String]) async throws {
        try await db.raw("DELETE FROM group_members WHERE pool_id = \(bind: pool) AND user_id = \(bind: userID) AND source = \(bind: provider)").run()
        for group in groups {
            try await db.raw("""
                INSERT INTO group_members (pool_id, group_name, user_id, source)
                SELECT pool_id, name, \(bind: userID), \(bind: provider) FROM pool_groups WHERE pool_id = \(bind: pool) AND name = \(bind: group)
                ON CONFLICT DO NOTHING
                """).run()
        }
    }

    public func user(pool: PoolID, id: String) async throws -> User? {
        try await session { db in
            try await db.raw("SELECT \(unsafeRaw: Self.userColumns) FROM users WHERE pool_id = \(bind: pool.rawValue) AND id = \(bind: id)").first().map(Self.decodeUser)
        }
    }

    public func user(pool: PoolID, username: String) async throws -> User? {
        try await session { db in
            try await db.raw("SELECT \(unsafeRaw: Self.userColumns) FROM users WHERE pool_id = \(bind: pool.rawValue) AND username = \(bind: username)").first().map(Self.decodeUser)
        }
    }

    public func listUsers(pool: PoolID, after: String?, limit: Int) async throws -> [User] {
        let limit = Int64(max(1, min(limit, 1000)))
        return try await session { db in
            try await db.raw("SELECT \(unsafeRaw: Self.userColumns) FROM users WHERE pool_id = \(bind: pool.rawValue) AND username > \(bind: after ?? "") ORDER BY username LIMIT \(bind: limit)").all().map(Self.decodeUser)
        }
    }

    public func countUsers(pool: PoolID) async throws -> Int {
        try await session { db in
            Int(try await db.raw("SELECT COUNT(*) AS n FROM users WHERE pool_id = \(bind: pool.rawValue)").first()?.int("n") ?? 0)
        }
    }

    public func setUserEnabled(pool: PoolID, id: String, enabled: Bool, now: Date) async throws {
        let found = try await session { db in
            try await db.raw("UPDATE users SET enabled = \(bind: Int64(enabled ? 1 : 0)), updated_at = \(bind: now.epochSeconds) WHERE pool_id = \(bind: pool.rawValue) AND id = \(bind: id) RETURNING id").first() != nil
        }
        guard found else { throw DirectoryError(.notFound, "no user \(id) in pool \(pool)") }
        if !enabled {
            // A disabled user keeps no working refresh token.
            try await session { db in
                try await db.raw("UPDATE refresh_families SET revoked_at = \(bind: now.epochSeconds) WHERE pool_id = \(bind: pool.rawValue) AND user_id = \(bind: id) AND revoked_at IS NULL").run()
            }
        }
    }

    public func deleteUser(pool: PoolID, id: String) async throws {
        try await transaction { db in try await Self.deleteUserRows(db, pool: pool.rawValue, id: id) }
    }

    static func deleteUserRows(_ db: any SQLDatabase, pool p: String, id: String) async throws {
        try await db.raw("DELETE FROM linked_identities WHERE pool_id = \(bind: p) AND user_id = \(bind: id)").run()
        try await db.raw("DELETE FROM group_members WHERE pool_id = \(bind: p) AND user_id = \(bind: id)").run()
        try await db.raw("DELETE FROM refresh_tokens WHERE family_id IN (SELECT id FROM refresh_families WHERE pool_id = \(bind: p) AND user_id = \(bind: id))").run()
        try await db.raw("DELETE FROM refresh_families WHERE pool_id = \(bind: p) AND user_id = \(bind: id)").run()
        try await db.raw("DELETE FROM users WHERE pool_id = \(bind: p) AND id = \(bind: id)").run()
    }

    public func userID(pool: PoolID, providerName: String, upstreamIssuer: String, upstreamSubject: String) async throws -> String? {
        try await session { db in
            try await db.raw("SELECT user_id FROM linked_identities WHERE pool_id = \(bind: pool.rawValue) AND provider_name = \(bind: providerName) AND upstream_issuer = \(bind: upstreamIssuer) AND upstream_subject = \(bind: upstreamSubject)").first()
                .map { try $0.string("user_id") }
        }
    }

    public func linkedIdentities(pool: PoolID, userID: String) async throws -> [LinkedIdentity] {
        try await session { db in
            try await db.raw("SELECT pool_id, provider_name, upstream_subject, provider_kind, upstream_issuer, user_id, created_at FROM linked_identities WHERE pool_id = \(bind: pool.rawValue) AND user_id = \(bind: userID) ORDER BY created_at, provider_name").all().map { row in
                LinkedIdentity(
                    poolID: try PoolID(try row.string("pool_id")), providerName: try row.string("provider_name"),
                    providerKind: ProviderKind(rawValue: try row.string("provider_kind")) ?? .oidc,
                    upstreamIssuer: try row.string("upstream_issuer"), upstreamSubject: try row.string("upstream_subject"),
                    userID: try row.string("user_id"), createdAt: Date(epochSeconds: try row.int("created_at")))
            }
        }
    }

    public func createGroup(_ group: Group) async throws {
        guard !group.name.isEmpty, group.name.utf8.count <= 128 else { throw DirectoryError(.invalid, "a group name is 1-128 characters") }
        try await session { db in
            try await db.raw("INSERT INTO pool_groups (pool_id, name, description) VALUES (\(bind: group.poolID.rawValue), \(bind: group.name), \(bind: group.description))").run()
        }
    }

    public func listGroups(pool: PoolID) async throws -> [Group] {
        try await session { db in
            try await db.raw("SELECT name, description FROM pool_groups WHERE pool_id = \(bind: pool.rawValue) ORDER BY name").all().map {
                Group(poolID: pool, name: try $0.string("name"), description: try $0.string("description"))
            }
        }
    }

    public func addUser(pool: PoolID, userID: String, toGroup group: String) async throws {
        try await transaction { db in
            guard try await db.raw("SELECT name FROM pool_groups WHERE pool_id = \(bind: pool.rawValue) AND name = \(bind: group)").first() != nil else {
                throw DirectoryError(.notFound, "no group \(group) in pool \(pool)")
            }
            guard try await db.raw("SELECT id FROM users WHERE pool_id = \(bind: pool.rawValue) AND id = \(bind: userID)").first() != nil else {
                throw DirectoryError(.notFound, "no user \(userID) in pool \(pool)")
            }
            // An admin's membership is the admin's even if a mapping made it first: no login removes it.
            try await db.raw("INSERT INTO group_members (pool_id, group_name, user_id, source) VALUES (\(bind: pool.rawValue), \(bind: group), \(bind: userID), NULL) ON CONFLICT (pool_id, group_name, user_id) DO UPDATE SET source = NULL").run()
        }
    }

    public func groups(pool: PoolID, userID: String) async throws -> [String] {
        try await session { db in
            try await db.raw("SELECT group_name FROM group_members WHERE pool_id = \(bind: pool.rawValue) AND user_id = \(bind: userID) ORDER BY group_name").all().map { try $0.string("group_name") }
        }
    }
}
