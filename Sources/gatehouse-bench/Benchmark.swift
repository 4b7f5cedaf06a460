import Foundation
import AsyncHTTPClient
import NIOCore
import Logging
import GatehouseCore
import GatehouseJOSE
import GatehouseIssuer
import GatehouseOIDC
import GatehouseDirectory
import GatehouseServer
import GatehouseTestSupport

/// Prints Gatehouse's figures: token minting, upstream ID token verification, one in-process token
/// exchange, and complete logins over HTTP on SQLite. Build with `-c release`.
@main
struct Benchmark {
    /// `gatehouse-bench [mint|verify|exchange|login|mapping|users|saml|saml-login|saml-memory]` runs one section;
    /// no argument runs them all but `saml-memory` (a million validations, minutes long).
    static let only = CommandLine.arguments.dropFirst().first
    static func wanted(_ section: String) -> Bool { only == nil || only == section }

    static func measure(_ name: String, seconds: Double = 2, _ body: @Sendable () async throws -> Void) async rethrows {
        let clock = ContinuousClock()
        let warmUp = clock.now
        while clock.now - warmUp < .milliseconds(500) { try await body() }  // warm-up: caches, branch predictors, CPU clock
        var count = 0
        let start = clock.now
        let budget = Duration.milliseconds(Int64(seconds * 1000))
        while clock.now - start < budget {
            for _ in 0..<20 { try await body() }
            count += 20
        }
        let elapsed = clock.now - start
        let s = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print(String(format: "%-52@ %10.0f /s   (%.1f µs each)", name as NSString, Double(count) / s, s / Double(count) * 1e6))
    }

    static func main() async throws {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        print("Gatehouse benchmark: \(cores) cores, \(ProcessInfo.processInfo.operatingSystemVersionString)")
        print("single-task figures are per core\n")
        let pool = try PoolID("bench")
        let now = Date()

        // Minting.
        for alg in [SigningAlgorithm.es256, .rs256] where wanted("mint") {
            let ring = SigningKeyRing(store: MemorySigningKeyStore(), masterKey: try MasterKey(base64: MasterKey.generateBase64()), clock: SystemClock())
            try await ring.ensureKey(pool: pool, algorithm: alg)
            let minter = TokenMinter(keyRing: ring)
            let client = AppClient(poolID: pool, clientID: "web", name: "Web", secretHash: nil, redirectURIs: ["https://a.example/cb"], createdAt: now)
            let user = User(poolID: pool, id: UUID().uuidString, username: "Okta_00u1", attributes: ["email": "ada@example.com", "email_verified": "true", "name": "Ada Lovelace", "given_name": "Ada", "family_name": "Lovelace"], createdAt: now, updatedAt: now)
            let link = LinkedIdentity(poolID: pool, providerName: "Okta", providerKind: .oidc, upstreamIssuer: "https://okta.example", upstreamSubject: "00u1", userID: user.id, createdAt: now)
            let request = TokenRequest(issuer: "https://gh.example/bench", pool: pool, client: client, user: user, groups: ["staff"], identities: [link], scope: ["openid", "email", "profile"], nonce: "n", authTime: now, familyID: "fam", now: now)
            try await measure("mint ID + access token pair (\(alg.rawValue))") { _ = try await minter.mint(request) }
            let (kid, key) = try await ring.currentSigner(pool: pool)
            let payload = Data(JSONValue.serialize(object: ["iss": .string("https://gh.example/bench"), "sub": .string(user.id), "aud": .string("web"), "exp": .number(Double(now.epochSeconds + 3600)), "iat": .number(Double(now.epochSeconds)), "email": .string("ada@example.com")]).utf8)
            try await measure("mint one ID token (\(alg.rawValue))") { _ = try JWSEncoder.sign(payloadJSON: payload, key: key, kid: kid) }
        }

        // Upstream ID token verification, full policy.
        for alg in [SigningAlgorithm.rs256, .es256] where wanted("verify") {
            let key = try JWSSigningKey.generate(alg)
            let keys = StaticKeySource(JWKSet(keys: [try key.publicJWK(kid: "k1"), try JWSSigningKey.generate(alg).publicJWK(kid: "k2")]))
            let claims: [String: JSONValue] = [
                "iss": .string("https://idp.example"), "sub": .string("00u1"), "aud": .string("gh"), "exp": .number(Double(now.epochSeconds + 300)),
                "iat": .number(Double(now.epochSeconds)), "nonce": .string("n-123"), "email": .string("ada@example.com"), "email_verified": .bool(true),
                "name": .string("Ada Lovelace"), "given_name": .string("Ada"), "family_name": .string("Lovelace"), "auth_time": .number(Double(now.epochSeconds)),
            ]
            let token = try JWSEncoder.sign(payloadJSON: Data(JSONValue.serialize(object: claims).utf8), key: key, kid: "k1")
            let policy = IDTokenPolicy(issuer: "https://idp.example", clientID: "gh", allowedAlgorithms: [alg.rawValue], clockSkew: 60, nonce: "n-123")
            try await measure("verify upstream ID token, full policy (\(alg.rawValue))") { _ = try await IDTokenVerifier.verify(token, keys: keys, policy: policy, now: now) }
            let parsed = try UnverifiedJWS(compact: token)
            let bare = try JWSVerificationKey(jwk: try key.publicJWK(kid: "k1"))
            let jwsAlg = JWSAlgorithm(rawValue: alg.rawValue)!
            try await measure("  parse the compact JWS only (\(alg.rawValue))") { _ = try UnverifiedJWS(compact: token) }
            try await measure("  bare signature check, same token (\(alg.rawValue))") {
                guard jwsAlg.verify(signature: parsed.signature, input: parsed.signingInput, key: bare) else { throw ConfigurationError("bad signature") }
            }
        }

        // One in-process token exchange on SQLite: redeem the code, create the refresh family, mint.
        if wanted("exchange") {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-bench-\(UUID().uuidString)")
        let benchDirectory = try await DirectoryFactory.sqlite(path: folder.appendingPathComponent("bench.sqlite").path)
        try await benchDirectory.migrate()
        let running = try await RunningGatehouse.start(directory: benchDirectory)
        try await running.admin.createPool(name: "bench", displayName: nil)
        let (client, secret) = try await running.admin.createClient(pool: "bench", name: "web", redirectURIs: ["http://127.0.0.1:9/cb"], confidential: true)
        let benchPool = try requireValue(try await running.gatehouse.directory.pool(pool))
        let login = try await running.gatehouse.directory.resolveLogin(identity: LinkedIdentity(poolID: pool, providerName: "Okta", providerKind: .oidc, upstreamIssuer: "https://okta.example", upstreamSubject: "00u1", userID: "", createdAt: now), username: "Okta_00u1", attributes: ["email": "ada@example.com"], now: now)
        try await measure("token exchange in process (SQLite)") {
            let code = Secrets.randomToken()
            try await running.gatehouse.directory.saveAuthorizationCode(AuthorizationCode(codeHash: Secrets.hash(code), poolID: pool, clientID: client.clientID, userID: login.user.id, redirectURI: "http://127.0.0.1:9/cb", scope: ["openid", "email"], nonce: nil, codeChallenge: nil, authTime: now, providerName: "Okta", familyID: Secrets.randomToken(bytes: 16), createdAt: now, expiresAt: now.addingTimeInterval(300)))
            _ = try await running.gatehouse.exchangeCode(form: ["code": code, "redirect_uri": "http://127.0.0.1:9/cb"], pool: benchPool, client: client)
        }
        _ = secret
        await running.stop()
        try await benchDirectory.shutdown()
        }
        if wanted("login") { try await LoginBenchmark.run() }
        if wanted("mapping") { try await MappingBenchmark.run() }
        if wanted("users") { try await UserLookupBenchmark.run() }
        if wanted("saml") { try await SAMLBenchmark.validation() }
        if wanted("saml-login") { try await SAMLBenchmark.login() }
        if only == "saml-memory" { try await SAMLBenchmark.memory() }
    }
}

func requireValue<T>(_ v: T?) throws -> T {
    guard let v else { throw ConfigurationError("missing value") }
    return v
}
