import ArgumentParser
import Foundation
import Logging
import GatehouseCore
import GatehouseDirectory
import GatehouseServer
import GatehouseOIDC
import ServiceLifecycle
import UnixSignals

@main
struct GatehouseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatehouse",
        abstract: "A self-hosted identity federation bridge.",
        subcommands: [Serve.self, Migrate.self, PoolCommand.self, ClientCommand.self, ProviderCommand.self, MappingCommand.self, UserCommand.self, GroupCommand.self, AuditCommand.self, AdminCredentialCommand.self, KeysCommand.self, OIDCCommand.self, SAMLCommand.self]
    )
}

/// Options every command that touches the Directory shares.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "JSON configuration file (GATEHOUSE_* environment variables override it).")
    var config: String?
}

/// An opened Directory with the Gatehouse and Admin over it; closed by `close()`.
struct Environment {
    let configuration: ServerConfiguration
    let gatehouse: Gatehouse
    let admin: Admin
    let http: UpstreamHTTP

    static func open(_ options: CommonOptions, logLevel: Logger.Level? = nil) async throws -> Environment {
        let configuration = try ServerConfiguration.load(file: options.config)
        var logger = Logger(label: "gatehouse")
        logger.logLevel = logLevel ?? Logger.Level(rawValue: configuration.logLevel) ?? .info
        let env = ProcessInfo.processInfo.environment
        // Only the embedded default may create its own master key (a dev convenience, like the SQLite file).
        let embeddedDefault = configuration.databaseURL == nil && configuration.masterKeyFile == nil && env["GATEHOUSE_MASTER_KEY"] == nil
        let masterKey = try configuration.loadMasterKey(createIfMissing: embeddedDefault)
        let directory: any Directory = if let url = configuration.databaseURL {
            try await DirectoryFactory.postgres(url: url, logger: logger)
        } else {
            try await DirectoryFactory.sqlite(path: configuration.sqlitePath, logger: logger)
        }
        try await directory.migrate()
        let http = UpstreamHTTP()
        let gatehouse = Gatehouse(configuration: configuration, directory: directory, masterKey: masterKey, http: http, logger: logger)
        return Environment(configuration: configuration, gatehouse: gatehouse, admin: Admin(gatehouse: gatehouse, masterKey: masterKey, actor: "cli:" + (env["USER"] ?? "unknown")), http: http)
    }

    func close() async {
        try? await gatehouse.directory.shutdown()
        try? await http.shutdown()
    }
}

/// Runs `body` with an opened environment and always closes it.
func withEnvironment(_ options: CommonOptions, logLevel: Logger.Level? = .warning, _ body: (Environment) async throws -> Void) async throws {
    let env = try await Environment.open(options, logLevel: logLevel)
    do { try await body(env) } catch {
        await env.close()
        throw error
    }
    await env.close()
}

func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the bridge (SQLite under ./data and 127.0.0.1:8080 by default).")
    @OptionGroup var common: CommonOptions

    func run() async throws {
        let env = try await Environment.open(common, logLevel: nil)
        let gatehouse = env.gatehouse
        try await gatehouse.prepareKeys()
        let app = try gatehouse.makeApplication()
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: app), .init(service: Housekeeping(gatehouse: gatehouse)), .init(service: SAMLMetadataService(gatehouse: gatehouse))],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: gatehouse.logger))
        let pools = try await gatehouse.directory.listPools()
        let base = env.configuration.publicBaseURL
        print("Gatehouse is listening on \(base) (directory: \(gatehouse.directory.backendName)).")
        if pools.isEmpty {
            print("""
                No pool yet. Next, in another terminal:
                  swift run gatehouse pool create demo
                  swift run gatehouse client create --pool demo --name my-app --redirect-uri http://localhost:3000/callback
                  swift run gatehouse provider add-oidc --pool demo --name Google --preset google --client-id ID --client-secret-env GOOGLE_SECRET
                Then send a browser to \(base)/demo/oauth2/authorize?response_type=code&client_id=CLIENT&redirect_uri=...&scope=openid
                """)
        } else {
            for pool in pools { print("Pool \(pool.id): issuer \(env.configuration.issuer(for: pool.id))") }
        }
        fflush(nil)  // flush stdout even when it is a pipe or a file
        do { try await group.run() } catch {
            await gatehouse.flushPendingWork()
            await env.close()
            throw error
        }
        await gatehouse.flushPendingWork()
        await env.close()
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply database migrations and exit.")
    @OptionGroup var common: CommonOptions
    func run() async throws {
        try await withEnvironment(common) { env in print("Migrations applied (\(env.gatehouse.directory.backendName)).") }
    }
}
