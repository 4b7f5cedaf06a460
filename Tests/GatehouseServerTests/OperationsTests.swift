import Foundation
import Testing
import AsyncHTTPClient
import NIOSSL
import NIOCore
import HTTPTypes
import Hummingbird
import GatehouseCore
@testable import GatehouseServer
import GatehouseTestSupport

@Suite struct OperationsTests {
    static let certificates: (certificate: String, key: String) = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return (root.appendingPathComponent("certs/dev/localhost.crt").path, root.appendingPathComponent("certs/dev/localhost.key").path)
    }()

    @Test func servesTLSFromCertificateFilesWithSecureCookies() async throws {
        let directory = try await TestDatabases.make(.sqlite)
        var running: RunningGatehouse?
        let op = try TestOpenIDProvider()
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(Self.certificates.certificate)
        var config = HTTPClient.Configuration(tlsConfiguration: tls)
        config.redirectConfiguration = .disallow
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
        func cleanUp() async {
            try? await http.shutdown()
            await op.stop()
            await running?.stop()
            await TestDatabases.discard(directory)
        }
        do {
            let gatehouse = try await RunningGatehouse.start(directory: directory, tls: Self.certificates)
            running = gatehouse
            try await op.start()
            try await gatehouse.admin.createPool(name: "acme", displayName: nil)
            let (client, _) = try await gatehouse.admin.createClient(pool: "acme", name: "web", redirectURIs: ["https://app.example/cb"], confidential: true)
            try await gatehouse.admin.createOIDCProvider(pool: "acme", name: "Down", settings: OIDCProviderSettings(issuer: "http://127.0.0.1:1", clientID: "x"), clientSecret: "s")
            try await gatehouse.admin.createOIDCProvider(pool: "acme", name: "Up", settings: OIDCProviderSettings(issuer: op.issuer, clientID: op.clientID), clientSecret: op.clientSecret)

            #expect(gatehouse.baseURL.hasPrefix("https://"))
            let health = try await http.execute(HTTPClientRequest(url: gatehouse.baseURL + "/healthz"), timeout: .seconds(10))
            #expect(health.status == .ok)
            let doc = try await http.execute(HTTPClientRequest(url: gatehouse.baseURL + "/acme/.well-known/openid-configuration"), timeout: .seconds(10))
            let body = try await doc.body.collect(upTo: 1 << 20)
            #expect(String(buffer: body).contains("\"issuer\":\"\(gatehouse.baseURL)/acme\""))

            // On https the binding cookie is __Host-prefixed, Secure, HttpOnly and SameSite=Lax.
            func authorize(_ provider: String) -> String {
                gatehouse.baseURL + "/acme/oauth2/authorize?" + FormEncodingTest.query([("response_type", "code"), ("client_id", client.clientID), ("redirect_uri", "https://app.example/cb"), ("scope", "openid"), ("identity_provider", provider)])
            }
            let start = try await http.execute(HTTPClientRequest(url: authorize("Up")), timeout: .seconds(10))
            #expect(start.status == .found)
            let cookie = try #require(start.headers.first(name: "Set-Cookie"))
            #expect(cookie.hasPrefix("__Host-gatehouse_browser="))
            #expect(cookie.contains("Secure"))
            #expect(cookie.contains("HttpOnly"))
            #expect(cookie.contains("SameSite=Lax"))
            #expect(cookie.contains("Path=/"))

            // An unreachable upstream: the person gets a page whose button takes them to the app's
            // registered URI with temporarily_unavailable.
            let down = try await http.execute(HTTPClientRequest(url: authorize("Down")), timeout: .seconds(30))
            #expect(down.status == .serviceUnavailable)
            let page = String(buffer: try await down.body.collect(upTo: 1 << 20))
            #expect(page.contains("href=\"https://app.example/cb?error=temporarily_unavailable"), "\(page)")
        } catch {
            await cleanUp()
            throw error
        }
        await cleanUp()
    }

    @Test func plainHTTPIssuersAreRefusedOutsideLoopback() throws {
        #expect(throws: ConfigurationError.self) { try ServerConfiguration(publicBaseURL: "http://login.example.com").validate() }
        #expect(throws: ConfigurationError.self) { try ServerConfiguration(publicBaseURL: "https://login.example.com/").validate() }
        #expect(throws: ConfigurationError.self) { try ServerConfiguration(publicBaseURL: "https://login.example.com", tlsCertificateFile: "a.pem").validate() }
        try ServerConfiguration(publicBaseURL: "https://login.example.com").validate()
        try ServerConfiguration(publicBaseURL: "http://127.0.0.1:8080").validate()
        #expect(ServerConfiguration(publicBaseURL: "https://login.example.com").secureCookies)
        #expect(!ServerConfiguration(publicBaseURL: "http://127.0.0.1:8080").secureCookies)
    }

    @Test func configurationComesFromAFileThenTheEnvironment() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("gh-config-\(UUID().uuidString).json")
        try Data(#"{"publicBaseURL": "https://login.example.com", "port": 9000, "trustedProxies": ["10.0.0.1"]}"#.utf8).write(to: file)
        let config = try ServerConfiguration.load(file: file.path, environment: ["GATEHOUSE_PORT": "9443", "GATEHOUSE_DATABASE_URL": "postgres://u@db/x"])
        #expect(config.publicBaseURL == "https://login.example.com")
        #expect(config.port == 9443)
        #expect(config.trustedProxies == ["10.0.0.1"])
        #expect(config.databaseURL == "postgres://u@db/x")
        #expect(throws: ConfigurationError.self) { try ServerConfiguration.load(file: nil, environment: ["GATEHOUSE_PUBLIC_URL": "http://login.example.com"]) }
        #expect(throws: ConfigurationError.self) { try ServerConfiguration.load(file: nil, environment: ["GATEHOUSE_PORT": "http"]) }
    }

    @Test func metricsCanRequireABearerToken() async throws {
        let directory = try await TestDatabases.make(.sqlite)
        let token = "metrics-" + Secrets.randomToken()
        let gatehouse = try await RunningGatehouse.start(directory: directory, metricsToken: token)
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        func status(_ path: String, _ authorization: String?) async throws -> (UInt, String) {
            var request = HTTPClientRequest(url: gatehouse.baseURL + path)
            if let authorization { request.headers.add(name: "Authorization", value: authorization) }
            let response = try await http.execute(request, timeout: .seconds(10))
            return (response.status.code, String(buffer: try await response.body.collect(upTo: 1 << 20)))
        }
        gatehouse.gatehouse.countLogin(provider: "Corp", outcome: "success")
        do {
            let refused = try await status("/metrics", nil)
            #expect(refused.0 == 401 && !refused.1.contains("gatehouse_"))
            #expect(try await status("/metrics", "Bearer wrong").0 == 401)
            #expect(try await status("/metrics", "Basic " + token).0 == 401)
            #expect(try await status("/metrics", "Bearer ").0 == 401)
            #expect(try await status("/metrics", "Bearer " + token + String(repeating: "x", count: 300)).0 == 401, "an overlong header is refused")
            #expect(try await status("/metrics", "bearer " + token).0 == 200, "the scheme is case-insensitive (RFC 7235)")
            let allowed = try await status("/metrics", "Bearer " + token)
            #expect(allowed.0 == 200 && allowed.1.contains(#"gatehouse_logins_total{provider="Corp",outcome="success"} 1"#))
            #expect(try await status("/healthz", nil).0 == 200, "health checks stay open")
        } catch {
            Issue.record(error)
        }
        try? await http.shutdown()
        await gatehouse.stop()
        await TestDatabases.discard(directory)
        // From the environment only: a configuration file's value is not read, a short one refused.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("gh-config-\(UUID().uuidString).json")
        try Data(#"{"metricsToken": "from-the-file-0123456789"}"#.utf8).write(to: file)
        #expect(try ServerConfiguration.load(file: file.path, environment: [:]).metricsToken == nil)
        #expect(try ServerConfiguration.load(file: nil, environment: ["GATEHOUSE_METRICS_TOKEN": token]).metricsToken == token)
        #expect(throws: ConfigurationError.self) { try ServerConfiguration.load(file: nil, environment: ["GATEHOUSE_METRICS_TOKEN": "short"]) }
    }

    @Test func theMasterKeyComesFromTheEnvironmentOrAFileNeverTheDatabase() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("gh-mk-\(UUID().uuidString)")
        let config = ServerConfiguration(sqlitePath: folder.appendingPathComponent("g.sqlite").path)
        #expect(throws: ConfigurationError.self) { try config.loadMasterKey(environment: [:], createIfMissing: false) }
        let created = try config.loadMasterKey(environment: [:], createIfMissing: true)
        let path = folder.appendingPathComponent("master.key").path
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let again = try config.loadMasterKey(environment: [:], createIfMissing: false)
        let sealed = try created.seal(Data("x".utf8), purpose: "p")
        #expect(try again.open(sealed, purpose: "p") == Data("x".utf8))
        let inline = MasterKey.generateBase64()
        let fromEnv = try config.loadMasterKey(environment: ["GATEHOUSE_MASTER_KEY": inline], createIfMissing: false)
        #expect(throws: ConfigurationError.self) { try fromEnv.open(sealed, purpose: "p") }
    }
}

enum FormEncodingTest {
    static func query(_ pairs: [(String, String)]) -> String {
        pairs.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }.joined(separator: "&")
    }
}

@Suite struct ForwardedHeaderTests {
    /// Cookie names are ASCII tokens (RFC 6265 §4.1.1) and are found byte for byte: a hostile
    /// name (a letter and 30,000 combining marks, which Swift's string comparison would take half a
    /// second to sort) is passed over, and the real cookie is found in any header and position.
    @Test func cookiesAreFoundByTheBytesOfTheirNames() {
        func request(_ cookies: [String]) -> Request {
            var fields = HTTPFields()
            for c in cookies { fields.append(HTTPField(name: .cookie, value: c)) }
            return Request(head: HTTPRequest(method: .get, scheme: "http", authority: "127.0.0.1", path: "/", headerFields: fields), body: .init(buffer: ByteBuffer()))
        }
        let hostile = "g" + String(repeating: "\u{301}", count: 30_000) + "=x"
        #expect(request([hostile + "; gatehouse_browser=abc"]).cookie(named: "gatehouse_browser") == "abc")
        #expect(request(["a=1", "b=2;  gatehouse_browser=\"q1\" ; c=3"]).cookie(named: "gatehouse_browser") == "q1")
        #expect(request(["gatehouse_browser=first", "gatehouse_browser=second"]).cookie(named: "gatehouse_browser") == "first")
        #expect(request(["gatehouse_browserx=1; xgatehouse_browser=2; gatehouse_browser"]).cookie(named: "gatehouse_browser") == nil)
        #expect(request([]).cookie(named: "gatehouse_browser") == nil)
        #expect(request(["gatehouse_browser="]).cookie(named: "gatehouse_browser") == "")
        // Spaces around the name and the value are not part of them (RFC 6265 §5.2).
        #expect(request(["a=1; gatehouse_browser =\tv "]).cookie(named: "gatehouse_browser") == "v")
    }

    @Test func credentialsAreReadAfterTheirSchemeInAnyCase() {
        func request(_ authorization: String?) -> Request {
            var fields = HTTPFields()
            if let authorization { fields[.authorization] = authorization }
            return Request(head: HTTPRequest(method: .get, scheme: "http", authority: "127.0.0.1", path: "/", headerFields: fields), body: .init(buffer: ByteBuffer()))
        }
        #expect(request("Bearer abc").credentials(scheme: "bearer ") == "abc")
        #expect(request("bEaReR \t abc ").credentials(scheme: "bearer ") == "abc")
        #expect(request("Basic dXNlcjpwYXNz").credentials(scheme: "basic ") == "dXNlcjpwYXNz")
        for header in [nil, "Bearer", "Bearer ", "Bearerabc", "Basic abc", "Bearer\u{301} abc"] as [String?] {
            #expect(request(header).credentials(scheme: "bearer ") == nil, "\(header ?? "none")")
        }
        #expect(request("Bearer " + String(repeating: "x", count: 300)).bearerCredential(maximumLength: 200) == nil)
        #expect(request("Bearer " + String(repeating: "x", count: 200)).bearerCredential(maximumLength: 200)?.utf8.count == 200)
    }

    @Test func mediaTypesAreComparedAsASCIIBytes() {
        func request(_ type: String?) -> Request {
            var fields = HTTPFields()
            if let type { fields[.contentType] = type }
            return Request(head: HTTPRequest(method: .post, scheme: "http", authority: "127.0.0.1", path: "/", headerFields: fields), body: .init(buffer: ByteBuffer()))
        }
        let form = "application/x-www-form-urlencoded"
        for type in [form, "Application/X-WWW-Form-Urlencoded", " application/x-www-form-urlencoded ; charset=UTF-8", "\tapplication/x-www-form-urlencoded;"] {
            #expect(request(type).hasMediaType("application/x-www-form-urlencoded"), "\(type)")
        }
        for type in [nil, "", "application/x-www-form-urlencodedx", "application/json", "application/x-www-form-urlencode", "a" + String(repeating: "\u{301}", count: 30_000)] {
            #expect(!request(type).hasMediaType("application/x-www-form-urlencoded"), "\(type?.prefix(40) ?? "none")")
        }
    }

    @Test func forwardedForIsBelievedOnlyFromTrustedProxies() {
        #expect(RequestLogMiddleware.clientAddress(peer: "203.0.113.9", forwardedFor: "10.0.0.1", trustedProxies: []) == "203.0.113.9")
        #expect(RequestLogMiddleware.clientAddress(peer: "10.0.0.2", forwardedFor: "1.2.3.4, 198.51.100.7", trustedProxies: ["10.0.0.2"]) == "198.51.100.7")
        #expect(RequestLogMiddleware.clientAddress(peer: "10.0.0.2", forwardedFor: nil, trustedProxies: ["10.0.0.2"]) == "10.0.0.2")
        #expect(RequestLogMiddleware.clientAddress(peer: nil, forwardedFor: "1.2.3.4", trustedProxies: ["10.0.0.2"]) == "-")
        #expect(RequestLogMiddleware.clientAddress(peer: "10.0.0.2", forwardedFor: "1.2.3.4,\t198.51.100.7 ,", trustedProxies: ["10.0.0.2"]) == "198.51.100.7")
        #expect(RequestLogMiddleware.clientAddress(peer: "10.0.0.2", forwardedFor: " , ", trustedProxies: ["10.0.0.2"]) == "10.0.0.2")
        // A blank last entry is not passed over to one the client wrote.
        #expect(RequestLogMiddleware.clientAddress(peer: "10.0.0.2", forwardedFor: "1.2.3.4, ", trustedProxies: ["10.0.0.2"]) == "10.0.0.2")
        // Split as bytes: a client's hostile value passed on by the proxy is only text.
        let hostile = "a" + String(repeating: "\u{301}", count: 30_000)
        #expect(RequestLogMiddleware.clientAddress(peer: "10.0.0.2", forwardedFor: "1.2.3.4, " + hostile, trustedProxies: ["10.0.0.2"]) == hostile)
    }
}
