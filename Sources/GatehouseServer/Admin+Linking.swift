import Foundation
public import GatehouseCore

/// Account linking as admins do it: link policies, linking and unlinking identities (including
/// ones that already signed in), and the audit log of it all.
extension Admin {
    func audit(_ pool: PoolID, action: String, target: String, before: JSONValue? = nil, after: JSONValue? = nil) async throws {
        try await directory.recordAudit(AuditEntry(id: LoginSample.newID(at: Date()), poolID: pool, at: now, actor: actor, action: action, target: target, before: before, after: after))
    }

    /// Sets a provider's link policy and whether its email is trusted.
    @discardableResult
    public func setLinkSettings(pool: String, provider name: String, _ settings: LinkSettings) async throws -> IdentityProvider {
        var (_, provider) = try await existingProvider(pool: pool, name: name)
        let before = provider.linkSettings
        provider.linking = settings
        try await directory.updateProvider(provider)
        func json(_ s: LinkSettings) -> JSONValue { .object(["policy": .string(s.policy.rawValue), "trust_email": .bool(s.trustEmail)]) }
        try await audit(provider.poolID, action: "provider.linking", target: "provider:\(name)", before: json(before), after: json(settings))
        return provider
    }

    /// The issuer Gatehouse records for a provider's identities: the OIDC issuer or the SAML IdP's entity ID.
    static func upstreamIssuer(of provider: IdentityProvider) -> String? {
        provider.oidc?.issuer ?? provider.saml?.idpEntityID
    }

    /// The user a provider identity is linked to (the issuer defaults to the provider's), if any.
    public func user(pool: String, provider name: String, subject: String, issuer: String? = nil) async throws -> User? {
        let (p, provider) = try await existingProvider(pool: pool, name: name)
        guard let upstreamIssuer = issuer ?? Self.upstreamIssuer(of: provider),
            let id = try await directory.userID(pool: p.id, providerName: name, upstreamIssuer: upstreamIssuer, upstreamSubject: subject)
        else { return nil }
        return try await directory.user(pool: p.id, id: id)
    }

    /// Links the provider's identity `subject` to `userID`. An identity that already signed in is
    /// moved from its user, merged by the rule of `Directory.linkIdentity`. No cap on links.
    public func link(pool: String, userID: String, provider name: String, subject: String, issuer: String? = nil) async throws -> LinkMerge {
        let (p, provider) = try await existingProvider(pool: pool, name: name)
        guard let upstreamIssuer = issuer ?? Self.upstreamIssuer(of: provider) else { throw DirectoryError(.invalid, "the provider has no issuer") }
        guard !subject.isEmpty, subject.utf8.count <= 1024 else { throw DirectoryError(.invalid, "a subject is 1-1024 characters") }
        let identity = LinkedIdentity(poolID: p.id, providerName: name, providerKind: provider.kind, upstreamIssuer: upstreamIssuer, upstreamSubject: subject, userID: userID, createdAt: now)
        return try await directory.linkIdentity(identity, actor: actor, now: now)
    }

    /// Unlinks an identity; never a user's last.
    public func unlink(pool: String, provider name: String, subject: String, issuer: String? = nil) async throws {
        let (p, provider) = try await existingProvider(pool: pool, name: name)
        guard let upstreamIssuer = issuer ?? Self.upstreamIssuer(of: provider) else { throw DirectoryError(.invalid, "the provider has no issuer") }
        try await directory.unlinkIdentity(pool: p.id, providerName: name, upstreamIssuer: upstreamIssuer, upstreamSubject: subject, owner: nil, actor: actor, now: now)
    }

    /// Provisions a user ahead of their first login, with the identity they will sign in with (a
    /// user always has at least one). The username is the one that login would have made.
    public func createUser(pool: String, provider name: String, subject: String, attributes: [String: String], issuer: String? = nil) async throws -> User {
        let (p, provider) = try await existingProvider(pool: pool, name: name)
        guard let upstreamIssuer = issuer ?? Self.upstreamIssuer(of: provider) else { throw DirectoryError(.invalid, "the provider has no issuer") }
        for key in attributes.keys where !(AttributeMapping.standardAttributes.contains(key) || p.customAttributes.contains { $0.name == key }) {
            throw DirectoryError(.invalid, "unknown attribute \(key)")
        }
        let identity = LinkedIdentity(poolID: p.id, providerName: name, providerKind: provider.kind, upstreamIssuer: upstreamIssuer, upstreamSubject: subject, userID: "", createdAt: now)
        if try await directory.userID(pool: p.id, providerName: name, upstreamIssuer: upstreamIssuer, upstreamSubject: subject) != nil {
            throw DirectoryError(.conflict, "that identity already belongs to a user")
        }
        // An address an admin provisions counts as verified by a trusted party.
        let decision = try await directory.resolveLogin(FederatedLogin(
            identity: identity, username: "\(name)_\(subject)", attributes: attributes, trustedEmail: attributes["email"]?.lowercased()), now: now)
        guard case .user(let user, .created) = decision else { throw DirectoryError(.conflict, "that identity already belongs to a user") }
        try await audit(p.id, action: "user.created", target: "user:\(user.id)", after: .object(["identity": identity.auditValue, "attributes": .object(attributes.mapValues(JSONValue.string))]))
        return user
    }

    /// Enables or disables a user; disabling revokes their refresh tokens.
    public func setUserEnabled(pool: String, userID: String, enabled: Bool) async throws {
        let poolID = try PoolID(pool)
        try await directory.setUserEnabled(pool: poolID, id: userID, enabled: enabled, now: now)
        try await audit(poolID, action: enabled ? "user.enabled" : "user.disabled", target: "user:\(userID)")
    }

    public func createGroup(pool: String, name: String, description: String = "") async throws {
        let poolID = try PoolID(pool)
        try await directory.createGroup(Group(poolID: poolID, name: name, description: description))
        try await audit(poolID, action: "group.created", target: "group:\(name)")
    }

    public func addUser(pool: String, userID: String, toGroup group: String) async throws {
        let poolID = try PoolID(pool)
        try await directory.addUser(pool: poolID, userID: userID, toGroup: group)
        try await audit(poolID, action: "group.member_added", target: "user:\(userID)", after: .object(["group": .string(group)]))
    }

    /// Makes an admin API credential and returns its secret, which is shown only now. The
    /// credential and its audit entries are written together.
    public func createCredential(name: String, pool: String?) async throws -> String {
        let poolID = try pool.map(PoolID.init)
        if let poolID { guard try await directory.pool(poolID) != nil else { throw DirectoryError(.notFound, "no pool \(poolID)") } }
        let secret = "gha_" + Secrets.randomToken()
        let entries = try await credentialAudit(name: name, pool: poolID, action: "admin_credential.created", after: .object(["pool": .string(poolID?.rawValue ?? "*")]))
        try await directory.createAdminCredential(AdminCredential(name: name, secretHash: Secrets.hash(secret), poolID: poolID, createdAt: now), audit: entries)
        return secret
    }

    /// Revokes an admin API credential; it stops working at once. Audited in the same transaction.
    public func revokeCredential(name: String) async throws {
        guard let credential = try await directory.listAdminCredentials().first(where: { $0.name == name && $0.revokedAt == nil }) else {
            throw DirectoryError(.notFound, "no live credential \(name)")
        }
        let entries = try await credentialAudit(name: name, pool: credential.poolID, action: "admin_credential.revoked", before: .object(["pool": .string(credential.poolID?.rawValue ?? "*")]))
        try await directory.revokeAdminCredential(name: name, now: now, audit: entries)
    }

    /// A credential change goes into the log of every pool it can act on: its own pool, or all of
    /// them for a credential that is not limited to one. (A pool created later records, in its
    /// `pool.created` entry, the global credentials that can act on it from the start.)
    private func credentialAudit(name: String, pool: PoolID?, action: String, before: JSONValue? = nil, after: JSONValue? = nil) async throws -> [AuditEntry] {
        var pools = [PoolID]()
        if let pool { pools = [pool] } else { pools = try await directory.listPools().map(\.id) }
        return pools.map { AuditEntry(id: LoginSample.newID(at: Date()), poolID: $0, at: now, actor: actor, action: action, target: "credential:\(name)", before: before, after: after) }
    }

    public func deleteClient(pool: String, clientID: String) async throws {
        let poolID = try PoolID(pool)
        guard try await directory.client(pool: poolID, clientID: clientID) != nil else { throw DirectoryError(.notFound, "no client \(clientID)") }
        try await directory.deleteClient(pool: poolID, clientID: clientID)
        try await audit(poolID, action: "client.deleted", target: "client:\(clientID)")
    }

    /// Removes a provider; its users keep their other identities, and its mapping versions stay as history.
    public func deleteProvider(pool: String, name: String) async throws {
        let (p, provider) = try await existingProvider(pool: pool, name: name)
        try await directory.deleteProvider(pool: p.id, name: name)
        try await audit(p.id, action: "provider.deleted", target: "provider:\(name)", before: .object(["kind": .string(provider.kind.rawValue)]))
    }
}
