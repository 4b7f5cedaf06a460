import Foundation
import Logging
import GatehouseJOSE
import Synchronization
import GatehouseCore
import GatehouseOIDC
import GatehouseSAML

/// Finds the federation adapter of a configured provider. Adapters (and their discovery and JWKS
/// caches) are kept while the provider's configuration is unchanged, so concurrent logins share
/// them; an edited provider gets a fresh adapter. Thread-safe.
final class AdapterRegistry: Sendable {
    private struct Entry: Sendable {
        let fingerprint: IdentityProvider
        let adapter: any FederationAdapter
    }
    private let entries = Mutex<[String: Entry]>([:])
    private let http: UpstreamHTTP
    private let masterKey: MasterKey
    private let replayCache: any ReplayCache
    private let clock: any GatehouseClock
    private let cachePolicy: CachePolicy

    init(http: UpstreamHTTP, masterKey: MasterKey, replayCache: any ReplayCache, clock: any GatehouseClock, cachePolicy: CachePolicy = CachePolicy()) {
        self.cachePolicy = cachePolicy
        self.http = http
        self.masterKey = masterKey
        self.replayCache = replayCache
        self.clock = clock
    }

    func adapter(for provider: IdentityProvider) throws -> any FederationAdapter {
        let key = "\(provider.poolID)/\(provider.name)"
        if let e = entries.withLock({ $0[key] }), e.fingerprint == provider { return e.adapter }
        let adapter: any FederationAdapter
        switch provider.kind {
        case .oidc:
            guard let settings = provider.oidc else { throw ConfigurationError("provider \(provider.name) has no OIDC settings") }
            let secret = try provider.sealedClientSecret.map {
                String(decoding: try masterKey.open($0, purpose: IdentityProvider.secretPurpose(pool: provider.poolID, provider: provider.name)), as: UTF8.self)
            }
            let credential = try ClientCredential.make(settings: settings, secret: secret)
            if settings.isOAuthOnly {
                adapter = try OAuth2Adapter(providerName: provider.name, settings: settings, credential: credential, http: http)
            } else {
                adapter = OIDCAdapter(providerName: provider.name, settings: settings, credential: credential, http: http, clock: clock, cachePolicy: cachePolicy)
            }
        case .saml:
            guard let settings = provider.saml else { throw ConfigurationError("provider \(provider.name) has no SAML settings") }
            let key = String(decoding: try masterKey.open(settings.sealedSPPrivateKey, purpose: SAMLProviderSettings.spKeyPurpose(pool: provider.poolID, provider: provider.name)), as: UTF8.self)
            adapter = try SAMLAdapter(
                poolID: provider.poolID, providerName: provider.name, settings: settings, spPrivateKeyPEM: key,
                replayCache: replayCache, clock: clock)
        }
        entries.withLock { $0[key] = Entry(fingerprint: provider, adapter: adapter) }
        return adapter
    }

}
