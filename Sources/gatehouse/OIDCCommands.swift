import ArgumentParser
import Foundation
import GatehouseCore
import GatehouseJOSE
import GatehouseOIDC

struct OIDCCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "oidc", abstract: "OpenID Connect tools.", subcommands: [Verify.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify one ID token as the OIDC adapter does; print its claims (exit 0) or every failed check (exit 1).")
        @Option(help: "Expected issuer, exactly.") var issuer: String
        @Option(name: .customLong("client-id"), help: "Expected audience.") var clientID: String
        @Option(help: "JWKS file; without it the keys come from the issuer's discovery document.") var jwks: String?
        @Option(help: "Expected nonce.") var nonce: String?
        @Option(name: .customLong("alg"), help: "Allowed algorithm (repeatable; default RS256).") var algs: [String] = []
        @Option(help: "Verify as of this instant (ISO 8601), to reproduce a past token.") var now: String?
        @Option(name: .customLong("clock-skew"), help: "Allowed clock skew in seconds.") var skew: Int = 60
        @Argument(help: "File holding the token, or - for standard input.") var token: String

        func run() async throws {
            let text = try readArgumentFile(token)
            let instant = try parseNow(now)
            let policy = IDTokenPolicy(issuer: issuer, clientID: clientID, allowedAlgorithms: Set(algs.isEmpty ? ["RS256"] : algs), clockSkew: TimeInterval(skew), nonce: nonce)
            let http = UpstreamHTTP()
            let keys: any VerificationKeySource
            do {
                if let jwks {
                    guard let data = FileManager.default.contents(atPath: jwks), let set = try? JSONDecoder().decode(JWKSet.self, from: data) else {
                        throw ValidationError("\(jwks) is not a readable JWKS")
                    }
                    keys = StaticKeySource(set)
                } else {
                    let doc = try await DiscoveryDocument.fetch(issuer: issuer, http: http)
                    keys = JWKSCache(jwksURI: doc.jwksURI, http: http, clock: SystemClock())
                }
            } catch {
                try? await http.shutdown()
                throw error
            }
            let report = await IDTokenCheck.run(token: text, keys: keys, policy: policy, now: instant)
            try? await http.shutdown()
            print(report.text)
            if !report.verified { throw ExitCode(1) }
        }
    }
}

/// The text of a file named on the command line, or of standard input for `-`.
func readArgumentFile(_ path: String) throws -> String {
    if path == "-" { return String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self) }
    guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
    return String(decoding: data, as: UTF8.self)
}

/// `--now` (ISO 8601), or the current time.
func parseNow(_ text: String?) throws -> Date {
    guard let text else { return Date() }
    guard let d = IDTokenCheck.parseInstant(text) else { throw ValidationError("--now must be ISO 8601, e.g. 2026-01-31T12:00:00Z") }
    return d
}
