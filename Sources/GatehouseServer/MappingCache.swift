import GatehouseCore
import GatehouseMapping
import Synchronization

/// Compiled mappings by provider, recompiled when the stored mapping or the pool's custom
/// attributes change. Thread-safe.
final class MappingCache: Sendable {
    private struct Entry {
        let mapping: AttributeMapping
        let customAttributes: [CustomAttribute]
        let compiled: CompiledMapping
    }
    private let entries = Mutex<[String: Entry]>([:])
    /// Most providers remembered; beyond it the cache starts over (compiling is cheap).
    static let capacity = 4096

    func compiled(pool: Pool, provider: IdentityProvider) throws(MappingError) -> CompiledMapping {
        let key = "\(pool.id)/\(provider.name)"
        if let e = entries.withLock({ $0[key] }), e.mapping == provider.attributeMapping, e.customAttributes == pool.customAttributes {
            return e.compiled
        }
        let compiled = try CompiledMapping(provider.attributeMapping, customAttributes: pool.customAttributes)
        entries.withLock {
            if $0.count >= Self.capacity { $0.removeAll() }
            $0[key] = Entry(mapping: provider.attributeMapping, customAttributes: pool.customAttributes, compiled: compiled)
        }
        return compiled
    }
}
