public import Foundation
public import GatehouseCore
import GatehouseIssuer
import GatehouseSAML

/// The admin operations the CLI (and tests) use: pools, app clients, providers, users, keys.
/// Validation lives in the model; this type adds secret handling (generated client secrets are
/// returned once and stored hashed; upstream secrets are sealed with the master key).
public struct Admin: Sendable {
    public let gatehouse: Gatehouse
    let masterKey: MasterKey
    /// Who is acting, as recorded with every change (`cli` for the command line).
    public let actor: String

    public init(gatehouse: Gatehouse, masterKey: MasterKey, actor: String = "cli") {
        self.gatehouse = gatehouse
        self.masterKey = masterKey
        self.actor = actor
    }

    var directory: any Directory { gatehouse.directory }
    var now: Date { gatehouse.clock.now() }

    @discardableResult
    public func createPool(name: String, displayName: String?, algorithm: SigningAlgorithm = .es256) async throws -> Pool {
        let pool = Pool(id: try PoolID(name), displayName: displayName ?? name, signingAlgorithm: algorithm, createdAt: now)
        try await directory.createPool(pool)
        try await gatehouse.keyRing.ensureKey(pool: pool.id, algorithm: algorithm)
        // The credentials that reach every pool can act on this one from now on: its log says which.
        let global = try await directory.listAdminCredentials().filter { $0.poolID == nil && $0.revokedAt == nil }.map { JSONValue.string($0.name) }
        try await audit(pool.id, action: "pool.created", target: "pool:\(pool.id)", after: .object([
            "display_name": .string(pool.displayName), "algorithm": .string(algorithm.rawValue), "admin_credentials": .array(global),
        ]))
        return pool
    }

    /// Creates an app client. Confidential clients get a generated secret, returned only here.
    public func createClient(
        pool: String, name: String, redirectURIs: [String], logoutURIs: [String] = [], confidential: Bool,
        scopes: [String] = ["openid", "email", "profile"], providers: [String] = [], clientID: String? = nil,
        lifetimes: (id: Int, access: Int, refresh: Int) = (AppClient.defaultIDTokenTTL, AppClient.defaultAccessTokenTTL, AppClient.defaultRefreshTokenTTL)
    ) async throws -> (client: AppClient, secret: String?) {
        let poolID = try PoolID(pool)
        guard try await directory.pool(poolID) != nil else { throw DirectoryError(.notFound, "no pool \(pool)") }
        let secret = confidential ? Secrets.randomToken() : nil
        let client = AppClient(
            poolID: poolID, clientID: clientID ?? Secrets.randomToken(bytes: 16).lowercased().replacingOccurrences(of: "_", with: "x").replacingOccurrences(of: "-", with: "y"),
            name: name, secretHash: secret.map(Secrets.hash), redirectURIs: redirectURIs, logoutURIs: logoutURIs,
            allowedScopes: scopes, allowedProviders: providers, idTokenTTL: lifetimes.id, accessTokenTTL: lifetimes.access,
            refreshTokenTTL: lifetimes.refresh, createdAt: now)
        try await directory.createClient(client)
        try await audit(poolID, action: "client.created", target: "client:\(client.clientID)", after: .object([
            "name": .string(client.name), "public": .bool(client.isPublic), "redirect_uris": .array(client.redirectURIs.map(JSONValue.string)),
        ]))
        return (client, secret)
    }

    /// Adds an upstream OpenID provider; its client secret is sealed with the master key.
    @discardableResult
    public func createOIDCProvider(
        pool: String, name: String, settings: OIDCProviderSettings, clientSecret: String?,
        mapping: AttributeMapping = .oidcStandard, idpIdentifiers: [String] = []
    ) async throws -> IdentityProvider {
        let poolID = try PoolID(pool)
        let sealed = try clientSecret.map { try masterKey.seal(Data($0.utf8), purpose: IdentityProvider.secretPurpose(pool: poolID, provider: name)) }
        let provider = IdentityProvider(poolID: poolID, name: name, kind: .oidc, oidc: settings, sealedClientSecret: sealed, attributeMapping: mapping, idpIdentifiers: idpIdentifiers.map { $0.lowercased() }, createdAt: now)
        return try await create(provider)
    }

    /// Options of a new SAML provider beyond its metadata.
    public struct SAMLOptions: Sendable {
        public var spEntityID: String?
        public var signatures: String = "assertion"
        public var clockSkewSeconds: Int = 60
        public var requestBinding: SAMLProviderSettings.RequestBinding = .redirect
        public var nameIDFormat: String?
        public var forceAuthn = false
        public var requestedAuthnContext: [String] = []
        public var allowIdPInitiated = false
        public var metadataURL: String?
        public var metadataSigningCertificatePEM: String?
        public init() {}
    }

    /// Adds an upstream SAML identity provider from its metadata. Gatehouse's SP side gets a new
    /// RSA key (sealed with the master key) and a self-signed certificate; its entity ID defaults to
    /// `{issuer}/saml2/sp/{name}` and its ACS is `{issuer}/saml2/acs/{name}`.
    @discardableResult
    public func createSAMLProvider(
        pool: String, name: String, metadataXML: String, idpEntityID: String? = nil, options: SAMLOptions = SAMLOptions(),
        mapping: AttributeMapping = AttributeMapping([:]), idpIdentifiers: [String] = []
    ) async throws -> IdentityProvider {
        let poolID = try PoolID(pool)
        let pinned = try options.metadataSigningCertificatePEM.map { try SAMLCertificate(base64OrPEM: $0) }
        let metadata = try SAMLIdentityProviderMetadata.parse(Array(metadataXML.utf8), entityID: idpEntityID, pinnedCertificate: pinned, now: now)
        let issuer = gatehouse.configuration.issuer(for: poolID)
        let spEntityID = options.spEntityID ?? "\(issuer)/saml2/sp/\(name)"
        let (keyPEM, certificatePEM) = try SAMLSigningCredential.generate(commonName: String(spEntityID.prefix(64)), now: now)
        let sealed = try masterKey.seal(Data(keyPEM.utf8), purpose: SAMLProviderSettings.spKeyPurpose(pool: poolID, provider: name))
        var settings = SAMLProviderSettings(
            idpEntityID: metadata.entityID, metadataXML: metadataXML, metadataURL: options.metadataURL,
            metadataSigningCertificatePEM: options.metadataSigningCertificatePEM, spEntityID: spEntityID,
            acsURL: "\(issuer)/saml2/acs/\(name)", spCertificatePEM: certificatePEM, sealedSPPrivateKey: sealed,
            signatures: options.signatures, clockSkewSeconds: options.clockSkewSeconds, requestBinding: options.requestBinding,
            nameIDFormat: options.nameIDFormat, forceAuthn: options.forceAuthn, requestedAuthnContext: options.requestedAuthnContext,
            allowIdPInitiated: options.allowIdPInitiated)
        settings.sloURL = "\(issuer)/saml2/slo/\(name)"
        let provider = IdentityProvider(
            poolID: poolID, name: name, kind: .saml, oidc: nil, sealedClientSecret: nil, attributeMapping: mapping,
            idpIdentifiers: idpIdentifiers.map { $0.lowercased() }, createdAt: now, saml: settings)
        return try await create(provider)
    }

    /// Publishes a new signing key now; it signs after `activationDelay`, when the current key retires.
    public func rotateKeys(pool: String, activationDelay: TimeInterval) async throws -> SigningKeyRecord {
        let poolID = try PoolID(pool)
        guard let p = try await directory.pool(poolID) else { throw DirectoryError(.notFound, "no pool \(pool)") }
        let record = try await gatehouse.keyRing.rotate(pool: poolID, algorithm: p.signingAlgorithm, activationDelay: activationDelay)
        try await audit(poolID, action: "keys.rotated", target: "key:\(record.kid)", after: .object(["activates_at": .number(Double(record.activatesAt.epochSeconds))]))
        return record
    }
}
