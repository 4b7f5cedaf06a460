public import Foundation
public import GatehouseCore
internal import SQLKit

extension SQLDirectory {
    public func saveMapping(pool: PoolID, provider: String, mapping: AttributeMapping, author: String, note: String?, now: Date) async throws -> MappingVersion {
        try mapping.validate()
        for _ in 0..<5 {
            // A no-op UPDATE takes the provider row's lock first (SQLite's lock is the whole database), so
            // saves of one mapping queue up and each reads the version the previous one wrote. The
            // INSERT's conflict check stays as a second line: a conflicting save rolls back and retries.
            let saved: MappingVersion? = try await transaction { db in
                let p = pool.rawValue
                guard let row = try await db.raw("UPDATE identity_providers SET body = body WHERE pool_id = \(bind: p) AND name = \(bind: provider) RETURNING body").first() else {
                    throw DirectoryError(.notFound, "no provider \(provider) in pool \(pool)")
                }
                var stored = try Body.decode(IdentityProvider.self, try row.string("body"))
                let last = try await db.raw("SELECT body FROM mapping_versions WHERE pool_id = \(bind: p) AND provider_name = \(bind: provider) ORDER BY version DESC LIMIT 1").first()
                    .map { try Body.decode(MappingVersion.self, try $0.string("body")) }
                let before = last?.mapping ?? AttributeMapping(rules: [])
                let version = MappingVersion(
                    poolID: pool, providerName: provider, version: (last?.version ?? 0) + 1, mapping: mapping, author: author,
                    createdAt: now, changes: mapping.changes(from: before), note: note)
                let inserted = try await db.raw("""
                    INSERT INTO mapping_versions (pool_id, provider_name, version, body, created_at)
                    VALUES (\(bind: p), \(bind: provider), \(bind: Int64(version.version)), \(bind: try Body.encode(version)), \(bind: now.epochSeconds))
                    ON CONFLICT DO NOTHING RETURNING version
                    """).first()
                guard inserted != nil else { return nil }
                stored.attributeMapping = mapping
                try await db.raw("UPDATE identity_providers SET body = \(bind: try Body.encode(stored)) WHERE pool_id = \(bind: p) AND name = \(bind: provider)").run()
                return version
            }
            if let saved { return saved }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw DirectoryError(.conflict, "the mapping of \(provider) is being changed by someone else; try again")
    }

    public func mappingVersions(pool: PoolID, provider: String) async throws -> [MappingVersion] {
        try await session { db in
            try await db.raw("SELECT body FROM mapping_versions WHERE pool_id = \(bind: pool.rawValue) AND provider_name = \(bind: provider) ORDER BY version DESC").all()
                .map { try Body.decode(MappingVersion.self, try $0.string("body")) }
        }
    }

    public func mappingVersion(pool: PoolID, provider: String, version: Int) async throws -> MappingVersion? {
        try await session { db in
            try await db.raw("SELECT body FROM mapping_versions WHERE pool_id = \(bind: pool.rawValue) AND provider_name = \(bind: provider) AND version = \(bind: Int64(version))").first()
                .map { try Body.decode(MappingVersion.self, try $0.string("body")) }
        }
    }

    public func recordLoginSamples(_ samples: [LoginSample], keep: Int) async throws {
        guard !samples.isEmpty else { return }
        let bodies = try samples.map { try Body.encode($0) }
        var seen: [(PoolID, String)] = []
        for s in samples where !seen.contains(where: { $0 == (s.poolID, s.providerName) }) { seen.append((s.poolID, s.providerName)) }
        // In one order everywhere, so two processes flushing the same providers cannot deadlock.
        let providers = seen.sorted { ($0.0.rawValue, $0.1) < ($1.0.rawValue, $1.1) }
        try await transaction { db in
            for (sample, body) in zip(samples, bodies) {
                try await db.raw("INSERT INTO login_samples (pool_id, provider_name, id, captured_at, body) VALUES (\(bind: sample.poolID.rawValue), \(bind: sample.providerName), \(bind: sample.id), \(bind: sample.capturedAt.epochSeconds), \(bind: body))").run()
            }
            for (pool, provider) in providers {
                let p = pool.rawValue
                try await db.raw("""
                    DELETE FROM login_samples WHERE pool_id = \(bind: p) AND provider_name = \(bind: provider) AND id NOT IN (
                        SELECT id FROM login_samples WHERE pool_id = \(bind: p) AND provider_name = \(bind: provider)
                        ORDER BY id DESC LIMIT \(bind: Int64(max(1, keep))))
                    """).run()
            }
        }
    }

    public func loginSamples(pool: PoolID, provider: String, limit: Int) async throws -> [LoginSample] {
        try await session { db in
            try await db.raw("SELECT body FROM login_samples WHERE pool_id = \(bind: pool.rawValue) AND provider_name = \(bind: provider) ORDER BY id DESC LIMIT \(bind: Int64(max(1, min(limit, 100))))").all()
                .map { try Body.decode(LoginSample.self, try $0.string("body")) }
        }
    }
}

extension SQLDirectory {
    public func createAdminCredential(_ credential: AdminCredential, audit: [AuditEntry]) async throws {
        guard AdminCredential.isValidName(credential.name) else { throw DirectoryError(.invalid, "a credential name is 1-64 of A-Z a-z 0-9 . _ -") }
        let body = try Body.encode(credential)
        try await transaction { db in
            try await db.raw("INSERT INTO admin_credentials (name, secret_hash, body, revoked_at) VALUES (\(bind: credential.name), \(bind: credential.secretHash), \(bind: body), NULL)").run()
            for entry in audit { try await Self.audit(db, entry) }
        }
    }

    public func adminCredential(secretHash: String) async throws -> AdminCredential? {
        try await session { db in
            try await db.raw("SELECT body FROM admin_credentials WHERE secret_hash = \(bind: secretHash) AND revoked_at IS NULL").first()
                .map { try Body.decode(AdminCredential.self, try $0.string("body")) }
        }
    }

    public func listAdminCredentials() async throws -> [AdminCredential] {
        try await session { db in
            try await db.raw("SELECT body, revoked_at FROM admin_credentials ORDER BY name").all().map { row in
                var c = try Body.decode(AdminCredential.self, try row.string("body"))
                if let t = try row.optionalInt("revoked_at") { c.revokedAt = Date(epochSeconds: t) }
                return c
            }
        }
    }

    public func revokeAdminCredential(name: String, now: Date, audit: [AuditEntry]) async throws {
        try await transaction { db in
            guard try await db.raw("UPDATE admin_credentials SET revoked_at = \(bind: now.epochSeconds) WHERE name = \(bind: name) AND revoked_at IS NULL RETURNING name").first() != nil else {
                throw DirectoryError(.notFound, "no live credential \(name)")
            }
            for entry in audit { try await Self.audit(db, entry) }
        }
    }
}
