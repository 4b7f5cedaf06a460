public import Foundation
public import GatehouseCore
import GatehouseMapping
import GatehouseOIDC
import GatehouseSAML

/// Attribute mappings as admins live with them: checked when saved, versioned, previewed, rolled back.
extension Admin {
    /// Creates a provider after checking its mapping against the pool, and records the mapping as version 1.
    func create(_ provider: IdentityProvider) async throws -> IdentityProvider {
        guard let pool = try await directory.pool(provider.poolID) else { throw DirectoryError(.notFound, "no pool \(provider.poolID)") }
        _ = try CompiledMapping(provider.attributeMapping, customAttributes: pool.customAttributes)
        try await directory.createProvider(provider)
        try await audit(provider.poolID, action: "provider.created", target: "provider:\(provider.name)", after: .object(["kind": .string(provider.kind.rawValue)]))
        _ = try await directory.saveMapping(pool: provider.poolID, provider: provider.name, mapping: provider.attributeMapping, author: actor, note: "created with the provider", now: now)
        return provider
    }

    func existingProvider(pool: String, name: String) async throws -> (Pool, IdentityProvider) {
        let poolID = try PoolID(pool)
        guard let p = try await directory.pool(poolID) else { throw DirectoryError(.notFound, "no pool \(pool)") }
        guard let provider = try await directory.provider(pool: poolID, name: name) else { throw DirectoryError(.notFound, "no provider \(name) in pool \(pool)") }
        return (p, provider)
    }

    /// Checks `mapping` (throwing `MappingError` with the rule and position of the first fault) and
    /// saves it as the provider's next version.
    public func setMapping(pool: String, provider: String, mapping: AttributeMapping, note: String? = nil) async throws -> MappingVersion {
        let (p, _) = try await existingProvider(pool: pool, name: provider)
        try mapping.validate()
        _ = try CompiledMapping(mapping, customAttributes: p.customAttributes)
        let version = try await directory.saveMapping(pool: p.id, provider: provider, mapping: mapping, author: actor, note: note, now: now)
        try await audit(p.id, action: "mapping.saved", target: "provider:\(provider)", after: .object([
            "version": .number(Double(version.version)), "note": note.map(JSONValue.string) ?? .null,
            "changes": .array(version.changes.map { .object(["target": .string($0.target), "before": $0.before.map(JSONValue.string) ?? .null, "after": $0.after.map(JSONValue.string) ?? .null]) }),
        ]))
        return version
    }

    public func mappingVersions(pool: String, provider: String) async throws -> [MappingVersion] {
        let (p, _) = try await existingProvider(pool: pool, name: provider)
        return try await directory.mappingVersions(pool: p.id, provider: provider)
    }

    /// Makes version `version` current again, as a new version (history is never rewritten).
    public func rollbackMapping(pool: String, provider: String, to version: Int) async throws -> MappingVersion {
        let (p, _) = try await existingProvider(pool: pool, name: provider)
        guard let old = try await directory.mappingVersion(pool: p.id, provider: provider, version: version) else {
            throw DirectoryError(.notFound, "no version \(version) of the mapping of \(provider)")
        }
        return try await setMapping(pool: pool, provider: provider, mapping: old.mapping, note: "rollback to version \(version)")
    }

    /// What a preview runs a mapping over.
    public enum PreviewInput: Sendable {
        /// Upstream attributes or claims by name, as the mapping sees them.
        case attributes([String: [String]])
        /// A captured SAML response (XML, base64 or percent-encoded); not verified.
        case samlResponse(String)
        /// A captured ID token; not verified.
        case idToken(String)
        /// The provider's most recent verified logins, as kept (redacted).
        case recentLogins(Int)
    }

    /// The canonical user one input yields, and every rule's inputs and output.
    public struct MappingPreview: Sendable, Encodable {
        public struct RuleView: Sendable, Encodable {
            public let target: String
            public let update: String
            public let inputs: [String: [String]]
            public let output: [String]
            public let failure: String?
        }
        /// What was mapped: `attributes`, `saml_response`, `id_token`, or `login sample {id}`.
        public let source: String
        public let capturedAt: Date?
        /// Set at every login.
        public let attributes: [String: String]
        /// Set only when the user is created.
        public let initialAttributes: [String: String]
        /// Pool groups the user would be in through this mapping (`nil`: the mapping has no groups rule).
        public let groups: [String]?
        /// Groups the mapping names that the pool does not have: a login ignores them.
        public let unknownGroups: [String]
        public let rules: [RuleView]
    }

    /// Runs `mapping` (or the provider's current one) over `input` without changing anything.
    public func previewMapping(pool: String, provider: String, mapping: AttributeMapping? = nil, input: PreviewInput) async throws -> [MappingPreview] {
        let (p, stored) = try await existingProvider(pool: pool, name: provider)
        let compiled = try CompiledMapping(mapping ?? stored.attributeMapping, customAttributes: p.customAttributes)
        let poolGroups = Set(try await directory.listGroups(pool: p.id).map(\.name))
        var inputs: [(String, Date?, [String: [String]])] = []
        switch input {
        case .attributes(let a): inputs = [("attributes", nil, a)]
        case .samlResponse(let text): inputs = [("saml_response", nil, try UnverifiedSAMLResponse.attributesForPreview(text))]
        case .idToken(let token): inputs = [("id_token", nil, try UnverifiedIDToken.claimsForPreview(token))]
        case .recentLogins(let n):
            await gatehouse.loginSamples.flush()
            inputs = try await directory.loginSamples(pool: p.id, provider: provider, limit: n).map { ("login sample \($0.id)", $0.capturedAt, $0.attributes) }
        }
        return inputs.map { source, capturedAt, attributes in
            let (result, outcomes) = compiled.explain(attributes)
            return MappingPreview(
                source: source, capturedAt: capturedAt, attributes: result.attributes, initialAttributes: result.initialAttributes,
                groups: result.groups?.filter(poolGroups.contains), unknownGroups: result.groups?.filter { !poolGroups.contains($0) } ?? [],
                rules: outcomes.map { .init(target: $0.target, update: $0.update.rawValue, inputs: $0.inputs, output: $0.output, failure: $0.failure) })
        }
    }

    /// Declares a custom attribute in a pool (`custom:` + name, typed).
    public func declareCustomAttribute(pool: String, _ attribute: CustomAttribute) async throws -> Pool {
        let poolID = try PoolID(pool)
        guard var p = try await directory.pool(poolID) else { throw DirectoryError(.notFound, "no pool \(pool)") }
        guard !p.customAttributes.contains(where: { $0.name == attribute.name }) else { throw DirectoryError(.conflict, "\(attribute.name) is already declared") }
        p.customAttributes.append(attribute)
        try await directory.updatePool(p)
        try await audit(p.id, action: "pool.attribute_declared", target: "pool:\(p.id)", after: .object(["name": .string(attribute.name), "type": .string(attribute.type.rawValue)]))
        return p
    }
}
