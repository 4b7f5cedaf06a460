import Foundation
public import GatehouseCore
public import GatehouseServer
import GatehouseOIDC
import Hummingbird
public import Logging
import Synchronization

/// A Gatehouse server on 127.0.0.1 with a given Directory, for end-to-end tests and benchmarks.
public final class RunningGatehouse: Sendable {
    public let gatehouse: Gatehouse
    public let admin: Admin
    public let baseURL: String
    private let server: GracefulServer
    private let http: UpstreamHTTP

    /// Starts on a free port; with `tls` (certificate and key PEM files) it serves https.
    public static func start(directory: any Directory, clock: any GatehouseClock = SystemClock(), logLevel: Logger.Level = .critical, tls: (certificate: String, key: String)? = nil, logHandler: (any LogHandler)? = nil, metricsToken: String? = nil) async throws -> RunningGatehouse {
        let port = try LoopbackPort.pick()
        let config = ServerConfiguration(
            publicBaseURL: "\(tls == nil ? "http" : "https")://127.0.0.1:\(port)", host: "127.0.0.1", port: port,
            tlsCertificateFile: tls?.certificate, tlsPrivateKeyFile: tls?.key, metricsToken: metricsToken)
        var logger = logHandler.map { handler in Logger(label: "gatehouse.test") { _ in handler } } ?? Logger(label: "gatehouse.test")
        logger.logLevel = logLevel
        let masterKey = try MasterKey(base64: MasterKey.generateBase64())
        let http = UpstreamHTTP()
        let gatehouse = Gatehouse(configuration: config, directory: directory, masterKey: masterKey, clock: clock, http: http, logger: logger)
        let server: GracefulServer
        do {
            server = GracefulServer(try gatehouse.makeApplication(), logger: logger)
        } catch {
            try? await http.shutdown()
            throw error
        }
        do { try await LoopbackPort.waitUntilListening(port) } catch {
            await server.stop()
            try? await http.shutdown()
            throw error
        }
        return RunningGatehouse(gatehouse: gatehouse, admin: Admin(gatehouse: gatehouse, masterKey: masterKey), baseURL: config.publicBaseURL, server: server, http: http)
    }

    private init(gatehouse: Gatehouse, admin: Admin, baseURL: String, server: GracefulServer, http: UpstreamHTTP) {
        self.gatehouse = gatehouse
        self.admin = admin
        self.baseURL = baseURL
        self.server = server
        self.http = http
    }

    public func stop() async {
        await server.stop()
        await gatehouse.flushPendingWork()
        try? await http.shutdown()
    }
}
