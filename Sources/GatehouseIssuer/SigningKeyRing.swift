public import Foundation
public import GatehouseCore
public import GatehouseJOSE
import Synchronization

/// The signing keys of every pool, decrypted once and cached in memory.
///
/// Rotation follows the publish-before-sign rule: a new key appears in JWKS at once but signs only
/// from its activation time; the key it replaces stops signing then and stays published until every
/// token it could have signed has expired. The cache is reloaded from the Directory at most every
/// `reloadInterval`, so several bridge processes converge on the same keys. Thread-safe.
public final class SigningKeyRing: Sendable {
    struct LoadedKey: Sendable {
        let record: SigningKeyRecord
        let key: JWSSigningKey
        let jwk: JWK
        /// Built once at load, so checking an access token parses no key.
        let verificationKey: JWSVerificationKey
    }
    struct Entry: Sendable {
        let loadedAt: Date
        let keys: [LoadedKey]
    }

    private let store: any SigningKeyStore
    private let masterKey: MasterKey
    private let clock: any GatehouseClock
    private let cache = Mutex<[PoolID: Entry]>([:])
    public let reloadInterval: TimeInterval

    /// How long after the last moment a retired key could sign it stays published: the longest token
    /// lifetime a client may configure, plus a margin for clock skew.
    public static let retentionAfterRetirement: TimeInterval = TimeInterval(AppClient.maximumTokenTTL) + 300

    public init(store: any SigningKeyStore, masterKey: MasterKey, clock: any GatehouseClock, reloadInterval: TimeInterval = 60) {
        self.store = store
        self.masterKey = masterKey
        self.clock = clock
        self.reloadInterval = reloadInterval
    }

    /// Makes sure the pool has a key that can sign now; creates one (active at once) if it has none.
    public func ensureKey(pool: PoolID, algorithm: SigningAlgorithm) async throws {
        let now = clock.now()
        let records = try await store.signingKeys(pool: pool)
        if records.contains(where: { $0.canSign(at: now) && $0.algorithm == algorithm }) { return }
        _ = try await addKey(pool: pool, algorithm: algorithm, activatesAt: now, retiring: records.filter { $0.canSign(at: now) }, now: now)
    }

    /// Adds a new key that signs from `now + activationDelay`; the currently signing keys retire then.
    @discardableResult
    public func rotate(pool: PoolID, algorithm: SigningAlgorithm, activationDelay: TimeInterval) async throws -> SigningKeyRecord {
        let now = clock.now()
        let records = try await store.signingKeys(pool: pool)
        let activates = now.addingTimeInterval(max(0, activationDelay))
        return try await addKey(pool: pool, algorithm: algorithm, activatesAt: activates, retiring: records.filter { ($0.retiresAt ?? .distantFuture) > activates }, now: now)
    }

    private func addKey(pool: PoolID, algorithm: SigningAlgorithm, activatesAt: Date, retiring: [SigningKeyRecord], now: Date) async throws -> SigningKeyRecord {
        let key = try JWSSigningKey.generate(algorithm)
        let kid = try key.thumbprint()
        let sealed = try masterKey.seal(Data(key.pemRepresentation.utf8), purpose: SigningKeyRecord.purpose(pool: pool, kid: kid))
        let record = SigningKeyRecord(poolID: pool, kid: kid, algorithm: algorithm, sealedPrivateKey: sealed, createdAt: now, activatesAt: activatesAt)
        try await store.addSigningKey(record)
        for var old in retiring where old.kid != kid {
            old.retiresAt = activatesAt
            old.removeAfter = activatesAt.addingTimeInterval(Self.retentionAfterRetirement)
            try await store.updateSigningKey(old)
        }
        invalidate(pool: pool)
        return record
    }

    public func invalidate(pool: PoolID) {
        _ = cache.withLock { $0.removeValue(forKey: pool) }
    }

    func loaded(pool: PoolID) async throws -> [LoadedKey] {
        let now = clock.now()
        if let entry = cache.withLock({ $0[pool] }), now.timeIntervalSince(entry.loadedAt) < reloadInterval {
            return entry.keys
        }
        let records = try await store.signingKeys(pool: pool)
        var keys: [LoadedKey] = []
        for record in records {
            let pem = try masterKey.open(record.sealedPrivateKey, purpose: SigningKeyRecord.purpose(pool: pool, kid: record.kid))
            let key = try JWSSigningKey(pem: String(decoding: pem, as: UTF8.self), algorithm: record.algorithm)
            let jwk = try key.publicJWK(kid: record.kid)
            keys.append(LoadedKey(record: record, key: key, jwk: jwk, verificationKey: try JWSVerificationKey(jwk: jwk)))
        }
        let entry = Entry(loadedAt: now, keys: keys)
        cache.withLock { $0[pool] = entry }
        return keys
    }

    /// The key that signs now: the most recently activated key whose window contains `now`.
    public func currentSigner(pool: PoolID) async throws -> (kid: String, key: JWSSigningKey) {
        let now = clock.now()
        let candidates = try await loaded(pool: pool).filter { $0.record.canSign(at: now) }
        guard let best = candidates.max(by: { $0.record.activatesAt < $1.record.activatesAt }) else {
            throw ConfigurationError("pool \(pool) has no signing key that is active now")
        }
        return (best.record.kid, best.key)
    }

    /// Every published key of the pool, as a JWK Set.
    public func jwks(pool: PoolID) async throws -> JWKSet {
        let now = clock.now()
        return JWKSet(keys: try await loaded(pool: pool).filter { $0.record.isPublished(at: now) }.map(\.jwk))
    }

    /// The published verification key with this `kid`, if any.
    public func verificationKey(pool: PoolID, kid: String) async throws -> (JWSVerificationKey, SigningAlgorithm)? {
        let now = clock.now()
        guard let k = try await loaded(pool: pool).first(where: { $0.record.kid == kid && $0.record.isPublished(at: now) }) else { return nil }
        return (k.verificationKey, k.record.algorithm)
    }
}
