import ArgumentParser
import Foundation
import GatehouseCore
import GatehouseServer

struct PoolCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pool", abstract: "Manage user pools.", subcommands: [Create.self, List.self, AddAttribute.self])

    struct AddAttribute: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add-attribute", abstract: "Declare a custom attribute (custom:NAME) that mappings may set.")
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        @Option(help: "custom: then 1-32 of A-Z a-z 0-9 _ -") var name: String
        @Option(help: "string (default), number or boolean.") var type: String = "string"
        @Option(name: .customLong("max-length"), help: "Longest string value in bytes (1-2048).") var maximumLength: Int = 2048
        func run() async throws {
            guard let kind = CustomAttribute.Kind(rawValue: type) else { throw ValidationError("--type is string, number or boolean") }
            let attribute = CustomAttribute(name: name.hasPrefix("custom:") ? name : "custom:" + name, type: kind, maximumLength: maximumLength)
            try await withEnvironment(common) { env in
                let p = try await env.admin.declareCustomAttribute(pool: pool, attribute)
                print("Pool \(p.id) declares \(p.customAttributes.map(\.name).joined(separator: ", ")).")
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a pool (and its first signing key).")
        @OptionGroup var common: CommonOptions
        @Argument(help: "Pool name: a-z, 0-9 and '-'; it becomes part of the issuer URL.") var name: String
        @Option(help: "Display name shown on sign-in pages.") var displayName: String?
        @Option(help: "Token signing algorithm: ES256 (default) or RS256.") var alg: String = "ES256"
        func run() async throws {
            guard let algorithm = SigningAlgorithm(rawValue: alg) else { throw ValidationError("--alg must be ES256 or RS256") }
            try await withEnvironment(common) { env in
                let pool = try await env.admin.createPool(name: name, displayName: displayName, algorithm: algorithm)
                print("Created pool \(pool.id). Issuer: \(env.configuration.issuer(for: pool.id))")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List pools.")
        @OptionGroup var common: CommonOptions
        func run() async throws {
            try await withEnvironment(common) { env in try printJSON(try await env.gatehouse.directory.listPools()) }
        }
    }
}

struct ClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "client", abstract: "Manage app clients.", subcommands: [Create.self, List.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register an app client. A confidential client's secret is printed once.")
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        @Option var name: String
        @Option(name: .customLong("redirect-uri"), help: "Exact redirect URI (repeatable).") var redirectURIs: [String] = []
        @Option(name: .customLong("logout-uri"), help: "Exact post-logout URI (repeatable).") var logoutURIs: [String] = []
        @Option(name: .customLong("scope"), help: "Allowed scope (repeatable; default openid email profile).") var scopes: [String] = []
        @Option(name: .customLong("provider"), help: "Allowed identity provider (repeatable; default all).") var providers: [String] = []
        @Flag(name: .customLong("public"), help: "A public client (no secret; PKCE S256 required).") var isPublic = false
        @Option(name: .customLong("id-token-ttl"), help: "ID token lifetime in seconds (300-86400).") var idTTL: Int = AppClient.defaultIDTokenTTL
        @Option(name: .customLong("access-token-ttl"), help: "Access token lifetime in seconds (300-86400).") var accessTTL: Int = AppClient.defaultAccessTokenTTL
        @Option(name: .customLong("refresh-token-ttl"), help: "Refresh token lifetime in seconds (default 30 days).") var refreshTTL: Int = AppClient.defaultRefreshTokenTTL
        func run() async throws {
            try await withEnvironment(common) { env in
                let (client, secret) = try await env.admin.createClient(
                    pool: pool, name: name, redirectURIs: redirectURIs, logoutURIs: logoutURIs, confidential: !isPublic,
                    scopes: scopes.isEmpty ? ["openid", "email", "profile"] : scopes, providers: providers,
                    lifetimes: (idTTL, accessTTL, refreshTTL))
                print("client_id: \(client.clientID)")
                if let secret { print("client_secret: \(secret)   (shown once; store it now)") }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List app clients of a pool.")
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        func run() async throws {
            try await withEnvironment(common) { env in try printJSON(try await env.gatehouse.directory.listClients(pool: try PoolID(pool))) }
        }
    }
}

struct ProviderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "provider", abstract: "Manage upstream identity providers.", subcommands: [AddOIDC.self, AddSAML.self, List.self, SetLinking.self])

    struct AddOIDC: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add-oidc", abstract: "Add an upstream OpenID provider.")
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        @Option(help: "The name apps pass as identity_provider.") var name: String
        @Option(help: "The provider's issuer, exactly as in its discovery document.") var issuer: String
        @Option(name: .customLong("client-id")) var clientID: String
        @Option(name: .customLong("client-secret-env"), help: "Environment variable holding the client secret.") var secretEnv: String?
        @Option(name: .customLong("client-secret-file"), help: "File holding the client secret.") var secretFile: String?
        @Option(name: .customLong("scope"), help: "Scope to request (repeatable; default openid email profile).") var scopes: [String] = []
        @Option(name: .customLong("alg"), help: "Allowed ID token algorithm (repeatable; default RS256).") var algs: [String] = []
        @Option(name: .customLong("map"), help: "Attribute mapping pool_attribute=upstream_claim (repeatable; default: standard claims).") var maps: [String] = []
        @Option(name: .customLong("mapping-file"), help: "A mapping document (JSON) instead of --map.") var mappingFile: String?
        @Option(name: .customLong("idp-identifier"), help: "Identifier (e.g. email domain) routed to this provider (repeatable).") var identifiers: [String] = []
        @Option(name: .customLong("clock-skew"), help: "Allowed clock skew in seconds.") var skew: Int = 60
        @Flag(name: .customLong("userinfo"), help: "Also read claims from the userinfo endpoint.") var userinfo = false
        @Option(name: .customLong("client-auth"), help: "client_secret_basic (default), client_secret_post or none.") var clientAuth: String = "client_secret_basic"

        func run() async throws {
            var secret: String?
            if let secretEnv {
                guard let v = ProcessInfo.processInfo.environment[secretEnv] else { throw ValidationError("\(secretEnv) is not set") }
                secret = v
            } else if let secretFile {
                guard let d = FileManager.default.contents(atPath: secretFile) else { throw ValidationError("cannot read \(secretFile)") }
                secret = String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard let auth = OIDCProviderSettings.ClientAuthentication(rawValue: clientAuth) else { throw ValidationError("unknown --client-auth") }
            let mapping = try mappingOption(maps: maps, file: mappingFile, otherwise: .oidcStandard)
            let settings = OIDCProviderSettings(
                issuer: issuer, clientID: clientID, scopes: scopes.isEmpty ? ["openid", "email", "profile"] : scopes,
                allowedAlgorithms: algs.isEmpty ? ["RS256"] : algs, clockSkewSeconds: skew, useUserInfo: userinfo, clientAuthentication: auth)
            try await withEnvironment(common) { env in
                let provider = try await env.admin.createOIDCProvider(pool: pool, name: name, settings: settings, clientSecret: secret, mapping: mapping, idpIdentifiers: identifiers)
                print("Added provider \(provider.name). Its redirect URI (register it upstream): \(env.configuration.issuer(for: provider.poolID))/oauth2/idpresponse")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List providers of a pool (secrets are not shown).")
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        func run() async throws {
            try await withEnvironment(common) { env in
                try printJSON(try await env.gatehouse.directory.listProviders(pool: try PoolID(pool)).map(\.redactedForDisplay))
            }
        }
    }
}

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "user", abstract: "Inspect and manage users.", subcommands: [List.self, Show.self, Create.self, Find.self, Link.self, Unlink.self, Disable.self, Enable.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users by username, a page at a time.")
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        @Option(help: "Start after this username.") var after: String?
        @Option var limit: Int = 50
        func run() async throws {
            try await withEnvironment(common) { env in try printJSON(try await env.gatehouse.directory.listUsers(pool: try PoolID(pool), after: after, limit: limit)) }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a user with linked identities and groups.")
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        @Option var id: String
        func run() async throws {
            try await withEnvironment(common) { env in
                let poolID = try PoolID(pool)
                guard let user = try await env.gatehouse.directory.user(pool: poolID, id: id) else { throw ValidationError("no such user") }
                struct View: Encodable { let user: User; let identities: [LinkedIdentity]; let groups: [String] }
                try printJSON(View(user: user, identities: try await env.gatehouse.directory.linkedIdentities(pool: poolID, userID: id), groups: try await env.gatehouse.directory.groups(pool: poolID, userID: id)))
            }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a user and revoke their refresh tokens.")
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        @Option var id: String
        func run() async throws {
            try await withEnvironment(common) { env in try await env.admin.setUserEnabled(pool: pool, userID: id, enabled: false) }
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a user.")
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        @Option var id: String
        func run() async throws {
            try await withEnvironment(common) { env in try await env.admin.setUserEnabled(pool: pool, userID: id, enabled: true) }
        }
    }
}

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "keys", abstract: "Signing keys.", subcommands: [Rotate.self, List.self])

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Publish a new signing key now; it starts signing after --activate-after seconds.")
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        @Option(name: .customLong("activate-after"), help: "Seconds between publication and first signature (default 3600).") var delay: Int = 3600
        func run() async throws {
            try await withEnvironment(common) { env in
                let record = try await env.admin.rotateKeys(pool: pool, activationDelay: TimeInterval(delay))
                print("Published key \(record.kid); it signs from \(record.activatesAt).")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List signing keys (private keys are never shown).")
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        func run() async throws {
            try await withEnvironment(common) { env in
                struct View: Encodable { let kid: String; let algorithm: SigningAlgorithm; let createdAt: Date; let activatesAt: Date; let retiresAt: Date?; let removeAfter: Date? }
                try printJSON(try await env.gatehouse.directory.signingKeys(pool: try PoolID(pool)).map {
                    View(kid: $0.kid, algorithm: $0.algorithm, createdAt: $0.createdAt, activatesAt: $0.activatesAt, retiresAt: $0.retiresAt, removeAfter: $0.removeAfter)
                })
            }
        }
    }
}
