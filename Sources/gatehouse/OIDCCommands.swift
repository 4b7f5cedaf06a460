import ArgumentParser
import Foundation
import GatehouseCore
import GatehouseJOSE
import GatehouseOIDC
import GatehouseServer

struct OIDCCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "oidc", abstract: "OpenID Connect tools.", subcommands: [Verify.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a configured provider against the live upstream, and/or verify one ID token as the adapter does.",
            discussion: """
                With --pool and --provider: checks discovery, algorithms, JWKS, response mode, client authentication and \
                the client's credentials at the upstream, printing one line per check (FAIL lines name the exact cause); \
                a token given as well is verified with that provider's policy.
                Without them: verifies the token against --issuer and --client-id.
                Exit 0 when everything passed, 1 otherwise.
                """)
        @OptionGroup var common: CommonOptions
        @Option(help: "Pool of the provider to check.") var pool: String?
        @Option(help: "Provider to check (with --pool).") var provider: String?
        @Option(help: "Expected issuer, exactly.") var issuer: String?
        @Option(name: .customLong("client-id"), help: "Expected audience.") var clientID: String?
        @Option(help: "JWKS file; without it the keys come from the issuer's discovery document.") var jwks: String?
        @Option(help: "Expected nonce.") var nonce: String?
        @Option(name: .customLong("alg"), help: "Allowed algorithm (repeatable; default RS256).") var algs: [String] = []
        @Option(help: "Verify as of this instant (ISO 8601), to reproduce a past token.") var now: String?
        @Option(name: .customLong("clock-skew"), help: "Allowed clock skew in seconds.") var skew: Int = 60
        @Argument(help: "File holding the token, or - for standard input.") var token: String?

        func run() async throws {
            let instant = try parseNow(now)
            if let pool, let provider {
                try await checkProvider(pool: pool, name: provider, instant: instant)
                return
            }
            guard let issuer, let clientID, let token else {
                throw ValidationError("give --pool and --provider, or --issuer, --client-id and a token")
            }
            let text = try readArgumentFile(token)
            let settings = OIDCProviderSettings(issuer: issuer, clientID: clientID, allowedAlgorithms: algs.isEmpty ? ["RS256"] : algs, clockSkewSeconds: skew)
            let policy = IDTokenPolicy(issuer: issuer, clientID: clientID, allowedAlgorithms: Set(settings.allowedAlgorithms), clockSkew: TimeInterval(skew), nonce: nonce)
            let http = UpstreamHTTP()
            let keys: any VerificationKeySource
            do {
                if let jwks {
                    guard let data = FileManager.default.contents(atPath: jwks), let set = try? JSONDecoder().decode(JWKSet.self, from: data) else {
                        throw ValidationError("\(jwks) is not a readable JWKS")
                    }
                    keys = StaticKeySource(set)
                } else {
                    let doc = try await DiscoveryDocument.fetch(settings: settings, http: http)
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

        func checkProvider(pool: String, name: String, instant: Date) async throws {
            var failed = false
            try await withEnvironment(common) { env in
                let poolID = try PoolID(pool)
                guard let provider = try await env.gatehouse.directory.provider(pool: poolID, name: name), let settings = provider.oidc else {
                    throw ValidationError("no OIDC provider \(name) in pool \(pool)")
                }
                let secret = try env.admin.openedClientSecret(of: provider)
                let http = env.http
                let findings = await ProviderCheck.run(
                    settings: settings, secret: secret, callbackURL: env.configuration.issuer(for: poolID) + "/oauth2/idpresponse", http: http, now: instant)
                for f in findings { print(f) }
                failed = findings.contains { $0.status == .failed }
                if let token, !settings.isOAuthOnly {
                    let adapter = OIDCAdapter(providerName: name, settings: settings, credential: .none, http: http, clock: SystemClock())
                    var policy = adapter.policy(nonce: nonce)
                    policy.clockSkew = TimeInterval(settings.clockSkewSeconds)
                    do {
                        let doc = try await adapter.discovery.current()
                        let report = await IDTokenCheck.run(token: try readArgumentFile(token), keys: adapter.jwks(for: doc), policy: policy, now: instant)
                        print(report.text)
                        failed = failed || !report.verified
                    } catch {
                        print("FAIL token: \(error)")
                        failed = true
                    }
                }
            }
            if failed { throw ExitCode(1) }
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
