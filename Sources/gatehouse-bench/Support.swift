import Foundation
import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import GatehouseCore
import GatehouseOIDC
import GatehouseDirectory
import GatehouseServer
import GatehouseTestSupport

/// Complete logins over real HTTP on 127.0.0.1 with SQLite: authorize -> loopback OpenID provider ->
/// callback -> token, several in flight at once. The figure covers the whole machine (both cores are
/// shared by Gatehouse, the test provider and the client).
enum LoginBenchmark {
    static func run() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-bench-\(UUID().uuidString)")
        let directory = try await DirectoryFactory.sqlite(path: folder.appendingPathComponent("login.sqlite").path)
        try await directory.migrate()
        // The stand-in provider signs with ES256 so that its own RSA signing (about 1 ms a token)
        // does not dominate a figure meant to describe Gatehouse.
        let op = try TestOpenIDProvider(algorithm: .es256)
        try await op.start()
        let running = try await RunningGatehouse.start(directory: directory)
        try await running.admin.createPool(name: "bench", displayName: nil)
        let redirect = "http://127.0.0.1:9/cb"
        let (client, secret) = try await running.admin.createClient(pool: "bench", name: "web", redirectURIs: [redirect], confidential: true)
        try await running.admin.createOIDCProvider(pool: "bench", name: "OP", settings: OIDCProviderSettings(issuer: op.issuer, clientID: op.clientID, allowedAlgorithms: ["ES256"]), clientSecret: op.clientSecret)
        let issuer = running.baseURL + "/bench"
        var config = HTTPClient.Configuration()
        config.redirectConfiguration = .disallow
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)

        @Sendable func get(_ url: String, cookie: String? = nil) async throws -> (String?, String?) {
            var r = HTTPClientRequest(url: url)
            if let cookie { r.headers.add(name: "Cookie", value: cookie) }
            let resp = try await http.execute(r, timeout: .seconds(10))
            _ = try await resp.body.collect(upTo: 1 << 20)
            return (resp.headers.first(name: "Location"), resp.headers.first(name: "Set-Cookie").map { String($0.split(separator: ";")[0]) })
        }
        @Sendable func oneLogin(user: Int) async throws {
            let q = FormEncoding.encode([("response_type", "code"), ("client_id", client.clientID), ("redirect_uri", redirect), ("scope", "openid email"), ("state", "s"), ("identity_provider", "OP")])
            let (upstream, cookie) = try await get(issuer + "/oauth2/authorize?" + q)
            let (callback, _) = try await get(upstream!)
            let (back, _) = try await get(callback!, cookie: cookie)
            let code = FormEncoding.decode(URLComponents(string: back!)!.percentEncodedQuery!)!["code"]!
            try await redeem(http, issuer: issuer, clientID: client.clientID, secret: secret!, code: code, redirectURI: redirect)
        }

        for _ in 0..<20 { try await oneLogin(user: 0) }
        let clock = ContinuousClock()
        let start = clock.now
        let concurrency = 8
        let total = 2000
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<concurrency {
                group.addTask { for i in 0..<(total / concurrency) { try await oneLogin(user: worker * 100_000 + i) } }
            }
            try await group.waitForAll()
        }
        let elapsed = clock.now - start
        let s = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print(String(format: "%-52@ %10.0f /s   (whole machine, %d in flight)", "complete logins over HTTP (SQLite)" as NSString, Double(total) / s, concurrency))
        try await http.shutdown()
        await running.stop()
        await op.stop()
        try await directory.shutdown()
        try? FileManager.default.removeItem(at: folder)
    }
}

/// Redeems an authorization code at the token endpoint with client_secret_basic; throws unless 200.
func redeem(_ http: HTTPClient, issuer: String, clientID: String, secret: String, code: String, redirectURI: String) async throws {
    var t = HTTPClientRequest(url: issuer + "/oauth2/token")
    t.method = .POST
    t.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
    t.headers.add(name: "Authorization", value: "Basic " + Data("\(clientID):\(secret)".utf8).base64EncodedString())
    t.body = .bytes(ByteBuffer(string: FormEncoding.encode([("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI)])))
    let resp = try await http.execute(t, timeout: .seconds(10))
    _ = try await resp.body.collect(upTo: 1 << 20)
    guard resp.status == .ok else { throw ConfigurationError("token endpoint answered \(resp.status)") }
}
