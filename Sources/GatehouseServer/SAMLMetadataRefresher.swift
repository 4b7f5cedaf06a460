public import Foundation
import Logging
import Metrics
import Synchronization
public import ServiceLifecycle
import GatehouseCore
import GatehouseSAML

/// Keeps SAML providers' metadata fresh and their certificates watched, in the background.
///
/// A provider imported from a URL is fetched again when its copy is due: after its `cacheDuration`
/// (six hours when it gives none), and at the latest half-way to its `validUntil`. A fetched document
/// replaces the stored one only if it parses, names the same entity and, when a certificate is
/// pinned, is signed with it; otherwise the last good copy stays and the failure is logged and
/// counted. Every pass also reports each provider's earliest certificate expiry (a gauge in seconds,
/// and a warning within 30 days).
public final class SAMLMetadataRefresher: Sendable {
    let gatehouse: Gatehouse
    private let lastFetched = Mutex<[String: Date]>([:])
    public static let defaultCacheDuration: TimeInterval = 6 * 3600
    public static let expiryWarning: TimeInterval = 30 * 86_400

    public init(gatehouse: Gatehouse) { self.gatehouse = gatehouse }

    public enum Outcome: Equatable, Sendable {
        case notDue, unchanged, updated
        case failed(String)
    }

    /// One pass over every SAML provider of every pool. Returns what happened to each
    /// (`pool/provider`) that has a metadata URL.
    @discardableResult
    public func refreshOnce(force: Bool = false) async -> [String: Outcome] {
        var outcomes: [String: Outcome] = [:]
        let now = gatehouse.clock.now()
        let pools: [Pool]
        do { pools = try await gatehouse.directory.listPools() } catch {
            gatehouse.logger.warning("metadata refresh could not list pools", metadata: ["reason": "\(error)"])
            return [:]
        }
        for pool in pools {
            let providers = (try? await gatehouse.directory.listProviders(pool: pool.id)) ?? []
            for provider in providers where provider.kind == .saml {
                guard let settings = provider.saml else { continue }
                let key = "\(pool.id)/\(provider.name)"
                var current = try? SAMLIdentityProviderMetadata.parse(Array(settings.metadataXML.utf8), entityID: settings.idpEntityID, now: now)
                if let url = settings.metadataURL {
                    let outcome = await refresh(provider, settings: settings, url: url, current: current, force: force, now: now)
                    outcomes[key] = outcome
                    if outcome == .updated, let fresh = try? await gatehouse.directory.provider(pool: pool.id, name: provider.name)?.saml {
                        current = try? SAMLIdentityProviderMetadata.parse(Array(fresh.metadataXML.utf8), entityID: fresh.idpEntityID, now: now)
                    }
                }
                report(current, provider: provider, now: now)
            }
        }
        return outcomes
    }

    private func refresh(_ provider: IdentityProvider, settings: SAMLProviderSettings, url: String, current: SAMLIdentityProviderMetadata?, force: Bool, now: Date) async -> Outcome {
        let key = "\(provider.poolID)/\(provider.name)"
        var interval = current?.cacheDuration ?? Self.defaultCacheDuration
        if let validUntil = current?.validUntil { interval = min(interval, max(60, validUntil.timeIntervalSince(now) / 2)) }
        if !force, current != nil, let last = lastFetched.withLock({ $0[key] }), now < last.addingTimeInterval(interval) {
            return .notDue
        }
        lastFetched.withLock { $0[key] = now }
        do {
            let xml = try await SAMLMetadataFetch.fetch(url, http: gatehouse.http)
            let pinned = try settings.metadataSigningCertificatePEM.map { try SAMLCertificate(base64OrPEM: $0) }
            _ = try SAMLIdentityProviderMetadata.parse(Array(xml.utf8), entityID: settings.idpEntityID, pinnedCertificate: pinned, now: now)
            guard xml != settings.metadataXML else { return .unchanged }
            var updated = provider
            updated.saml?.metadataXML = xml
            try await gatehouse.directory.updateProvider(updated)
            gatehouse.logger.info("SAML metadata updated", metadata: ["pool": "\(provider.poolID)", "provider": "\(provider.name)"])
            return .updated
        } catch {
            gatehouse.logger.warning("SAML metadata refresh failed; keeping the last good copy",
                                     metadata: ["pool": "\(provider.poolID)", "provider": "\(provider.name)", "reason": "\(error)"])
            Counter(label: "gatehouse_saml_metadata_refresh_failures_total", dimensions: [("provider", provider.name)], factory: gatehouse.metricsFactory).increment()
            return .failed("\(error)")
        }
    }

    private func report(_ metadata: SAMLIdentityProviderMetadata?, provider: IdentityProvider, now: Date) {
        guard let metadata, let earliest = metadata.signingCertificates.map(\.notAfter).min() else { return }
        let remaining = earliest.timeIntervalSince(now)
        Gauge(label: "gatehouse_saml_certificate_expiry_seconds", dimensions: [("pool", "\(provider.poolID)"), ("provider", provider.name)],
              factory: gatehouse.metricsFactory).record(remaining)
        for certificate in metadata.certificatesExpiring(within: Self.expiryWarning, now: now) {
            gatehouse.logger.warning(remaining <= 0 ? "SAML IdP certificate has expired" : "SAML IdP certificate expires soon", metadata: [
                "pool": "\(provider.poolID)", "provider": "\(provider.name)", "certificate": "\(certificate.sha256Fingerprint.prefix(16))",
                "notAfter": "\(certificate.notAfter)",
            ])
        }
    }
}

/// Runs the refresher every few minutes for as long as the server runs.
public struct SAMLMetadataService: Service {
    let refresher: SAMLMetadataRefresher
    let interval: Duration

    public init(gatehouse: Gatehouse, interval: Duration = .seconds(300)) {
        self.refresher = SAMLMetadataRefresher(gatehouse: gatehouse)
        self.interval = interval
    }

    public func run() async throws {
        while true {
            await refresher.refreshOnce()
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) } } catch { return }
        }
    }
}
