import Foundation
import Testing
import GatehouseCore
import GatehouseDirectory
@testable import GatehouseTestSupport
import Logging

/// One conformance suite, run against every backend this run can reach (SQLite always; PostgreSQL
/// whenever the test command started one, which it does unless told otherwise).
@Suite struct DirectoryConformance {
    static let backends = TestDatabases.available
    let t0 = Date(epochSeconds: 1_800_000_000)

    func withDirectory(_ backend: TestDatabases.Backend, _ body: (SQLDirectory) async throws -> Void) async throws {
        let d = try await TestDatabases.make(backend)
        do { try await body(d) } catch {
            await TestDatabases.discard(d)
            throw error
        }
        await TestDatabases.discard(d)
    }

    func pool(_ d: SQLDirectory, _ name: String = "acme") async throws -> PoolID {
        let id = try PoolID(name)
        try await d.createPool(Pool(id: id, displayName: "Acme", createdAt: t0))
        return id
    }

    func link(_ pool: PoolID, subject: String, provider: String = "Okta") -> LinkedIdentity {
        LinkedIdentity(poolID: pool, providerName: provider, providerKind: .oidc, upstreamIssuer: "https://idp.example", upstreamSubject: subject, userID: "", createdAt: t0)
    }

    @Test(arguments: backends) func discardedTestDatabasesAreRemoved(_ backend: TestDatabases.Backend) async throws {
        let d = try await TestDatabases.make(backend)
        let p = try await pool(d)
        #expect(try await d.pool(p) != nil)
        let what = TestDatabases.made.withLock { $0[ObjectIdentifier(d)] }
        await TestDatabases.discard(d, drop: true)  // as on a server of the developer's own
        switch what {
        case .folder(let folder):
            #expect(!FileManager.default.fileExists(atPath: folder.path))
        case .database(let name, let server):
            // The database is gone: a database of its name can be made again (then dropped).
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            let admin = try await DirectoryFactory.postgres(url: server, logger: logger)
            await #expect(throws: Never.self) { try await admin.execute(unsafeSQL: "CREATE DATABASE \(name)") }
            try? await admin.execute(unsafeSQL: "DROP DATABASE IF EXISTS \(name)")
            try? await admin.shutdown()
        case nil:
            Issue.record("make did not record what it made")
        }
    }

    @Test(arguments: backends) func migrationsAreIdempotent(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            try await d.migrate()
            try await d.migrate()
            try await d.ping()
        }
    }

    @Test(arguments: backends) func poolsClientsAndProviders(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            await #expect { try await d.createPool(Pool(id: p, displayName: "again", createdAt: t0)) } throws: { ($0 as? DirectoryError)?.code == .conflict }
            #expect(try await d.listPools().map(\.id) == [p])

            var client = AppClient(poolID: p, clientID: "web", name: "Web", secretHash: Secrets.hash("s"), redirectURIs: ["https://app.example/cb"], createdAt: t0)
            try await d.createClient(client)
            #expect(try await d.client(pool: p, clientID: "web") == client)
            client.redirectURIs.append("https://app.example/cb2")
            try await d.updateClient(client)
            #expect(try await d.client(pool: p, clientID: "web")?.redirectURIs.count == 2)
            var bad = client
            bad.clientID = "bad"
            bad.redirectURIs = ["http://app.example/cb"]
            await #expect(throws: DirectoryError.self) { try await d.createClient(bad) }
            try await d.deleteClient(pool: p, clientID: "web")
            #expect(try await d.client(pool: p, clientID: "web") == nil)

            let provider = IdentityProvider(poolID: p, name: "Okta", kind: .oidc, oidc: OIDCProviderSettings(issuer: "https://okta.example", clientID: "gh"), sealedClientSecret: "v1.x", attributeMapping: .oidcStandard, idpIdentifiers: ["acme.com"], createdAt: t0)
            try await d.createProvider(provider)
            #expect(try await d.provider(pool: p, name: "Okta") == provider)
            #expect(try await d.listProviders(pool: p).count == 1)
            var hmac = provider
            hmac.name = "Bad"
            hmac.oidc?.allowedAlgorithms = ["HS256"]
            await #expect(throws: DirectoryError.self) { try await d.createProvider(hmac) }
        }
    }

    @Test(arguments: backends) func firstLoginCreatesThenFinds(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            let first = try await d.resolveLogin(identity: link(p, subject: "u1"), username: "Okta_u1", attributes: ["email": "a@x.com"], now: t0)
            #expect(first.created)
            let second = try await d.resolveLogin(identity: link(p, subject: "u1"), username: "Okta_u1", attributes: ["email": "b@x.com", "name": "B"], now: t0.addingTimeInterval(5))
            #expect(!second.created)
            #expect(second.user.id == first.user.id)
            #expect(second.user.attributes == ["email": "b@x.com", "name": "B"])
            #expect(try await d.linkedIdentities(pool: p, userID: first.user.id).map(\.upstreamSubject) == ["u1"])
            #expect(try await d.user(pool: p, username: "Okta_u1")?.id == first.user.id)
        }
    }

    @Test(arguments: backends) func concurrentFirstLoginsCreateExactlyOneUser(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            let identity = link(p, subject: "same-person")
            let results = try await withThrowingTaskGroup(of: (user: User, created: Bool).self) { group in
                for _ in 0..<50 {
                    group.addTask { try await d.resolveLogin(identity: identity, username: "Okta_same-person", attributes: ["email": "s@x.com"], now: t0) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.count == 50)
            #expect(Set(results.map(\.user.id)).count == 1)
            #expect(results.filter(\.created).count == 1)
            #expect(try await d.countUsers(pool: p) == 1)
            #expect(try await d.count(table: "linked_identities") == 1)
        }
    }

    @Test(arguments: backends) func aFailedTransactionLeavesNothingHalfWritten(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            // A write, then a failing statement: the write is rolled back.
            await #expect(throws: (any Error).self) {
                try await d.execute(unsafeSQLInTransaction: [
                    "INSERT INTO pools (id, display_name, signing_alg, created_at) VALUES ('ghost', 'g', 'ES256', 0)",
                    "INSERT INTO no_such_table VALUES (1)",
                ])
            }
            #expect(try await d.pool(try PoolID("ghost")) == nil)
            // The session is usable after the rollback.
            let p = try await pool(d)
            _ = try await d.resolveLogin(identity: link(p, subject: "a"), username: "taken", attributes: [:], now: t0)
            // Another identity whose username collides: refused, and no link or user is left behind.
            await #expect {
                try await d.resolveLogin(identity: link(p, subject: "b"), username: "taken", attributes: [:], now: t0)
            } throws: { ($0 as? DirectoryError)?.code == .conflict }
            #expect(try await d.countUsers(pool: p) == 1)
            #expect(try await d.count(table: "linked_identities") == 1)
        }
    }

    @Test(arguments: backends) func aCredentialAndItsAuditAreWrittenTogether(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            func entry(_ id: String, _ action: String) -> AuditEntry {
                AuditEntry(id: id, poolID: p, at: t0, actor: "cli", action: action, target: "credential:ops")
            }
            let ops = AdminCredential(name: "ops", secretHash: "h1", poolID: nil, createdAt: t0)
            // The second audit entry cannot be written (its key repeats the first's): no credential.
            await #expect(throws: (any Error).self) {
                try await d.createAdminCredential(ops, audit: [entry("a1", "admin_credential.created"), entry("a1", "admin_credential.created")])
            }
            #expect(try await d.listAdminCredentials().isEmpty)
            #expect(try await d.adminCredential(secretHash: "h1") == nil)
            #expect(try await d.auditEntries(pool: p, after: nil, action: nil, limit: 10).isEmpty)
            // Written, then a revocation whose audit fails: the credential still works.
            try await d.createAdminCredential(ops, audit: [entry("a1", "admin_credential.created")])
            await #expect(throws: (any Error).self) {
                try await d.revokeAdminCredential(name: "ops", now: t0, audit: [entry("a1", "admin_credential.revoked")])
            }
            #expect(try await d.adminCredential(secretHash: "h1")?.name == "ops")
            #expect(try await d.auditEntries(pool: p, after: nil, action: nil, limit: 10).map(\.action) == ["admin_credential.created"])
            // And a revocation with its audit: gone at once.
            try await d.revokeAdminCredential(name: "ops", now: t0, audit: [entry("a2", "admin_credential.revoked")])
            #expect(try await d.adminCredential(secretHash: "h1") == nil)
        }
    }

    @Test(arguments: backends) func usersPagesGroupsAndDeletion(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            var ids: [String] = []
            for i in 0..<5 { ids.append(try await d.resolveLogin(identity: link(p, subject: "s\(i)"), username: "user\(i)", attributes: [:], now: t0).user.id) }
            let page1 = try await d.listUsers(pool: p, after: nil, limit: 2)
            let page2 = try await d.listUsers(pool: p, after: page1.last?.username, limit: 2)
            #expect(page1.map(\.username) == ["user0", "user1"])
            #expect(page2.map(\.username) == ["user2", "user3"])
            try await d.createGroup(Group(poolID: p, name: "admins"))
            try await d.addUser(pool: p, userID: ids[0], toGroup: "admins")
            try await d.addUser(pool: p, userID: ids[0], toGroup: "admins")
            #expect(try await d.groups(pool: p, userID: ids[0]) == ["admins"])
            await #expect(throws: DirectoryError.self) { try await d.addUser(pool: p, userID: ids[0], toGroup: "nope") }
            try await d.deleteUser(pool: p, id: ids[0])
            #expect(try await d.user(pool: p, id: ids[0]) == nil)
            #expect(try await d.linkedIdentities(pool: p, userID: ids[0]).isEmpty)
            #expect(try await d.count(table: "group_members") == 0)
        }
    }

    func transaction(_ p: PoolID, id: String, expires: Date) -> LoginTransaction {
        LoginTransaction(id: id, poolID: p, clientID: "web", redirectURI: "https://app.example/cb", appState: "s", appNonce: nil, codeChallenge: nil, scope: ["openid"], providerName: "Okta", upstreamNonce: "n", upstreamCodeVerifier: "v", browserBindingHash: "h", createdAt: t0, expiresAt: expires)
    }

    @Test(arguments: backends) func loginTransactionsAreConsumedOnceUnderConcurrency(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            try await d.saveLoginTransaction(transaction(p, id: "tx1", expires: t0.addingTimeInterval(600)))
            let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<20 { group.addTask { try await d.consumeLoginTransaction(id: "tx1", browserBindingHash: "h", now: t0) != nil } }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(wins == 1)
            try await d.saveLoginTransaction(transaction(p, id: "tx2", expires: t0.addingTimeInterval(600)))
            #expect(try await d.consumeLoginTransaction(id: "tx2", browserBindingHash: "h", now: t0.addingTimeInterval(601)) == nil)
            #expect(try await d.consumeLoginTransaction(id: "never", browserBindingHash: "h", now: t0) == nil)
            // Another browser's binding neither consumes nor cancels the transaction.
            try await d.saveLoginTransaction(transaction(p, id: "tx3", expires: t0.addingTimeInterval(600)))
            #expect(try await d.consumeLoginTransaction(id: "tx3", browserBindingHash: "other", now: t0) == nil)
            #expect(try await d.consumeLoginTransaction(id: "tx3", browserBindingHash: "h", now: t0)?.id == "tx3")
        }
    }

    func code(_ p: PoolID, hash: String, family: String) -> AuthorizationCode {
        AuthorizationCode(codeHash: hash, poolID: p, clientID: "web", userID: "u", redirectURI: "https://app.example/cb", scope: ["openid"], nonce: nil, codeChallenge: nil, authTime: t0, providerName: "Okta", familyID: family, createdAt: t0, expiresAt: t0.addingTimeInterval(300))
    }

    func family(_ p: PoolID, id: String) -> RefreshTokenFamily {
        RefreshTokenFamily(id: id, poolID: p, clientID: "web", userID: "u", scope: ["openid"], authTime: t0, providerName: "Okta", createdAt: t0, expiresAt: t0.addingTimeInterval(86400))
    }

    @Test(arguments: backends) func authorizationCodesRedeemOnceAndReplayRevokes(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            try await d.saveAuthorizationCode(code(p, hash: "c1", family: "f1"))
            let outcomes = try await withThrowingTaskGroup(of: CodeRedemption.self) { group in
                for _ in 0..<20 { group.addTask { try await d.redeemAuthorizationCode(hash: "c1", now: t0) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes.filter { if case .redeemed = $0 { true } else { false } }.count == 1)
            #expect(outcomes.filter { $0 == .replayed(familyID: "f1") }.count == 19)
            // The replays left a revoked tombstone: the late exchange cannot create the family.
            await #expect { try await d.createFamily(family(p, id: "f1"), firstTokenHash: "r1") } throws: { ($0 as? DirectoryError)?.code == .conflict }
            #expect(try await d.family(id: "f1")?.revokedAt != nil)
            // An expired code is invalid.
            try await d.saveAuthorizationCode(code(p, hash: "c2", family: "f2"))
            #expect(try await d.redeemAuthorizationCode(hash: "c2", now: t0.addingTimeInterval(301)) == .invalid)
            #expect(try await d.redeemAuthorizationCode(hash: "unknown", now: t0) == .invalid)
        }
    }

    @Test(arguments: backends) func refreshTokensRotateAndReuseRevokesTheFamily(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            try await d.createFamily(family(p, id: "fam"), firstTokenHash: "r0")
            #expect(try await d.rotate(presentedHash: "r0", clientID: "other", pool: p, requestedScope: nil, newTokenHash: "x", now: t0) == .invalid)
            guard case .rotated(let f) = try await d.rotate(presentedHash: "r0", clientID: "web", pool: p, requestedScope: nil, newTokenHash: "r1", now: t0) else {
                Issue.record("first rotation must succeed")
                return
            }
            #expect(f.id == "fam")
            #expect(try await d.rotate(presentedHash: "r0", clientID: "web", pool: p, requestedScope: nil, newTokenHash: "r2", now: t0) == .reuseDetected(familyID: "fam"))
            // The whole family is revoked: the current token no longer works either.
            #expect(try await d.rotate(presentedHash: "r1", clientID: "web", pool: p, requestedScope: nil, newTokenHash: "r3", now: t0) == .invalid)
            #expect(try await d.family(id: "fam")?.revokedAt != nil)
        }
    }

    @Test(arguments: backends) func rotationChecksPoolAndScopeBeforeSpending(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            let other = try await pool(d, "other")
            try await d.createFamily(family(p, id: "fam"), firstTokenHash: "r0")
            #expect(try await d.rotate(presentedHash: "r0", clientID: "web", pool: other, requestedScope: nil, newTokenHash: "x1", now: t0) == .invalid)
            #expect(try await d.rotate(presentedHash: "r0", clientID: "web", pool: p, requestedScope: ["openid", "admin"], newTokenHash: "x2", now: t0) == .scopeWidened)
            // Neither refusal spent the token.
            guard case .rotated = try await d.rotate(presentedHash: "r0", clientID: "web", pool: p, requestedScope: ["openid"], newTokenHash: "r1", now: t0) else {
                Issue.record("the token must still be current")
                return
            }
            try await d.revokeFamily(id: "fam", now: t0)
            #expect(try await d.rotate(presentedHash: "r1", clientID: "web", pool: p, requestedScope: nil, newTokenHash: "r2", now: t0) == .invalid)
        }
    }

    @Test(arguments: backends) func linksAreKeyedByIssuerToo(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            let first = try await d.resolveLogin(identity: link(p, subject: "42"), username: "Okta_42", attributes: [:], now: t0)
            var moved = link(p, subject: "42")
            moved.upstreamIssuer = "https://other-tenant.example"
            // Same provider name and subject at another issuer is another person: never the first user.
            await #expect(throws: DirectoryError.self) { try await d.resolveLogin(identity: moved, username: "Okta_42", attributes: [:], now: t0) }
            #expect(try await d.linkedIdentities(pool: p, userID: first.user.id).count == 1)
        }
    }

    @Test(arguments: backends) func usersAreFoundByLinkAndTheirLiveFamiliesListed(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            let login = try await d.resolveLogin(identity: link(p, subject: "42"), username: "Okta_42", attributes: [:], now: t0)
            #expect(try await d.userID(pool: p, providerName: "Okta", upstreamIssuer: "https://idp.example", upstreamSubject: "42") == login.user.id)
            #expect(try await d.userID(pool: p, providerName: "Okta", upstreamIssuer: "https://other.example", upstreamSubject: "42") == nil)
            #expect(try await d.userID(pool: p, providerName: "Other", upstreamIssuer: "https://idp.example", upstreamSubject: "42") == nil)
            var live = family(p, id: "live")
            live.userID = login.user.id
            live.upstreamSessionIndex = "_s1"
            var revoked = family(p, id: "revoked")
            revoked.userID = login.user.id
            var expired = family(p, id: "expired")
            expired.userID = login.user.id
            expired.expiresAt = t0.addingTimeInterval(-1)
            for f in [live, revoked, expired] { try await d.createFamily(f, firstTokenHash: "h-" + f.id) }
            try await d.revokeFamily(id: "revoked", now: t0)
            let active = try await d.activeFamilies(pool: p, userID: login.user.id, now: t0)
            #expect(active.map(\.id) == ["live"])
            #expect(active.first?.upstreamSessionIndex == "_s1")
        }
    }

    @Test(arguments: backends) func concurrentRotationOfOneTokenSucceedsAtMostOnce(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            try await d.createFamily(family(p, id: "fam"), firstTokenHash: "r0")
            let outcomes = try await withThrowingTaskGroup(of: RefreshRotation.self) { group in
                for i in 0..<10 { group.addTask { try await d.rotate(presentedHash: "r0", clientID: "web", pool: p, requestedScope: nil, newTokenHash: "n\(i)", now: t0) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            // Exactly one presentation wins; a later one finds the token spent and revokes the family,
            // after which the rest find the family revoked.
            #expect(outcomes.filter { if case .rotated = $0 { true } else { false } }.count == 1)
            #expect(outcomes.filter { $0 == .reuseDetected(familyID: "fam") }.count >= 1)
            #expect(outcomes.filter { $0 == .invalid || $0 == .reuseDetected(familyID: "fam") }.count == 9)
            #expect(try await d.count(table: "refresh_tokens") == 2)
            #expect(try await d.family(id: "fam")?.revokedAt != nil)
        }
    }

    @Test(arguments: backends) func revokingByTokenNeedsTheOwningClient(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            try await d.createFamily(family(p, id: "fam"), firstTokenHash: "r0")
            try await d.revokeFamily(containing: "r0", clientID: "other", now: t0)
            #expect(try await d.family(id: "fam")?.revokedAt == nil)
            try await d.revokeFamily(containing: "r0", clientID: "web", now: t0)
            #expect(try await d.family(id: "fam")?.revokedAt != nil)
        }
    }

    @Test(arguments: backends) func poolsKeepTheirCustomAttributes(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            var stored = try #require(try await d.pool(p))
            #expect(stored.customAttributes.isEmpty)
            stored.customAttributes = [CustomAttribute(name: "custom:level", type: .number), CustomAttribute(name: "custom:dept", maximumLength: 64)]
            try await d.updatePool(stored)
            #expect(try await d.pool(p) == stored)
            stored.customAttributes.append(CustomAttribute(name: "custom:level"))
            await #expect(throws: DirectoryError.self) { try await d.updatePool(stored) }
        }
    }

    @Test(arguments: backends) func mappedGroupsAndFirstLoginAttributes(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            for g in ["admins", "staff", "auditors"] { try await d.createGroup(Group(poolID: p, name: g)) }
            func login(_ groups: [String]?, name: String, onCreation: Bool = false, provider: String = "Okta", subject: String = "u1") async throws -> (user: User, created: Bool) {
                let decision = try await d.resolveLogin(FederatedLogin(
                    identity: link(p, subject: subject, provider: provider), username: "\(provider)_\(subject)", attributes: ["email": "ada@example.com"],
                    initialAttributes: ["name": name], groups: groups, groupsOnCreationOnly: onCreation), now: t0)
                guard case .user(let user, let how) = decision else { throw DirectoryError(.invalid, "no user: \(decision)") }
                return (user, how == .created)
            }
            let first = try await login(["admins", "nonexistent"], name: "Ada")
            #expect(first.created && first.user.attributes == ["email": "ada@example.com", "name": "Ada"])
            #expect(try await d.groups(pool: p, userID: first.user.id) == ["admins"])
            // An admin adds auditors; the next login's mapping drops admins and adds staff.
            try await d.addUser(pool: p, userID: first.user.id, toGroup: "auditors")
            let again = try await login(["staff"], name: "Changed")
            #expect(!again.created && again.user.attributes["name"] == "Ada")
            #expect(try await d.groups(pool: p, userID: first.user.id) == ["auditors", "staff"])
            // A mapped group the admin also assigned stays when the mapping stops naming it.
            try await d.addUser(pool: p, userID: first.user.id, toGroup: "staff")
            _ = try await login([], name: "x")
            #expect(try await d.groups(pool: p, userID: first.user.id) == ["auditors", "staff"])
            // Groups that apply only on creation are left alone afterwards; no groups rule touches nothing.
            _ = try await login(["admins"], name: "x", onCreation: true)
            _ = try await login(nil, name: "x")
            #expect(try await d.groups(pool: p, userID: first.user.id) == ["auditors", "staff"])
        }
    }

    @Test(arguments: backends) func mappingVersionsRecordWhoWhenAndWhat(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            let provider = IdentityProvider(poolID: p, name: "Okta", kind: .oidc, oidc: OIDCProviderSettings(issuer: "https://okta.example", clientID: "gh"), sealedClientSecret: nil, attributeMapping: .oidcStandard, createdAt: t0)
            try await d.createProvider(provider)
            let v1 = try await d.saveMapping(pool: p, provider: "Okta", mapping: .oidcStandard, author: "alice", note: "created", now: t0)
            #expect(v1.version == 1 && v1.changes.count == AttributeMapping.oidcStandard.rules.count)
            var rules = AttributeMapping.oidcStandard.rules.filter { $0.target != "name" }
            rules.append(.init(target: "nickname", source: .expression("lower(given_name)"), update: .firstLogin))
            let v2 = try await d.saveMapping(pool: p, provider: "Okta", mapping: AttributeMapping(rules: rules), author: "bob", note: nil, now: t0.addingTimeInterval(60))
            #expect(v2.version == 2 && v2.author == "bob")
            #expect(v2.changes == [
                MappingChange(target: "name", before: "\"name\"", after: nil),
                MappingChange(target: "nickname", before: nil, after: #"{"expression":"lower(given_name)","update":"first_login"}"#),
            ])
            #expect(try await d.provider(pool: p, name: "Okta")?.attributeMapping == AttributeMapping(rules: rules))
            #expect(try await d.mappingVersions(pool: p, provider: "Okta").map(\.version) == [2, 1])
            #expect(try await d.mappingVersion(pool: p, provider: "Okta", version: 1)?.mapping == .oidcStandard)
            await #expect(throws: DirectoryError.self) { try await d.saveMapping(pool: p, provider: "Nobody", mapping: .oidcStandard, author: "a", note: nil, now: t0) }
            // Concurrent saves each get their own version; none is lost.
            try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<8 {
                    group.addTask { try await d.saveMapping(pool: p, provider: "Okta", mapping: AttributeMapping(["email": "mail\(i)"]), author: "a\(i)", note: nil, now: self.t0).version }
                }
                var versions: [Int] = []
                for try await v in group { versions.append(v) }
                #expect(versions.sorted() == Array(3...10))
            }
        }
    }

    @Test(arguments: backends) func loginSamplesKeepTheNewest(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            for i in 0..<5 {
                try await d.recordLoginSamples([LoginSample(poolID: p, providerName: "Okta", id: "s\(i)", capturedAt: t0.addingTimeInterval(Double(i)), attributes: ["n": ["\(i)"]])], keep: 3)
            }
            try await d.recordLoginSamples([LoginSample(poolID: p, providerName: "Other", id: "o", capturedAt: t0, attributes: [:])], keep: 3)
            #expect(try await d.loginSamples(pool: p, provider: "Okta", limit: 10).map(\.id) == ["s4", "s3", "s2"])
            #expect(try await d.loginSamples(pool: p, provider: "Okta", limit: 1).first?.attributes == ["n": ["4"]])
            #expect(try await d.loginSamples(pool: p, provider: "Other", limit: 10).count == 1)
            // A batch over two providers keeps each one's newest, in one transaction.
            let batch = (5..<9).map { LoginSample(poolID: p, providerName: "Okta", id: "s\($0)", capturedAt: t0, attributes: [:]) }
                + [LoginSample(poolID: p, providerName: "Other", id: "p", capturedAt: t0, attributes: [:])]
            try await d.recordLoginSamples(batch, keep: 3)
            #expect(try await d.loginSamples(pool: p, provider: "Okta", limit: 10).map(\.id) == ["s8", "s7", "s6"])
            #expect(try await d.loginSamples(pool: p, provider: "Other", limit: 10).map(\.id) == ["p", "o"])
        }
    }

    /// A user created by a provider trusted to assert (and verifying) `email`.
    func trustedUser(_ d: SQLDirectory, _ p: PoolID, subject: String, email: String, extra: [String: String] = [:]) async throws -> User {
        let decision = try await d.resolveLogin(FederatedLogin(
            identity: link(p, subject: subject, provider: "Corp"), username: "Corp_\(subject)", attributes: extra.merging(["email": email]) { $1 },
            trustedEmail: email.lowercased()), now: t0)
        guard case .user(let user, _) = decision else { throw DirectoryError(.invalid, "no user") }
        return user
    }

    func decide(_ d: SQLDirectory, _ identity: LinkedIdentity, email: String, rule: NewIdentityRule) async throws -> LoginDecision {
        try await d.resolveLogin(FederatedLogin(
            identity: identity, username: "\(identity.providerName)_\(identity.upstreamSubject)", attributes: ["email": email, "name": identity.upstreamSubject],
            newIdentity: rule), now: t0)
    }

    @Test(arguments: backends) func linkRulesAtFirstLogin(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            let ada = try await trustedUser(d, p, subject: "ada", email: "Ada@Example.com", extra: ["custom:x": "kept"])
            #expect(try await d.users(pool: p, email: "ADA@example.COM", limit: 5).map(\.id) == [ada.id], "email is found whatever its case")
            // A user whose address no trusted provider verified is never a verified-email match.
            let squatter = try await d.resolveLogin(identity: link(p, subject: "sq", provider: "Untrusted"), username: "Untrusted_sq", attributes: ["email": "ada@example.com"], now: t0).user

            // Verified email: joins the one user with it; the mapping's values apply, others stay.
            let google = link(p, subject: "g-1", provider: "Google")
            guard case .user(let linked, .linkedByVerifiedEmail) = try await decide(d, google, email: "ada@example.com", rule: .linkVerifiedEmail("ada@example.com")) else {
                Issue.record("not linked by email")
                return
            }
            #expect(linked.id == ada.id && linked.attributes["custom:x"] == "kept" && linked.attributes["name"] == "g-1")
            #expect(try await d.countUsers(pool: p) == 2)
            #expect(try await d.linkedIdentities(pool: p, userID: squatter.id).map(\.providerName) == ["Untrusted"])
            #expect(try await d.linkedIdentities(pool: p, userID: ada.id).map(\.providerName).sorted() == ["Corp", "Google"])
            let audit = try await d.auditEntries(pool: p, after: nil, action: "link.created", limit: 10)
            #expect(audit.count == 1 && audit[0].actor == "login" && audit[0].target == "user:\(ada.id)")

            // No user with the email: a new one. Two users with it: refused, nothing written.
            guard case .user(let grace, .created) = try await decide(d, link(p, subject: "g-2", provider: "Google"), email: "grace@example.com", rule: .linkVerifiedEmail("grace@example.com")) else {
                Issue.record("no user with the address: a new one is expected")
                return
            }
            #expect(grace.id != ada.id)
            _ = try await trustedUser(d, p, subject: "ada2", email: "ada@example.com")
            let users = try await d.countUsers(pool: p)
            guard case .refused = try await decide(d, link(p, subject: "g-3", provider: "Google"), email: "ada@example.com", rule: .linkVerifiedEmail("ada@example.com")) else {
                Issue.record("two users with one email must refuse")
                return
            }
            // Proof: candidates, nothing written. Refuse: nothing written.
            guard case .needsProof(let candidates) = try await decide(d, link(p, subject: "s-1", provider: "Social"), email: "ada@example.com", rule: .proveExisting(email: "ada@example.com")) else {
                Issue.record("proof expected")
                return
            }
            #expect(candidates.count == 3 && candidates.contains(ada.id))
            guard case .refused = try await decide(d, link(p, subject: "s-2", provider: "Social"), email: "x@example.com", rule: .refuse) else {
                Issue.record("refusal expected")
                return
            }
            #expect(try await d.countUsers(pool: p) == users)
            #expect(try await d.userID(pool: p, providerName: "Social", upstreamIssuer: "https://idp.example", upstreamSubject: "s-1") == nil)
        }
    }

    @Test(arguments: backends) func aTrustedAddressStopsCountingWhenTheEmailChanges(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            let ada = try await trustedUser(d, p, subject: "ada", email: "ada@example.com")
            // Her untrusted login changes the email: the new address is not trusted, the old one is gone.
            _ = try await d.resolveLogin(identity: link(p, subject: "ada", provider: "Corp"), username: "Corp_ada", attributes: ["email": "ada@new.example"], now: t0)
            for email in ["ada@example.com", "ada@new.example"] {
                guard case .user(let u, .created) = try await decide(d, link(p, subject: "g-\(email)", provider: "Google"), email: email, rule: .linkVerifiedEmail(email)) else {
                    Issue.record("expected a new user for \(email)")
                    continue
                }
                #expect(u.id != ada.id)
            }
        }
    }

    @Test(arguments: backends) func concurrentFirstLoginsLinkingByEmailMakeOneLink(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            let ada = try await trustedUser(d, p, subject: "ada", email: "ada@example.com")
            let google = link(p, subject: "g-1", provider: "Google")
            let ids = try await withThrowingTaskGroup(of: String?.self) { group in
                for _ in 0..<30 {
                    group.addTask {
                        guard case .user(let u, _) = try await self.decide(d, google, email: "ada@example.com", rule: .linkVerifiedEmail("ada@example.com")) else { return nil }
                        return u.id
                    }
                }
                return try await group.reduce(into: [String?]()) { $0.append($1) }
            }
            #expect(ids.count == 30 && Set(ids) == [ada.id])
            #expect(try await d.countUsers(pool: p) == 1)
            #expect(try await d.count(table: "linked_identities") == 2)
            #expect(try await d.auditEntries(pool: p, after: nil, action: "link.created", limit: 100).count == 1)
        }
    }

    @Test(arguments: backends) func adminLinkingMovesAndMergesAndUnlinkingKeepsOne(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            try await d.createGroup(Group(poolID: p, name: "staff"))
            let a = try await d.resolveLogin(identity: link(p, subject: "a", provider: "Corp"), username: "Corp_a", attributes: ["email": "a@x.com", "name": "A"], now: t0).user
            let bIdentity = link(p, subject: "b", provider: "Google")
            let b = try await d.resolveLogin(identity: bIdentity, username: "Google_b", attributes: ["email": "b@x.com", "locale": "fr"], now: t0).user
            try await d.addUser(pool: p, userID: b.id, toGroup: "staff")
            try await d.createFamily(RefreshTokenFamily(id: "fam-b", poolID: p, clientID: "web", userID: b.id, scope: ["openid"], authTime: t0, providerName: "Google", createdAt: t0, expiresAt: t0.addingTimeInterval(3600)), firstTokenHash: "hb")

            var moved = bIdentity
            moved.userID = a.id
            let merge = try await d.linkIdentity(moved, actor: "alice", now: t0)
            #expect(merge == LinkMerge(fromUserID: b.id, fromUserDeleted: true))
            let merged = try #require(try await d.user(pool: p, id: a.id))
            #expect(merged.attributes == ["email": "a@x.com", "name": "A", "locale": "fr"], "the target's values win; the source fills gaps")
            #expect(try await d.groups(pool: p, userID: a.id) == ["staff"])
            #expect(try await d.user(pool: p, id: b.id) == nil)
            #expect(try await d.family(id: "fam-b") == nil)
            #expect(try await d.linkedIdentities(pool: p, userID: a.id).count == 2)
            let audit = try await d.auditEntries(pool: p, after: nil, action: "link.moved", limit: 10)
            #expect(audit.count == 1 && audit[0].actor == "alice" && audit[0].before == .object(["user": .string(b.id)]))
            // Linking again is a no-op; an identity never seen is linked as new.
            #expect(try await d.linkIdentity(moved, actor: "alice", now: t0) == LinkMerge(fromUserID: nil, fromUserDeleted: false))
            var fresh = link(p, subject: "never-signed-in", provider: "Okta")
            fresh.userID = a.id
            #expect(try await d.linkIdentity(fresh, actor: "alice", now: t0).fromUserID == nil)
            var nobody = fresh
            nobody.userID = "no-such-user"
            await #expect(throws: DirectoryError.self) { try await d.linkIdentity(nobody, actor: "alice", now: t0) }

            // Unlinking: any but the last.
            try await d.unlinkIdentity(pool: p, providerName: "Okta", upstreamIssuer: "https://idp.example", upstreamSubject: "never-signed-in", owner: nil, actor: "alice", now: t0)
            try await d.unlinkIdentity(pool: p, providerName: "Google", upstreamIssuer: "https://idp.example", upstreamSubject: "b", owner: nil, actor: "alice", now: t0)
            await #expect { try await d.unlinkIdentity(pool: p, providerName: "Corp", upstreamIssuer: "https://idp.example", upstreamSubject: "a", owner: nil, actor: "alice", now: t0) } throws: {
                ($0 as? DirectoryError)?.code == .conflict
            }
            #expect(try await d.linkedIdentities(pool: p, userID: a.id).map(\.providerName) == ["Corp"])
            #expect(try await d.auditEntries(pool: p, after: nil, action: "link.removed", limit: 10).count == 2)
            let all = try await d.auditEntries(pool: p, after: nil, action: nil, limit: 100)
            #expect(all.map(\.id) == all.map(\.id).sorted())
            #expect(try await d.auditEntries(pool: p, after: all[1].id, action: nil, limit: 100).count == all.count - 2)
        }
    }

    @Test(arguments: backends) func concurrentUnlinksNeverLeaveAUserWithoutAnIdentity(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            let a = try await d.resolveLogin(identity: link(p, subject: "a", provider: "Corp"), username: "Corp_a", attributes: [:], now: t0).user
            var second = link(p, subject: "a2", provider: "Google")
            second.userID = a.id
            _ = try await d.linkIdentity(second, actor: "alice", now: t0)
            await #expect(throws: DirectoryError.self, "not this user's link") {
                try await d.unlinkIdentity(pool: p, providerName: "Google", upstreamIssuer: "https://idp.example", upstreamSubject: "a2", owner: "someone-else", actor: "eve", now: self.t0)
            }
            let outcomes = await withTaskGroup(of: Bool.self) { group in
                for (provider, subject) in [("Corp", "a"), ("Google", "a2")] {
                    group.addTask {
                        (try? await d.unlinkIdentity(pool: p, providerName: provider, upstreamIssuer: "https://idp.example", upstreamSubject: subject, owner: a.id, actor: "alice", now: self.t0)) != nil
                    }
                }
                return await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 }.count == 1)
            #expect(try await d.linkedIdentities(pool: p, userID: a.id).count == 1)
        }
    }

    @Test(arguments: backends) func pendingLinksAreBoundSingleUseAndCompleteOnlyToACandidate(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            let ada = try await d.resolveLogin(identity: link(p, subject: "ada", provider: "Corp"), username: "Corp_ada", attributes: ["email": "ada@x.com"], now: t0).user
            let eve = try await d.resolveLogin(identity: link(p, subject: "eve", provider: "Corp"), username: "Corp_eve", attributes: ["email": "eve@x.com"], now: t0).user
            let pending = PendingLink(
                id: "pl-1", poolID: p, identity: link(p, subject: "s-1", provider: "Social"), attributes: ["name": "From Social"], candidateUserIDs: [ada.id],
                clientID: "web", redirectURI: "https://app.example/cb", appState: "st", appNonce: nil, codeChallenge: nil, scope: ["openid"],
                browserBindingHash: "browser", createdAt: t0, expiresAt: t0.addingTimeInterval(600))
            try await d.savePendingLink(pending)
            #expect(try await d.pendingLink(id: "pl-1", browserBindingHash: "other", now: t0) == nil)
            #expect(try await d.pendingLink(id: "pl-1", browserBindingHash: "browser", now: t0.addingTimeInterval(601)) == nil)
            #expect(try await d.pendingLink(id: "pl-1", browserBindingHash: "browser", now: t0) == pending)
            #expect(try await d.consumePendingLink(id: "pl-1", browserBindingHash: "other", now: t0) == nil)
            let taken = try #require(try await d.consumePendingLink(id: "pl-1", browserBindingHash: "browser", now: t0))
            #expect(try await d.consumePendingLink(id: "pl-1", browserBindingHash: "browser", now: t0) == nil)
            await #expect(throws: DirectoryError.self) { try await d.completePendingLink(taken, userID: eve.id, now: t0) }
            #expect(try await d.userID(pool: p, providerName: "Social", upstreamIssuer: "https://idp.example", upstreamSubject: "s-1") == nil)
            let user = try await d.completePendingLink(taken, userID: ada.id, now: t0)
            #expect(user.id == ada.id && user.attributes["name"] == "From Social")
            #expect(try await d.userID(pool: p, providerName: "Social", upstreamIssuer: "https://idp.example", upstreamSubject: "s-1") == ada.id)
        }
    }

    @Test(arguments: backends) func signingKeysAndReplayCache(_ backend: TestDatabases.Backend) async throws {
        try await withDirectory(backend) { d in
            let p = try await pool(d)
            var key = SigningKeyRecord(poolID: p, kid: "k1", algorithm: .es256, sealedPrivateKey: "v1.x", createdAt: t0, activatesAt: t0)
            try await d.addSigningKey(key)
            key.retiresAt = t0.addingTimeInterval(10)
            try await d.updateSigningKey(key)
            #expect(try await d.signingKeys(pool: p) == [key])

            #expect(try await d.remember(namespace: "saml", key: "id1", expiresAt: t0.addingTimeInterval(60), now: t0))
            #expect(try await !d.remember(namespace: "saml", key: "id1", expiresAt: t0.addingTimeInterval(60), now: t0.addingTimeInterval(30)))
            #expect(try await d.remember(namespace: "other", key: "id1", expiresAt: t0.addingTimeInterval(60), now: t0))
            #expect(try await d.remember(namespace: "saml", key: "id1", expiresAt: t0.addingTimeInterval(200), now: t0.addingTimeInterval(61)))
            try await d.purgeExpired(now: t0.addingTimeInterval(1000))
            #expect(try await d.count(table: "replay_cache") == 0)
        }
    }
}
