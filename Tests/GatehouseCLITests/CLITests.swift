import Foundation
import Testing
import GatehouseCore
import GatehouseJOSE
import GatehouseTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Runs the real `gatehouse` binary, as an admin would, against a SQLite file in a temporary folder.
@Suite struct CLITests {
    static var binary: URL {
        let here = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).deletingLastPathComponent()
        for candidate in [here.appendingPathComponent("gatehouse"), here.deletingLastPathComponent().appendingPathComponent("gatehouse")]
        where FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".build/debug/gatehouse")
    }

    struct Run {
        let status: Int32
        let output: String
    }

    static func run(_ arguments: [String], environment: [String: String] = [:], stdin: String? = nil) throws -> Run {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "GATEHOUSE_DATABASE_URL")
        env.removeValue(forKey: "GATEHOUSE_MASTER_KEY")
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        let input = Pipe()
        process.standardInput = input
        try process.run()
        // A hung binary must not hang the suite.
        DispatchQueue.global().asyncAfter(deadline: .now() + 120) { if process.isRunning { process.terminate() } }
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    @Test func adminCommandsWorkOnTheEmbeddedDefault() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("gh-cli-\(UUID().uuidString)")
        let env = ["GATEHOUSE_SQLITE_PATH": folder.appendingPathComponent("g.sqlite").path]
        let pool = try Self.run(["pool", "create", "demo", "--alg", "RS256"], environment: env)
        #expect(pool.status == 0, "\(pool.output)")
        #expect(pool.output.contains("Issuer: http://127.0.0.1:8080/demo"))
        #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("master.key").path))

        let client = try Self.run(["client", "create", "--pool", "demo", "--name", "app", "--redirect-uri", "https://app.example/cb"], environment: env)
        #expect(client.status == 0, "\(client.output)")
        #expect(client.output.contains("client_secret: "))
        let badClient = try Self.run(["client", "create", "--pool", "demo", "--name", "app", "--redirect-uri", "http://app.example/cb"], environment: env)
        #expect(badClient.status != 0)
        #expect(badClient.output.contains("loopback"))

        let provider = try Self.run(["provider", "add-oidc", "--pool", "demo", "--name", "Okta", "--issuer", "https://acme.okta.example", "--client-id", "gh", "--client-secret-env", "OKTA_SECRET", "--map", "email=mail"], environment: env.merging(["OKTA_SECRET": "s3cret-value"]) { $1 })
        #expect(provider.status == 0, "\(provider.output)")
        #expect(provider.output.contains("/demo/oauth2/idpresponse"))
        let listed = try Self.run(["provider", "list", "--pool", "demo"], environment: env)
        #expect(listed.output.contains("\"mail\""))
        #expect(listed.output.contains("(sealed)"))
        #expect(!listed.output.contains("s3cret-value"))
        let sqlite = try Data(contentsOf: folder.appendingPathComponent("g.sqlite"))
        let wal = (try? Data(contentsOf: folder.appendingPathComponent("g.sqlite-wal"))) ?? Data()
        #expect(sqlite.range(of: Data("s3cret-value".utf8)) == nil && wal.range(of: Data("s3cret-value".utf8)) == nil, "the upstream secret is sealed at rest")

        let rotate = try Self.run(["keys", "rotate", "--pool", "demo", "--activate-after", "600"], environment: env)
        #expect(rotate.status == 0, "\(rotate.output)")
        let keys = try Self.run(["keys", "list", "--pool", "demo"], environment: env)
        #expect(keys.output.components(separatedBy: "\"kid\"").count == 3)
        #expect(!keys.output.contains("PRIVATE"))

        let users = try Self.run(["user", "list", "--pool", "demo"], environment: env)
        #expect(users.status == 0)
        #expect(users.output.trimmingCharacters(in: .whitespacesAndNewlines) == "[\n\n]" || users.output.contains("[]"))
    }

    @Test func mappingCommandsCheckSavePreviewAndRollBack() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("gh-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let env = ["GATEHOUSE_SQLITE_PATH": folder.appendingPathComponent("g.sqlite").path]
        func file(_ name: String, _ text: String) throws -> String {
            let url = folder.appendingPathComponent(name)
            try Data(text.utf8).write(to: url)
            return url.path
        }
        #expect(try Self.run(["pool", "create", "demo"], environment: env).status == 0)
        let declared = try Self.run(["pool", "add-attribute", "--pool", "demo", "--name", "dept"], environment: env)
        #expect(declared.status == 0, "\(declared.output)")
        #expect(declared.output.contains("custom:dept"))
        let initial = try file("initial.json", #"{"email": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"}"#)
        let added = try Self.run(["provider", "add-oidc", "--pool", "demo", "--name", "Okta", "--issuer", "https://acme.okta.example", "--client-id", "gh", "--client-auth", "none", "--mapping-file", initial], environment: env)
        #expect(added.status == 0, "\(added.output)")

        let broken = try file("broken.json", #"{"name": {"expression": "lower(given_name"}}"#)
        let refused = try Self.run(["mapping", "set", "--pool", "demo", "--provider", "Okta", "--file", broken], environment: env)
        #expect(refused.status != 0)
        #expect(refused.output.contains("rule 'name', at 17: expected ')'"), "\(refused.output)")

        let better = try file("better.json", #"{"email": {"expression": "mail | lower"}, "custom:dept": {"expression": "first(department, 'none')", "update": "first_login"}}"#)
        let saved = try Self.run(["mapping", "set", "--pool", "demo", "--provider", "Okta", "--file", better, "--note", "lowercase mail"], environment: env)
        #expect(saved.status == 0, "\(saved.output)")
        #expect(saved.output.contains("Saved version 2"))

        let attributes = try file("login.json", #"{"mail": "Ada@Example.com", "department": ["R&D"]}"#)
        let preview = try Self.run(["mapping", "preview", "--pool", "demo", "--provider", "Okta", "--attributes", attributes], environment: env)
        #expect(preview.status == 0, "\(preview.output)")
        #expect(preview.output.contains(#""email" : "ada@example.com""#), "\(preview.output)")
        #expect(preview.output.contains(#""custom:dept" : "R&D""#))

        let versions = try Self.run(["mapping", "versions", "--pool", "demo", "--provider", "Okta"], environment: env)
        #expect(versions.output.contains("lowercase mail") && versions.output.contains(#""version" : 1"#))
        let rolled = try Self.run(["mapping", "rollback", "--pool", "demo", "--provider", "Okta", "--version", "1"], environment: env)
        #expect(rolled.status == 0 && rolled.output.contains("as version 3"), "\(rolled.output)")
        let shown = try Self.run(["mapping", "show", "--pool", "demo", "--provider", "Okta"], environment: env)
        #expect(shown.output.contains("emailaddress") && !shown.output.contains("lower"), "\(shown.output)")
    }

    @Test func linkingCommandsProvisionLinkUnlinkAndAudit() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("gh-cli-\(UUID().uuidString)")
        let env = ["GATEHOUSE_SQLITE_PATH": folder.appendingPathComponent("g.sqlite").path, "USER": "alice"]
        #expect(try Self.run(["pool", "create", "demo"], environment: env).status == 0)
        for (name, issuer) in [("Corp", "https://corp.example"), ("Google", "https://accounts.google.com")] {
            let added = try Self.run(["provider", "add-oidc", "--pool", "demo", "--name", name, "--issuer", issuer, "--client-id", "gh", "--client-auth", "none"], environment: env)
            #expect(added.status == 0, "\(added.output)")
        }
        let created = try Self.run(["user", "create", "--pool", "demo", "--provider", "Corp", "--subject", "ada", "--attribute", "email=Ada@Example.com"], environment: env)
        #expect(created.status == 0, "\(created.output)")
        let userID = try #require(created.output.split(separator: " ").dropFirst(2).first.map(String.init))
        let found = try Self.run(["user", "find", "--pool", "demo", "--email", "ada@example.com"], environment: env)
        #expect(found.output.contains(userID))
        let linked = try Self.run(["user", "link", "--pool", "demo", "--user", userID, "--provider", "Google", "--subject", "g-1"], environment: env)
        #expect(linked.status == 0 && linked.output.contains("Linked."), "\(linked.output)")
        let byIdentity = try Self.run(["user", "find", "--pool", "demo", "--provider", "Google", "--subject", "g-1"], environment: env)
        #expect(byIdentity.output.contains(userID))
        let lastRefused = try Self.run(["user", "unlink", "--pool", "demo", "--provider", "Google", "--subject", "g-1"], environment: env)
        #expect(lastRefused.status == 0, "\(lastRefused.output)")
        let refused = try Self.run(["user", "unlink", "--pool", "demo", "--provider", "Corp", "--subject", "ada"], environment: env)
        #expect(refused.status != 0 && refused.output.contains("last linked identity"), "\(refused.output)")
        let policy = try Self.run(["provider", "set-linking", "--pool", "demo", "--provider", "Google", "--policy", "verified_email", "--trust-email"], environment: env)
        #expect(policy.status == 0, "\(policy.output)")
        #expect(try Self.run(["provider", "set-linking", "--pool", "demo", "--provider", "Google", "--policy", "sometimes"], environment: env).status != 0)

        let audit = try Self.run(["audit", "export", "--pool", "demo"], environment: env)
        let lines = audit.output.split(separator: "\n")
        #expect(lines.allSatisfy { $0.contains(#""actor":"cli:alice""#) }, "\(audit.output)")
        let actions = lines.compactMap { line in line.range(of: #""action":"[a-z._]+""#, options: .regularExpression).map { String(line[$0].dropFirst(10).dropLast()) } }
        #expect(actions == ["pool.created", "provider.created", "provider.created", "user.created", "link.created", "link.removed", "provider.linking"], "\(actions)")
        let credential = try Self.run(["admin-credential", "create", "--name", "ops", "--pool", "demo"], environment: env)
        #expect(credential.status == 0 && credential.output.contains("gha_"), "\(credential.output)")
        let secret = try #require(credential.output.split(separator: " ").first { $0.hasPrefix("gha_") })
        let credentials = try Self.run(["admin-credential", "list"], environment: env)
        #expect(credentials.output.contains(#""name" : "ops""#) && !credentials.output.contains(secret))
        #expect(try Self.run(["admin-credential", "revoke", "--name", "ops"], environment: env).status == 0)
        let credentialActions = try Self.run(["audit", "export", "--pool", "demo"], environment: env).output.split(separator: "\n").dropFirst(lines.count)
        #expect(credentialActions.count == 2 && credentialActions.allSatisfy { $0.contains(#""target":"credential:ops""#) && !$0.contains(secret) }, "\(credentialActions)")
        #expect(credentialActions.first?.contains(#""action":"admin_credential.created""#) == true && credentialActions.last?.contains(#""action":"admin_credential.revoked""#) == true)
        let onlyRemovals = try Self.run(["audit", "export", "--pool", "demo", "--action", "link.removed"], environment: env)
        #expect(onlyRemovals.output.split(separator: "\n").count == 1)
    }

    @Test func serveStartsOnTheEmbeddedDefaultAndStopsGracefullyOnSIGTERM() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("gh-serve-\(UUID().uuidString)")
        let port = try LoopbackPort.pick()
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = ["serve"]
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "GATEHOUSE_DATABASE_URL")
        env.removeValue(forKey: "GATEHOUSE_MASTER_KEY")
        env["GATEHOUSE_SQLITE_PATH"] = folder.appendingPathComponent("g.sqlite").path
        env["GATEHOUSE_PORT"] = String(port)
        env["GATEHOUSE_PUBLIC_URL"] = "http://127.0.0.1:\(port)"
        process.environment = env
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        do {
            try await LoopbackPort.waitUntilListening(port)
        } catch {
            process.terminate()
            throw error
        }
        kill(process.processIdentifier, SIGTERM)
        for _ in 0..<200 where process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning { process.terminate() }
        #expect(!process.isRunning)
        process.waitUntilExit()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0, "\(output)")
        #expect(output.contains("Gatehouse is listening on http://127.0.0.1:\(port)"))
        #expect(output.contains("No pool yet"))
        #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("master.key").path))
    }

    @Test func oidcVerifyPrintsClaimsOrEveryFailedCheck() throws {
        let key = try JWSSigningKey.generate(.rs256)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("gh-verify-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let jwks = folder.appendingPathComponent("jwks.json")
        try JSONEncoder().encode(JWKSet(keys: [try key.publicJWK(kid: "k1")])).write(to: jwks)
        let claims: [String: JSONValue] = ["iss": .string("https://idp.example"), "sub": .string("u1"), "aud": .string("gh"), "iat": .number(1_700_000_000), "exp": .number(1_700_000_300), "nonce": .string("n")]
        let token = try JWSEncoder.sign(payloadJSON: Data(JSONValue.serialize(object: claims).utf8), key: key, kid: "k1")
        let tokenFile = folder.appendingPathComponent("token.txt")
        try Data(token.utf8).write(to: tokenFile)

        let ok = try Self.run(["oidc", "verify", "--issuer", "https://idp.example", "--client-id", "gh", "--jwks", jwks.path, "--nonce", "n", "--now", "2023-11-14T22:15:00Z", tokenFile.path])
        #expect(ok.status == 0, "\(ok.output)")
        #expect(ok.output.contains("\"sub\" : \"u1\""))

        let bad = try Self.run(["oidc", "verify", "--issuer", "https://other.example", "--client-id", "gh", "--jwks", jwks.path, "--nonce", "x", "-"], stdin: token)
        #expect(bad.status == 1)
        #expect(bad.output.contains("FAILED iss"))
        #expect(bad.output.contains("FAILED nonce"))
        #expect(bad.output.contains("FAILED exp"))
    }

    /// `run` off the cooperative threads, for async tests whose loopback servers need them.
    static func runAsync(_ arguments: [String], environment: [String: String] = [:]) async throws -> Run {
        try await withCheckedThrowingContinuation { c in
            DispatchQueue.global().async { c.resume(with: Result { try Self.run(arguments, environment: environment) }) }
        }
    }

    /// `oidc verify --provider`, again if the loopback provider could not answer in time: it runs on
    /// this test process's two cooperative threads, which CPU-bound suites running beside it can
    /// hold for seconds. A verdict is never retried, only an unreachable provider.
    static func checkProvider(_ name: String, environment: [String: String]) async throws -> Run {
        var run = try await runAsync(["oidc", "verify", "--pool", "demo", "--provider", name], environment: environment)
        for _ in 0..<3 where run.output.contains(": unreachable: ") {
            run = try await runAsync(["oidc", "verify", "--pool", "demo", "--provider", name], environment: environment)
        }
        return run
    }

    @Test func presetsAreAddedAndCheckedAgainstTheLiveProvider() async throws {
        let op = try TestOpenIDProvider()
        try await op.start()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("gh-check-\(UUID().uuidString)")
        let env = ["GATEHOUSE_SQLITE_PATH": folder.appendingPathComponent("g.sqlite").path, "GOOD": op.clientSecret, "BAD": "not-the-secret"]
        do {
            #expect(try await Self.runAsync(["pool", "create", "demo"], environment: env).status == 0)
            for (name, variable) in [("Good", "GOOD"), ("Bad", "BAD")] {
                let added = try await Self.runAsync(["provider", "add-oidc", "--pool", "demo", "--name", name, "--issuer", op.issuer, "--client-id", op.clientID, "--client-secret-env", variable], environment: env)
                #expect(added.status == 0 && added.output.contains("oidc verify --pool demo --provider \(name)"), "\(added.output)")
            }
            let good = try await Self.checkProvider("Good", environment: env)
            #expect(good.status == 0, "\(good.output)")
            #expect(good.output.contains("ok   discovery") && good.output.contains("ok   jwks") && good.output.contains("ok   credentials"))
            let bad = try await Self.checkProvider("Bad", environment: env)
            #expect(bad.status == 1)
            #expect(bad.output.contains("FAIL credentials: the provider refused the client's credentials") && bad.output.contains("invalid_client"), "\(bad.output)")

            // A discovery document naming another issuer: the exact cause.
            op.update { $0.discoveryIssuer = "https://elsewhere.example" }
            let mismatch = try await Self.checkProvider("Good", environment: env)
            #expect(mismatch.status == 1 && mismatch.output.contains("FAIL discovery: misconfigured: discovery issuer https://elsewhere.example differs from the configured \(op.issuer)"), "\(mismatch.output)")

            // Presets: Apple needs its key; private_key_jwt gets a key made and published.
            let apple = try await Self.runAsync(["provider", "add-oidc", "--pool", "demo", "--name", "Apple", "--preset", "apple", "--client-id", "com.example.web"], environment: env)
            #expect(apple.status != 0 && apple.output.contains("team ID"), "\(apple.output)")
            let keyed = try await Self.runAsync(["provider", "add-oidc", "--pool", "demo", "--name", "Keyed", "--issuer", op.issuer, "--client-id", op.clientID, "--client-auth", "private_key_jwt"], environment: env)
            #expect(keyed.status == 0 && keyed.output.contains("/demo/providers/Keyed/jwks.json"), "\(keyed.output)")
            let github = try await Self.runAsync(["provider", "add-oidc", "--pool", "demo", "--name", "GitHub", "--preset", "github", "--client-id", "Iv1.abc", "--client-secret-env", "GOOD"], environment: env)
            #expect(github.status == 0, "\(github.output)")
            let listed = try await Self.runAsync(["provider", "list", "--pool", "demo"], environment: env)
            #expect(listed.output.contains("https://api.github.com/user/emails") && !listed.output.contains(op.clientSecret))
        } catch {
            await op.stop()
            throw error
        }
        await op.stop()
    }

    static let samlFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("GatehouseSAMLTests/Fixtures")

    @Test func samlVerifyPrintsTheIdentityOrEveryFailedCheck() throws {
        let f = Self.samlFixtures
        let common = ["saml", "verify", "--idp-metadata", f.appendingPathComponent("idp-metadata.xml").path,
                      "--sp-entity-id", "https://gatehouse.example.test/acme/saml2/sp/corp",
                      "--acs-url", "https://gatehouse.example.test/acme/saml2/acs", "--now", "2026-11-22T10:00:00Z"]
        // The base64 form value, as the ACS receives it.
        let ok = try Self.run(common + ["--request-id", "_req4f1e6a0c9b2d4e7f8a1b3c5d", f.appendingPathComponent("valid-assertion-signed-rsa.b64").path])
        #expect(ok.status == 0, "\(ok.output)")
        #expect(ok.output.contains("\"nameID\":\"alice@corp.example.test\""))
        #expect(ok.output.contains("\"authnContextClassRef\""))
        // Raw XML on standard input, checked against the wrong request and a later clock: every failure named.
        let xml = try String(contentsOf: f.appendingPathComponent("responses/valid-assertion-signed-rsa.xml"), encoding: .utf8)
        var late = common
        late[late.count - 1] = "2026-11-22T11:00:00Z"
        let bad = try Self.run(late + ["--request-id", "_other", "-"], stdin: xml)
        #expect(bad.status == 1)
        #expect(bad.output.contains("\"check\":\"in_response_to\""))
        #expect(bad.output.contains("\"check\":\"time\""))
        // An encrypted assertion needs the SP key.
        let encrypted = f.appendingPathComponent("responses/valid-encrypted-aes256-cbc.xml").path
        let noKey = try Self.run(common + ["--request-id", "_req4f1e6a0c9b2d4e7f8a1b3c5d", encrypted])
        #expect(noKey.status == 1)
        #expect(noKey.output.contains("\"check\":\"encryption\""))
        let withKey = try Self.run(common + ["--request-id", "_req4f1e6a0c9b2d4e7f8a1b3c5d", "--sp-key", f.appendingPathComponent("sp.key").path,
                                             "--sp-cert", f.appendingPathComponent("sp.crt").path, encrypted])
        #expect(withKey.status == 0, "\(withKey.output)")
        #expect(withKey.output.contains("\"encrypted\":true"))
    }

    @Test func providerAddSAMLImportsMetadataAndPrintsWhatToRegister() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("gh-cli-saml-\(UUID().uuidString)")
        let env = ["GATEHOUSE_SQLITE_PATH": folder.appendingPathComponent("g.sqlite").path]
        #expect(try Self.run(["pool", "create", "demo"], environment: env).status == 0)
        let metadata = Self.samlFixtures.appendingPathComponent("idp-metadata.xml").path
        let added = try Self.run(["provider", "add-saml", "--pool", "demo", "--name", "Corp", "--metadata-file", metadata,
                                  "--map", "email=http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"], environment: env)
        #expect(added.status == 0, "\(added.output)")
        #expect(added.output.contains("SP entity ID:  http://127.0.0.1:8080/demo/saml2/sp/Corp"))
        #expect(added.output.contains("ACS (POST):    http://127.0.0.1:8080/demo/saml2/acs/Corp"))
        let listed = try Self.run(["provider", "list", "--pool", "demo"], environment: env)
        #expect(listed.output.contains("https://idp.example.test/saml"))
        #expect(listed.output.contains("(sealed)"))
        #expect(!listed.output.contains("PRIVATE KEY"))
        // Metadata whose signature must verify against a pinned certificate it was not signed with.
        let pinnedWrong = try Self.run(["provider", "add-saml", "--pool", "demo", "--name", "Corp2", "--metadata-file",
                                        Self.samlFixtures.appendingPathComponent("idp-metadata-signed.xml").path,
                                        "--metadata-cert", Self.samlFixtures.appendingPathComponent("attacker.crt").path], environment: env)
        #expect(pinnedWrong.status != 0)
        #expect(pinnedWrong.output.contains("signature"))
        let pinnedRight = try Self.run(["provider", "add-saml", "--pool", "demo", "--name", "Corp3", "--metadata-file",
                                        Self.samlFixtures.appendingPathComponent("idp-metadata-signed.xml").path,
                                        "--metadata-cert", Self.samlFixtures.appendingPathComponent("idp-rsa.crt").path], environment: env)
        #expect(pinnedRight.status == 0, "\(pinnedRight.output)")
    }
}
