public import Foundation
public import GatehouseCore

/// How a Gatehouse process is configured: a JSON file, then `GATEHOUSE_*` environment overrides.
///
/// The master key is never read from the database: it comes from `GATEHOUSE_MASTER_KEY`, or from the
/// file named by `masterKeyFile` / `GATEHOUSE_MASTER_KEY_FILE`.
public struct ServerConfiguration: Codable, Sendable, Equatable {
    /// The public base URL; each pool's issuer is `{publicBaseURL}/{pool}`.
    public var publicBaseURL: String
    public var host: String
    public var port: Int
    /// SQLite file for the embedded default; ignored when `databaseURL` is set.
    public var sqlitePath: String
    /// `postgres://user:password@host:port/database`; when set, PostgreSQL is used.
    public var databaseURL: String?
    public var masterKeyFile: String?
    /// Serve TLS directly from these PEM files.
    public var tlsCertificateFile: String?
    public var tlsPrivateKeyFile: String?
    /// Peers whose `X-Forwarded-For` is believed (exact IP addresses of reverse proxies).
    public var trustedProxies: [String]
    public var logLevel: String
    /// When set, `/metrics` answers only requests bearing `Authorization: Bearer {token}`. A secret:
    /// only from `GATEHOUSE_METRICS_TOKEN`, never from the configuration file.
    public var metricsToken: String?

    public init(
        publicBaseURL: String = "http://127.0.0.1:8080", host: String = "127.0.0.1", port: Int = 8080,
        sqlitePath: String = "data/gatehouse.sqlite", databaseURL: String? = nil, masterKeyFile: String? = nil,
        tlsCertificateFile: String? = nil, tlsPrivateKeyFile: String? = nil, trustedProxies: [String] = [], logLevel: String = "info",
        metricsToken: String? = nil
    ) {
        self.publicBaseURL = publicBaseURL
        self.host = host
        self.port = port
        self.sqlitePath = sqlitePath
        self.databaseURL = databaseURL
        self.masterKeyFile = masterKeyFile
        self.tlsCertificateFile = tlsCertificateFile
        self.tlsPrivateKeyFile = tlsPrivateKeyFile
        self.trustedProxies = trustedProxies
        self.logLevel = logLevel
        self.metricsToken = metricsToken
    }

    enum CodingKeys: String, CodingKey {
        case publicBaseURL, host, port, sqlitePath, databaseURL, masterKeyFile, tlsCertificateFile, tlsPrivateKeyFile, trustedProxies, logLevel
    }

    public init(from decoder: any Decoder) throws {
        let d = ServerConfiguration()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.publicBaseURL = try c.decodeIfPresent(String.self, forKey: .publicBaseURL) ?? d.publicBaseURL
        self.host = try c.decodeIfPresent(String.self, forKey: .host) ?? d.host
        self.port = try c.decodeIfPresent(Int.self, forKey: .port) ?? d.port
        self.sqlitePath = try c.decodeIfPresent(String.self, forKey: .sqlitePath) ?? d.sqlitePath
        self.databaseURL = try c.decodeIfPresent(String.self, forKey: .databaseURL)
        self.masterKeyFile = try c.decodeIfPresent(String.self, forKey: .masterKeyFile)
        self.tlsCertificateFile = try c.decodeIfPresent(String.self, forKey: .tlsCertificateFile)
        self.tlsPrivateKeyFile = try c.decodeIfPresent(String.self, forKey: .tlsPrivateKeyFile)
        self.trustedProxies = try c.decodeIfPresent([String].self, forKey: .trustedProxies) ?? []
        self.logLevel = try c.decodeIfPresent(String.self, forKey: .logLevel) ?? d.logLevel
    }

    /// Reads the file (if any) and applies environment overrides.
    public static func load(file: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ServerConfiguration {
        var config = ServerConfiguration()
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else { throw ConfigurationError("cannot read configuration file \(file)") }
            do { config = try JSONDecoder().decode(ServerConfiguration.self, from: data) } catch {
                throw ConfigurationError("configuration file \(file) is not valid: \(error)")
            }
        }
        let env = environment
        if let v = env["GATEHOUSE_PUBLIC_URL"] { config.publicBaseURL = v }
        if let v = env["GATEHOUSE_HOST"] { config.host = v }
        if let v = env["GATEHOUSE_PORT"] {
            guard let p = Int(v), (0...65535).contains(p) else { throw ConfigurationError("GATEHOUSE_PORT must be a port number") }
            config.port = p
        }
        if let v = env["GATEHOUSE_SQLITE_PATH"] { config.sqlitePath = v }
        if let v = env["GATEHOUSE_DATABASE_URL"], !v.isEmpty { config.databaseURL = v }
        if let v = env["GATEHOUSE_MASTER_KEY_FILE"] { config.masterKeyFile = v }
        if let v = env["GATEHOUSE_TLS_CERT"] { config.tlsCertificateFile = v }
        if let v = env["GATEHOUSE_TLS_KEY"] { config.tlsPrivateKeyFile = v }
        if let v = env["GATEHOUSE_TRUSTED_PROXIES"] { config.trustedProxies = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        if let v = env["GATEHOUSE_LOG_LEVEL"] { config.logLevel = v }
        if let v = env["GATEHOUSE_METRICS_TOKEN"], !v.isEmpty {
            guard v.utf8.count >= 16 else { throw ConfigurationError("GATEHOUSE_METRICS_TOKEN must be at least 16 characters") }
            config.metricsToken = v
        }
        try config.validate()
        return config
    }

    /// Refuses a plain-http issuer anywhere but loopback, and half-configured TLS.
    public func validate() throws {
        guard let url = URL(string: publicBaseURL), let scheme = url.scheme, let host = url.host, url.query == nil, url.fragment == nil else {
            throw ConfigurationError("publicBaseURL must be an absolute URL such as https://login.example.com")
        }
        if scheme == "http" && !AppClient.isLoopbackHost(host) {
            throw ConfigurationError("publicBaseURL uses plain http on \(host): issuers must be https outside loopback")
        }
        guard scheme == "http" || scheme == "https" else { throw ConfigurationError("publicBaseURL must be http(s)") }
        if publicBaseURL.hasSuffix("/") { throw ConfigurationError("publicBaseURL must not end with '/'") }
        if (tlsCertificateFile == nil) != (tlsPrivateKeyFile == nil) {
            throw ConfigurationError("TLS needs both a certificate file and a private key file")
        }
    }

    /// Whether browser cookies must carry `Secure` (everywhere except a loopback http deployment).
    public var secureCookies: Bool { !publicBaseURL.hasPrefix("http://") }

    public func issuer(for pool: PoolID) -> String { "\(publicBaseURL)/\(pool.rawValue)" }

    /// The master key: from `GATEHOUSE_MASTER_KEY`, else from `masterKeyFile`. With
    /// `createIfMissing` (the embedded dev default) a missing file is created with mode 0600.
    public func loadMasterKey(environment: [String: String] = ProcessInfo.processInfo.environment, createIfMissing: Bool) throws -> MasterKey {
        if let inline = environment["GATEHOUSE_MASTER_KEY"], !inline.isEmpty { return try MasterKey(base64: inline) }
        let path = masterKeyFile ?? (URL(fileURLWithPath: sqlitePath).deletingLastPathComponent().appendingPathComponent("master.key").path)
        if let data = FileManager.default.contents(atPath: path) {
            return try MasterKey(base64: String(decoding: data, as: UTF8.self))
        }
        guard createIfMissing else { throw ConfigurationError("no master key: set GATEHOUSE_MASTER_KEY or GATEHOUSE_MASTER_KEY_FILE (missing \(path))") }
        try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path, withIntermediateDirectories: true)
        let fresh = MasterKey.generateBase64()
        guard FileManager.default.createFile(atPath: path, contents: Data((fresh + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            throw ConfigurationError("cannot write a new master key to \(path)")
        }
        return try MasterKey(base64: fresh)
    }
}
