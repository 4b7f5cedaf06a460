public import GatehouseCore

/// A SigningKeyStore in memory: for the issuer's unit tests and the minting benchmark, which need
/// storage semantics, not a database. An actor: safe from any task.
public actor MemorySigningKeyStore: SigningKeyStore {
    public private(set) var keys: [SigningKeyRecord] = []
    public init() {}
    public func addSigningKey(_ key: SigningKeyRecord) { keys.append(key) }
    public func updateSigningKey(_ key: SigningKeyRecord) { keys = keys.map { $0.kid == key.kid ? key : $0 } }
    public func signingKeys(pool: PoolID) -> [SigningKeyRecord] { keys.filter { $0.poolID == pool } }
}
