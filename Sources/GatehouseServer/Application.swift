public import Hummingbird
import HummingbirdTLS
import NIOSSL
public import ServiceLifecycle
import Logging
import Foundation
import GatehouseCore

extension Gatehouse {
    /// The HTTP application: plain HTTP, or TLS from the configured certificate files.
    public func makeApplication(services: [any Service] = []) throws -> Application<RouterResponder<GatehouseRequestContext>> {
        let config = ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port), serverName: "Gatehouse")
        if let certFile = configuration.tlsCertificateFile, let keyFile = configuration.tlsPrivateKeyFile {
            let chain = try NIOSSLCertificate.fromPEMFile(certFile).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
            let tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
            return Application(router: router(), server: try .tls(.http1(), tlsConfiguration: tls), configuration: config, services: services, logger: logger)
        }
        return Application(router: router(), configuration: config, services: services, logger: logger)
    }
}

/// Background upkeep in the same service group as the HTTP server: warms provider caches at start,
/// then periodically deletes expired login state and refreshes provider caches. Stops on graceful shutdown.
public struct Housekeeping: Service {
    let gatehouse: Gatehouse
    let interval: Duration

    public init(gatehouse: Gatehouse, interval: Duration = .seconds(300)) {
        self.gatehouse = gatehouse
        self.interval = interval
    }

    public func run() async throws {
        await gatehouse.warmAdapters()
        while true {
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) } } catch { return }
            do { try await gatehouse.directory.purgeExpired(now: gatehouse.clock.now()) } catch {
                gatehouse.logger.warning("purge of expired login state failed", metadata: ["reason": "\(error)"])
            }
            await gatehouse.warmAdapters()
        }
    }
}
