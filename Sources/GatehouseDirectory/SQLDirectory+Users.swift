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

    public func resolveLogin(_ login: FederatedLogin, now: Date) async throws -> LoginResolution {
        let identity = login.identity
        // A concurrent first login of the same identity makes our INSERT of the (deterministic)
        // username find the other's row: we roll back and read what the winner committed.
        for _ in 0..<5 {
            let outcome: LoginResolution? = try await transaction { db in
                let pool = identity.poolID.rawValue
                if let link = try await db.raw("SELECT user_id FROM linked_identities WHERE pool_id = \(bind: pool) AND provider_name = \(bind: identity.providerName) AND upstream_issuer = \(bind: identity.upstreamIssuer) AND upstream_subject = \(bind: identity.upstreamSubject)").first() {
                    let userID = try link.string("user_id")
                    guard let row = try await db.raw("SELECT \(unsafeRaw: Self.userColumns) FROM users WHERE pool_id = \(bind: pool) AND id = \(bind: userID)").first() else {
                        throw DirectoryError(.invalid, "a linked identity points at a missing user")
                    }
                    var user = try Self.decodeUser(row)
                    let merged = user.attributes.merging(login.attributes) { $1 }
                    if merged != user.attributes {
                        user.attributes = merged
                        user.updatedAt = now
                        try await db.raw("UPDATE users SET attributes = \(bind: try Body.encode(merged)), email = \(bind: merged["email"]?.lowercased()), updated_at = \(bind: now.epochSeconds) WHERE pool_id = \(bind: pool) AND id = \(bind: userID)").run()
                    }
                    if let groups = login.groups, !login.groupsOnCreationOnly {
                        try await Self.assignMappedGroups(db, pool: pool, userID: userID, provider: identity.providerName, groups: groups)
                    }
                    return LoginResolution(user: user, created: false)
                }
                let attributes = login.initialAttributes.merging(login.attributes) { $1 }
                let user = User(poolID: identity.poolID, id: UUID().uuidString.lowercased(), username: login.username, attributes: attributes, createdAt: now, updatedAt: now)
                let inserted = try await db.raw("""
                    INSERT INTO users (pool_id, id, username, email, attributes, enabled, created_at, updated_at)
                    VALUES (\(bind: pool), \(bind: user.id), \(bind: user.username), \(bind: attributes["email"]?.lowercased()),
                            \(bind: try Body.encode(attributes)), 1, \(bind: now.epochSeconds), \(bind: now.epochSeconds))
                    ON CONFLICT (pool_id, username) DO NOTHING RETURNING id
                    """).first()
                guard inserted != nil else { return nil }
                try await db.raw("""
                    INSERT INTO linked_identities (pool_id, provider_name, upstream_subject, provider_kind, upstream_issuer, user_id, created_at)
                    VALUES (\(bind: pool), \(bind: identity.providerName), \(bind: identity.upstreamSubject), \(bind: identity.providerKind.rawValue),
                            \(bind: identity.upstreamIssuer), \(bind: user.id), \(bind: now.epochSeconds))
                    """).run()
                if let groups = login.groups {
                    try await Self.assignMappedGroups(db, pool: pool, userID: user.id, provider: identity.providerName, groups: groups)
                }
                return LoginResolution(user: user, created: true)
            }
            if let outcome { return outcome }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw DirectoryError(.conflict, "the username for this identity is taken by a user without this linked identity")
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
        try await transaction { db in
            let p = pool.rawValue
            try await db.raw("DELETE FROM linked_identities WHERE pool_id = \(bind: p) AND user_id = \(bind: id)").run()
            try await db.raw("DELETE FROM group_members WHERE pool_id = \(bind: p) AND user_id = \(bind: id)").run()
            try await db.raw("DELETE FROM refresh_tokens WHERE family_id IN (SELECT id FROM refresh_families WHERE pool_id = \(bind: p) AND user_id = \(bind: id))").run()
            try await db.raw("DELETE FROM refresh_families WHERE pool_id = \(bind: p) AND user_id = \(bind: id)").run()
            try await db.raw("DELETE FROM users WHERE pool_id = \(bind: p) AND id = \(bind: id)").run()
        }
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
