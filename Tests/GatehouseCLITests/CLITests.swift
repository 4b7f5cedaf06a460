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
}
