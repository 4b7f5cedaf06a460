public import Foundation
public import GatehouseCore
internal import SQLKit

extension SQLDirectory {
    // MARK: Login transactions and codes

    public func saveLoginTransaction(_ transaction: LoginTransaction) async throws {
        let body = try Body.encode(transaction)
        try await session { db in
            try await db.raw("INSERT INTO login_transactions (id, pool_id, browser_binding_hash, body, expires_at) VALUES (\(bind: transaction.id), \(bind: transaction.poolID.rawValue), \(bind: transaction.browserBindingHash), \(bind: body), \(bind: transaction.expiresAt.epochSeconds))").run()
        }
    }

    public func consumeLoginTransaction(id: String, browserBindingHash: String, now: Date) async throws -> LoginTransaction? {
        try await session { db in
            guard let row = try await db.raw("DELETE FROM login_transactions WHERE id = \(bind: id) AND browser_binding_hash = \(bind: browserBindingHash) RETURNING body, expires_at").first() else { return nil }
            guard try row.int("expires_at") > now.epochSeconds else { return nil }
            return try Body.decode(LoginTransaction.self, try row.string("body"))
        }
    }

    public func savePendingLink(_ link: PendingLink) async throws {
        let body = try Body.encode(link)
        try await session { db in
            try await db.raw("INSERT INTO pending_links (id, pool_id, browser_binding_hash, body, expires_at) VALUES (\(bind: link.id), \(bind: link.poolID.rawValue), \(bind: link.browserBindingHash), \(bind: body), \(bind: link.expiresAt.epochSeconds))").run()
        }
    }

    public func pendingLink(id: String, browserBindingHash: String, now: Date) async throws -> PendingLink? {
        try await session { db in
            guard let row = try await db.raw("SELECT body, expires_at FROM pending_links WHERE id = \(bind: id) AND browser_binding_hash = \(bind: browserBindingHash)").first(),
                try row.int("expires_at") > now.epochSeconds
            else { return nil }
            return try Body.decode(PendingLink.self, try row.string("body"))
        }
    }

    public func consumePendingLink(id: String, browserBindingHash: String, now: Date) async throws -> PendingLink? {
        try await session { db in
            guard let row = try await db.raw("DELETE FROM pending_links WHERE id = \(bind: id) AND browser_binding_hash = \(bind: browserBindingHash) RETURNING body, expires_at").first() else { return nil }
            guard try row.int("expires_at") > now.epochSeconds else { return nil }
            return try Body.decode(PendingLink.self, try row.string("body"))
        }
    }

    public func saveLinkIntent(_ intent: LinkIntent) async throws {
        let body = try Body.encode(intent)
        try await session { db in
            try await db.raw("INSERT INTO link_intents (ticket_hash, pool_id, body, expires_at) VALUES (\(bind: intent.ticketHash), \(bind: intent.poolID.rawValue), \(bind: body), \(bind: intent.expiresAt.epochSeconds))").run()
        }
    }

    public func consumeLinkIntent(ticketHash: String, now: Date) async throws -> LinkIntent? {
        try await session { db in
            guard let row = try await db.raw("DELETE FROM link_intents WHERE ticket_hash = \(bind: ticketHash) RETURNING body, expires_at").first(),
                try row.int("expires_at") > now.epochSeconds
            else { return nil }
            return try Body.decode(LinkIntent.self, try row.string("body"))
        }
    }

    public func saveAuthorizationCode(_ code: AuthorizationCode) async throws {
        let body = try Body.encode(code)
        try await session { db in
            try await db.raw("INSERT INTO authorization_codes (code_hash, pool_id, family_id, body, expires_at, consumed_at) VALUES (\(bind: code.codeHash), \(bind: code.poolID.rawValue), \(bind: code.familyID), \(bind: body), \(bind: code.expiresAt.epochSeconds), NULL)").run()
        }
    }

    public func authorizationCode(hash: String) async throws -> AuthorizationCode? {
        try await session { db in
            try await db.raw("SELECT body FROM authorization_codes WHERE code_hash = \(bind: hash)").first()
                .map { try Body.codes.decode(try $0.string("body")) }
        }
    }

    public func redeemAuthorizationCode(hash: String, now: Date) async throws -> CodeRedemption {
        let t = now.epochSeconds
        // The common case is one conditional statement, atomic by itself; only a failed redemption
        // needs a transaction, to tell a replay from an unknown code and revoke what the replay's
        // original produced.
        let redeemed = try await session { db in
            try await db.raw("UPDATE authorization_codes SET consumed_at = \(bind: t) WHERE code_hash = \(bind: hash) AND consumed_at IS NULL AND expires_at > \(bind: t) RETURNING body").first()
                .map { try Body.codes.decode(try $0.string("body")) }
        }
        if let redeemed { return .redeemed(redeemed) }
        return try await transaction { db in
            guard let row = try await db.raw("SELECT body, consumed_at FROM authorization_codes WHERE code_hash = \(bind: hash)").first(),
                try row.optionalInt("consumed_at") != nil
            else { return .invalid }
            // A second presentation: revoke whatever the first one produced. The family row may not
            // exist yet (the first exchange still in flight); a revoked tombstone then makes that
            // exchange's createFamily fail.
            let code = try Body.decode(AuthorizationCode.self, try row.string("body"))
            let tombstone = RefreshTokenFamily(id: code.familyID, poolID: code.poolID, clientID: code.clientID, userID: code.userID, scope: code.scope, authTime: code.authTime, providerName: code.providerName, createdAt: now, expiresAt: now.addingTimeInterval(86400), revokedAt: now)
            try await db.raw("""
                INSERT INTO refresh_families (id, pool_id, client_id, user_id, body, expires_at, revoked_at)
                VALUES (\(bind: tombstone.id), \(bind: code.poolID.rawValue), \(bind: code.clientID), \(bind: code.userID), \(bind: try Body.encode(tombstone)), \(bind: tombstone.expiresAt.epochSeconds), \(bind: t))
                ON CONFLICT (id) DO UPDATE SET revoked_at = \(bind: t) WHERE refresh_families.revoked_at IS NULL
                """).run()
            return .replayed(familyID: code.familyID)
        }
    }

    // MARK: Refresh tokens

    public func createFamily(_ family: RefreshTokenFamily, firstTokenHash: String) async throws {
        try await transaction { db in
            try await db.raw("INSERT INTO refresh_families (id, pool_id, client_id, user_id, body, expires_at, revoked_at) VALUES (\(bind: family.id), \(bind: family.poolID.rawValue), \(bind: family.clientID), \(bind: family.userID), \(bind: try Body.encode(family)), \(bind: family.expiresAt.epochSeconds), \(bind: family.revokedAt?.epochSeconds))").run()
            try await db.raw("INSERT INTO refresh_tokens (token_hash, family_id, client_id, created_at, spent_at) VALUES (\(bind: firstTokenHash), \(bind: family.id), \(bind: family.clientID), \(bind: family.createdAt.epochSeconds), NULL)").run()
        }
    }

    public func rotate(presentedHash: String, clientID: String, pool: PoolID, requestedScope: [String]?, newTokenHash: String, upstream: UpstreamGrant?, now: Date) async throws -> RefreshRotation {
        let t = now.epochSeconds
        return try await transaction { db in
            guard let token = try await db.raw("SELECT family_id, client_id, spent_at FROM refresh_tokens WHERE token_hash = \(bind: presentedHash)").first() else {
                return .invalid
            }
            let familyID = try token.string("family_id")
            guard try token.string("client_id") == clientID else { return .invalid }
            if try token.optionalInt("spent_at") != nil {
                try await db.raw("UPDATE refresh_families SET revoked_at = \(bind: t) WHERE id = \(bind: familyID) AND revoked_at IS NULL").run()
                return .reuseDetected(familyID: familyID)
            }
            // A no-op UPDATE takes the family's row lock on both engines (SQLite's lock is the whole
            // database); a revocation in flight is waited for and then makes this find nothing.
            guard let famRow = try await db.raw("UPDATE refresh_families SET revoked_at = revoked_at WHERE id = \(bind: familyID) AND revoked_at IS NULL AND expires_at > \(bind: t) RETURNING body, pool_id").first(),
                try famRow.string("pool_id") == pool.rawValue
            else { return .invalid }
            var family = try Body.decode(RefreshTokenFamily.self, try famRow.string("body"))
            if let requestedScope, !requestedScope.allSatisfy(family.scope.contains) { return .scopeWidened }
            // The conditional UPDATE is what makes rotation single-use under concurrency.
            guard try await db.raw("UPDATE refresh_tokens SET spent_at = \(bind: t) WHERE token_hash = \(bind: presentedHash) AND spent_at IS NULL RETURNING family_id").first() != nil else {
                try await db.raw("UPDATE refresh_families SET revoked_at = \(bind: t) WHERE id = \(bind: familyID) AND revoked_at IS NULL").run()
                return .reuseDetected(familyID: familyID)
            }
            try await db.raw("INSERT INTO refresh_tokens (token_hash, family_id, client_id, created_at, spent_at) VALUES (\(bind: newTokenHash), \(bind: familyID), \(bind: clientID), \(bind: t), NULL)").run()
            if let upstream {
                family.upstream = upstream
                try await db.raw("UPDATE refresh_families SET body = \(bind: try Body.encode(family)) WHERE id = \(bind: familyID)").run()
            }
            return .rotated(family)
        }
    }

    public func liveFamily(tokenHash: String, clientID: String, pool: PoolID, now: Date) async throws -> RefreshTokenFamily? {
        try await session { db in
            guard let row = try await db.raw("""
                SELECT f.body FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
                WHERE t.token_hash = \(bind: tokenHash) AND t.client_id = \(bind: clientID) AND t.spent_at IS NULL
                  AND f.pool_id = \(bind: pool.rawValue) AND f.revoked_at IS NULL AND f.expires_at > \(bind: now.epochSeconds)
                """).first() else { return nil }
            return try Body.decode(RefreshTokenFamily.self, try row.string("body"))
        }
    }

    public func revokeFamily(containing tokenHash: String, clientID: String, now: Date) async throws {
        try await session { db in
            try await db.raw("UPDATE refresh_families SET revoked_at = \(bind: now.epochSeconds) WHERE revoked_at IS NULL AND id = (SELECT family_id FROM refresh_tokens WHERE token_hash = \(bind: tokenHash) AND client_id = \(bind: clientID))").run()
        }
    }

    public func revokeFamily(id: String, now: Date) async throws {
        try await session { db in
            try await db.raw("UPDATE refresh_families SET revoked_at = \(bind: now.epochSeconds) WHERE id = \(bind: id) AND revoked_at IS NULL").run()
        }
    }

    public func family(id: String) async throws -> RefreshTokenFamily? {
        try await session { db in
            guard let row = try await db.raw("SELECT body, revoked_at FROM refresh_families WHERE id = \(bind: id)").first() else { return nil }
            var family = try Body.decode(RefreshTokenFamily.self, try row.string("body"))
            family.revokedAt = try row.optionalInt("revoked_at").map(Date.init(epochSeconds:))
            return family
        }
    }

    public func activeFamilies(pool: PoolID, userID: String, now: Date) async throws -> [RefreshTokenFamily] {
        try await session { db in
            try await db.raw("SELECT body FROM refresh_families WHERE pool_id = \(bind: pool.rawValue) AND user_id = \(bind: userID) AND revoked_at IS NULL AND expires_at > \(bind: now.epochSeconds) ORDER BY id").all()
                .map { try Body.decode(RefreshTokenFamily.self, try $0.string("body")) }
        }
    }

    // MARK: Signing keys

    public func addSigningKey(_ key: SigningKeyRecord) async throws {
        let body = try Body.encode(key)
        try await session { db in
            try await db.raw("INSERT INTO signing_keys (pool_id, kid, body, created_at) VALUES (\(bind: key.poolID.rawValue), \(bind: key.kid), \(bind: body), \(bind: key.createdAt.epochSeconds))").run()
        }
    }

    public func updateSigningKey(_ key: SigningKeyRecord) async throws {
        let body = try Body.encode(key)
        try await session { db in
            try await db.raw("UPDATE signing_keys SET body = \(bind: body) WHERE pool_id = \(bind: key.poolID.rawValue) AND kid = \(bind: key.kid)").run()
        }
    }

    public func signingKeys(pool: PoolID) async throws -> [SigningKeyRecord] {
        try await session { db in
            try await db.raw("SELECT body FROM signing_keys WHERE pool_id = \(bind: pool.rawValue) ORDER BY created_at, kid").all()
                .map { try Body.decode(SigningKeyRecord.self, try $0.string("body")) }
        }
    }

    // MARK: Replay cache

    public func remember(namespace: String, key: String, expiresAt: Date, now: Date) async throws -> Bool {
        try await session { db in
            try await db.raw("""
                INSERT INTO replay_cache (namespace, entry, expires_at) VALUES (\(bind: namespace), \(bind: key), \(bind: expiresAt.epochSeconds))
                ON CONFLICT (namespace, entry) DO UPDATE SET expires_at = excluded.expires_at
                WHERE replay_cache.expires_at <= \(bind: now.epochSeconds)
                RETURNING entry
                """).first() != nil
        }
    }
}
