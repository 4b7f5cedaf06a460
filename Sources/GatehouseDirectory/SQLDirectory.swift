public import Foundation
public import GatehouseCore
internal import SQLKit
internal import SQLiteKit
internal import PostgresKit

/// The Directory on SQL: one implementation of every store, shared by the SQLite and PostgreSQL
/// backends, which differ only in how they hand out sessions.
///
/// Thread-safe. Single-use records are consumed with one conditional `UPDATE … RETURNING` or
/// `DELETE … RETURNING`, so exactly one of several concurrent callers wins on either engine.
public final class SQLDirectory: Directory {
    let sessions: any SQLSessionProvider

    init(sessions: any SQLSessionProvider) {
        self.sessions = sessions
    }

    public var backendName: String { sessions.backend.rawValue }

    // MARK: Plumbing

    func session<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        do {
            return try await sessions.withSession(body)
        } catch let e as DirectoryError {
            throw e
        } catch let e as LostRace {
            throw e
        } catch {
            throw Self.translate(error)
        }
    }

    func transaction<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        let begin = sessions.backend == .sqlite ? "BEGIN IMMEDIATE" : "BEGIN"
        return try await session { db in
            try await db.raw("\(unsafeRaw: begin)").run()
            do {
                let result = try await body(db)
                try await db.raw("COMMIT").run()
                return result
            } catch {
                try? await db.raw("ROLLBACK").run()
                throw error
            }
        }
    }

    /// Maps driver errors to `DirectoryError` without echoing bound values.
    static func translate(_ error: any Error) -> DirectoryError {
        let conflict = DirectoryError(.conflict, "a record with the same key already exists")
        if let e = error as? SQLiteStatementError, e.isUniqueViolation {
            return conflict
        }
        if let e = error as? PSQLError, e.serverInfo?[.sqlState] == "23505" {
            return conflict
        }
        return DirectoryError(.unavailable, "database error: \(type(of: error))")
    }

    // MARK: Lifecycle

    public func migrate() async throws {
        let backend = sessions.backend
        try await transaction { db in
            if backend == .postgresql {
                // Several bridge processes may start together: one migrates, the others wait.
                try await db.raw("SELECT pg_advisory_xact_lock(4242424242)").run()
            }
            try await db.raw("CREATE TABLE IF NOT EXISTS gatehouse_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)").run()
            let applied = Set(try await db.raw("SELECT version FROM gatehouse_migrations").all().map { try $0.int("version") })
            for migration in Migrations.all where !applied.contains(migration.version) {
                for statement in migration.statements {
                    try await db.raw("\(unsafeRaw: statement)").run()
                }
                try await db.raw("INSERT INTO gatehouse_migrations (version, name, applied_at) VALUES (\(bind: migration.version), \(bind: migration.name), \(bind: Date().epochSeconds))").run()
            }
        }
    }

    public func ping() async throws {
        _ = try await session { db in try await db.raw("SELECT 1 AS one").first() != nil }
    }

    public func shutdown() async throws { try await sessions.shutdown() }

    public func purgeExpired(now: Date) async throws {
        let t = now.epochSeconds
        let dayAgo = t - 86400
        try await transaction { db in
            try await db.raw("DELETE FROM login_transactions WHERE expires_at <= \(bind: t)").run()
            try await db.raw("DELETE FROM pending_links WHERE expires_at <= \(bind: t)").run()
            try await db.raw("DELETE FROM link_intents WHERE expires_at <= \(bind: t)").run()
            // Redeemed codes are kept a day past expiry so a replay is still recognised and punished.
            try await db.raw("DELETE FROM authorization_codes WHERE expires_at <= \(bind: dayAgo)").run()
            try await db.raw("DELETE FROM replay_cache WHERE expires_at <= \(bind: t)").run()
            try await db.raw("DELETE FROM refresh_tokens WHERE family_id IN (SELECT id FROM refresh_families WHERE expires_at <= \(bind: dayAgo))").run()
            try await db.raw("DELETE FROM refresh_families WHERE expires_at <= \(bind: dayAgo)").run()
        }
    }

    // MARK: Pools

    struct PoolSettings: Codable {
        var customAttributes: [CustomAttribute]
    }

    public func createPool(_ pool: Pool) async throws {
        try pool.validate()
        let settings = try Body.encode(PoolSettings(customAttributes: pool.customAttributes))
        try await session { db in
            try await db.raw("INSERT INTO pools (id, display_name, signing_alg, created_at, settings) VALUES (\(bind: pool.id.rawValue), \(bind: pool.displayName), \(bind: pool.signingAlgorithm.rawValue), \(bind: pool.createdAt.epochSeconds), \(bind: settings))").run()
        }
    }

    public func updatePool(_ pool: Pool) async throws {
        try pool.validate()
        let settings = try Body.encode(PoolSettings(customAttributes: pool.customAttributes))
        let found = try await session { db in
            try await db.raw("UPDATE pools SET display_name = \(bind: pool.displayName), settings = \(bind: settings) WHERE id = \(bind: pool.id.rawValue) RETURNING id").first() != nil
        }
        guard found else { throw DirectoryError(.notFound, "no pool \(pool.id)") }
    }

    public func pool(_ id: PoolID) async throws -> Pool? {
        try await session { db in
            try await db.raw("SELECT id, display_name, signing_alg, created_at, settings FROM pools WHERE id = \(bind: id.rawValue)").first().map(Self.decodePool)
        }
    }

    public func listPools() async throws -> [Pool] {
        try await session { db in
            try await db.raw("SELECT id, display_name, signing_alg, created_at, settings FROM pools ORDER BY id").all().map(Self.decodePool)
        }
    }

    static func decodePool(_ row: any SQLRow) throws -> Pool {
        guard let alg = SigningAlgorithm(rawValue: try row.string("signing_alg")) else {
            throw DirectoryError(.invalid, "stored pool has an unknown signing algorithm")
        }
        let settingsText = try row.string("settings")
        let settings = settingsText == "{}" ? PoolSettings(customAttributes: []) : try Body.decode(PoolSettings.self, settingsText)
        return Pool(id: try PoolID(try row.string("id")), displayName: try row.string("display_name"), signingAlgorithm: alg, createdAt: Date(epochSeconds: try row.int("created_at")), customAttributes: settings.customAttributes)
    }

    // MARK: App clients

    public func createClient(_ client: AppClient) async throws {
        try client.validate()
        let body = try Body.encode(client)
        try await session { db in
            try await db.raw("INSERT INTO app_clients (pool_id, client_id, body, created_at) VALUES (\(bind: client.poolID.rawValue), \(bind: client.clientID), \(bind: body), \(bind: client.createdAt.epochSeconds))").run()
        }
    }

    public func updateClient(_ client: AppClient) async throws {
        try client.validate()
        let body = try Body.encode(client)
        let found = try await session { db in
            try await db.raw("UPDATE app_clients SET body = \(bind: body) WHERE pool_id = \(bind: client.poolID.rawValue) AND client_id = \(bind: client.clientID) RETURNING client_id").first() != nil
        }
        guard found else { throw DirectoryError(.notFound, "no app client \(client.clientID) in pool \(client.poolID)") }
    }

    public func client(pool: PoolID, clientID: String) async throws -> AppClient? {
        try await session { db in
            try await db.raw("SELECT body FROM app_clients WHERE pool_id = \(bind: pool.rawValue) AND client_id = \(bind: clientID)").first()
                .map { try Body.clients.decode(try $0.string("body")) }
        }
    }

    public func listClients(pool: PoolID) async throws -> [AppClient] {
        try await session { db in
            try await db.raw("SELECT body FROM app_clients WHERE pool_id = \(bind: pool.rawValue) ORDER BY client_id").all()
                .map { try Body.decode(AppClient.self, try $0.string("body")) }
        }
    }

    public func deleteClient(pool: PoolID, clientID: String) async throws {
        try await session { db in
            try await db.raw("DELETE FROM app_clients WHERE pool_id = \(bind: pool.rawValue) AND client_id = \(bind: clientID)").run()
        }
    }

    // MARK: Identity providers

    public func createProvider(_ provider: IdentityProvider) async throws {
        try provider.validate()
        let body = try Body.encode(provider)
        try await session { db in
            try await db.raw("INSERT INTO identity_providers (pool_id, name, body, created_at) VALUES (\(bind: provider.poolID.rawValue), \(bind: provider.name), \(bind: body), \(bind: provider.createdAt.epochSeconds))").run()
        }
    }

    public func updateProvider(_ provider: IdentityProvider) async throws {
        try provider.validate()
        let body = try Body.encode(provider)
        let found = try await session { db in
            try await db.raw("UPDATE identity_providers SET body = \(bind: body) WHERE pool_id = \(bind: provider.poolID.rawValue) AND name = \(bind: provider.name) RETURNING name").first() != nil
        }
        guard found else { throw DirectoryError(.notFound, "no provider \(provider.name) in pool \(provider.poolID)") }
    }

    public func provider(pool: PoolID, name: String) async throws -> IdentityProvider? {
        try await session { db in
            try await db.raw("SELECT body FROM identity_providers WHERE pool_id = \(bind: pool.rawValue) AND name = \(bind: name)").first()
                .map { try Body.providers.decode(try $0.string("body")) }
        }
    }

    public func listProviders(pool: PoolID) async throws -> [IdentityProvider] {
        try await session { db in
            try await db.raw("SELECT body FROM identity_providers WHERE pool_id = \(bind: pool.rawValue) ORDER BY name").all()
                .map { try Body.decode(IdentityProvider.self, try $0.string("body")) }
        }
    }

    public func deleteProvider(pool: PoolID, name: String) async throws {
        try await session { db in
            try await db.raw("DELETE FROM identity_providers WHERE pool_id = \(bind: pool.rawValue) AND name = \(bind: name)").run()
            // Versions stay (they are history); the kept logins go with the provider.
            try await db.raw("DELETE FROM login_samples WHERE pool_id = \(bind: pool.rawValue) AND provider_name = \(bind: name)").run()
        }
    }
}

extension SQLDirectory {
    /// Runs one statement outside any store protocol: for tests and operational tooling inside the
    /// package (creating a scratch database, counting rows). Never given user input.
    package func execute(unsafeSQL sql: String) async throws {
        try await session { db in try await db.raw("\(unsafeRaw: sql)").run() }
    }

    /// Runs statements in one transaction: all of them, or (if one fails) none.
    package func execute(unsafeSQLInTransaction statements: [String]) async throws {
        try await transaction { db in
            for sql in statements { try await db.raw("\(unsafeRaw: sql)").run() }
        }
    }

    /// Counts the rows of a table (tests assert that rejected logins leave nothing behind).
    package func count(table: String) async throws -> Int {
        try await session { db in Int(try await db.raw("SELECT COUNT(*) AS n FROM \(unsafeRaw: table)").first()?.int("n") ?? 0) }
    }

    /// Every value of a text column, for tests that check what is stored (and what is not).
    package func rows(table: String, column: String) async throws -> [String] {
        try await session { db in try await db.raw("SELECT \(unsafeRaw: column) AS v FROM \(unsafeRaw: table)").all().map { try $0.string("v") } }
    }

    /// Fills `pool` with `count` users `bench-{i}` (email `user{i}@example.com`), each with one
    /// identity of provider `Corp` (issuer `https://corp.example`, subject `s{i}`), in batches
    /// written by the database itself: for the benchmark of lookups in a large pool.
    package func seedUsers(pool: PoolID, count: Int, batch: Int = 100_000) async throws {
        var start = 1
        while start <= count {
            let (first, end) = (start, min(count, start + batch - 1))
            let p = pool.rawValue
            try await transaction { db in
                try await db.raw("""
                    WITH RECURSIVE s(i) AS (SELECT \(bind: Int64(first)) UNION ALL SELECT i + 1 FROM s WHERE i < \(bind: Int64(end)))
                    INSERT INTO users (pool_id, id, username, email, attributes, enabled, created_at, updated_at)
                    SELECT \(bind: p), 'id-' || i, 'Corp_s' || i, 'user' || i || '@example.com', '{"email":"user' || i || '@example.com"}', 1, 0, 0 FROM s
                    """).run()
                try await db.raw("""
                    WITH RECURSIVE s(i) AS (SELECT \(bind: Int64(first)) UNION ALL SELECT i + 1 FROM s WHERE i < \(bind: Int64(end)))
                    INSERT INTO linked_identities (pool_id, provider_name, upstream_subject, provider_kind, upstream_issuer, user_id, created_at)
                    SELECT \(bind: p), 'Corp', 's' || i, 'oidc', 'https://corp.example', 'id-' || i, 0 FROM s
                    """).run()
            }
            start = end + 1
        }
        if sessions.backend == .postgresql { try await execute(unsafeSQL: "ANALYZE") }
    }
}
