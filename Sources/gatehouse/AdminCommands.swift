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
            try await withEnvironment(common) { env in try printJSON(try await env.gatehouse.directory.listClients(pool: try PoolID(pool)).map(\.redactedForDisplay)) }
        }
    }
}

struct ProviderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "provider", abstract: "Manage upstream identity providers.", subcommands: [AddOIDC.self, AddSAML.self, List.self, SetLinking.self])

    struct AddOIDC: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add-oidc",
            abstract: "Add an upstream OpenID provider, or an OAuth 2.0 one, from a preset.",
            discussion: """
                Presets: oidc (any OpenID provider, from --issuer), google, microsoft (--tenant common, organizations, \
                consumers or a tenant ID), apple (--apple-team-id, --apple-key-id, --apple-private-key-file), facebook, github, \
                oauth2 (--issuer naming the ID namespace, the three endpoints, --subject-claim).
                """)
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        @Option(help: "The name apps pass as identity_provider.") var name: String
        @Option(help: "oidc (default), google, microsoft, apple, facebook, github or oauth2.") var preset: String = "oidc"
        @Option(help: "The provider's issuer, exactly as in its discovery document (presets know theirs).") var issuer: String?
        @Option(name: .customLong("client-id")) var clientID: String
        @Option(name: .customLong("client-secret-env"), help: "Environment variable holding the client secret.") var secretEnv: String?
        @Option(name: .customLong("client-secret-file"), help: "File holding the client secret (private_key_jwt: an RSA private key PEM).") var secretFile: String?
        @Option(name: .customLong("scope"), help: "Scope to request (repeatable; default from the preset).") var scopes: [String] = []
        @Option(name: .customLong("alg"), help: "Allowed ID token algorithm (repeatable; default RS256).") var algs: [String] = []
        @Option(name: .customLong("map"), help: "Attribute mapping pool_attribute=upstream_claim (repeatable; default from the preset).") var maps: [String] = []
        @Option(name: .customLong("mapping-file"), help: "A mapping document (JSON) instead of --map.") var mappingFile: String?
        @Option(name: .customLong("idp-identifier"), help: "Identifier (e.g. email domain) routed to this provider (repeatable).") var identifiers: [String] = []
        @Option(name: .customLong("clock-skew"), help: "Allowed clock skew in seconds.") var skew: Int?
        @Flag(name: .customLong("userinfo"), help: "Also read claims from the userinfo endpoint.") var userinfo = false
        @Option(name: .customLong("client-auth"), help: "client_secret_basic, client_secret_post, private_key_jwt or none (default from the preset).") var clientAuth: String?
        @Option(name: .customLong("response-mode"), help: "query or form_post (default from the preset).") var responseMode: String?
        @Option(name: .customLong("authorization-endpoint")) var authorizationEndpoint: String?
        @Option(name: .customLong("token-endpoint")) var tokenEndpoint: String?
        @Option(name: .customLong("userinfo-endpoint"), help: "OAuth 2.0: the user API the profile is read from.") var userinfoEndpoint: String?
        @Option(name: .customLong("emails-endpoint"), help: "GitHub: the emails API.") var emailsEndpoint: String?
        @Option(name: .customLong("subject-claim"), help: "OAuth 2.0: dotted path of the user ID in the user API's answer.") var subjectClaim: String?
        @Option(name: .customLong("claims-path"), help: "OAuth 2.0: dotted path of the claims object in the user API's answer.") var claimsPath: String?
        @Option(help: "Microsoft: common, organizations, consumers or a tenant ID.") var tenant: String?
        @Option(name: .customLong("allowed-tenant"), help: "Microsoft multi-tenant: a tenant ID allowed to sign in (repeatable).") var allowedTenants: [String] = []
        @Option(name: .customLong("hosted-domain"), help: "Google Workspace: the domain (hd claim) every user must belong to.") var hostedDomain: String?
        @Option(name: .customLong("apple-team-id")) var appleTeamID: String?
        @Option(name: .customLong("apple-key-id")) var appleKeyID: String?
        @Option(name: .customLong("apple-private-key-file"), help: "Apple: the .p8 key file.") var applePrivateKeyFile: String?
        @Flag(name: .customLong("upstream-refresh"), help: "Keep the upstream refresh token and re-read the upstream's claims on every refresh.") var upstreamRefresh = false
        @Option(name: .customLong("auth-param"), help: "Extra authorization request parameter name=value (repeatable).") var authParams: [String] = []

        func run() async throws {
            var secret: String?
            if let secretEnv {
                guard let v = ProcessInfo.processInfo.environment[secretEnv] else { throw ValidationError("\(secretEnv) is not set") }
                secret = v
            } else if let path = secretFile ?? applePrivateKeyFile {
                guard let d = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
                secret = String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard let preset = ProviderPreset(rawValue: preset) else { throw ValidationError("--preset is one of \(ProviderPreset.allCases.map(\.rawValue))") }
            var spec = OIDCProviderSpec(preset: preset, clientID: clientID)
            spec.issuer = issuer
            spec.scopes = scopes
            spec.allowedAlgorithms = algs
            spec.clockSkewSeconds = skew
            spec.userinfo = userinfo
            if let clientAuth {
                guard let auth = OIDCProviderSettings.ClientAuthentication(rawValue: clientAuth) else { throw ValidationError("unknown --client-auth") }
                spec.clientAuthentication = auth
            }
            if let responseMode {
                guard let mode = OIDCProviderSettings.ResponseMode(rawValue: responseMode) else { throw ValidationError("--response-mode is query or form_post") }
                spec.responseMode = mode
            }
            spec.authorizationEndpoint = authorizationEndpoint
            spec.tokenEndpoint = tokenEndpoint
            spec.userinfoEndpoint = userinfoEndpoint
            spec.emailsEndpoint = emailsEndpoint
            spec.subjectClaim = subjectClaim
            spec.claimsPath = claimsPath
            spec.tenant = tenant
            spec.allowedTenants = allowedTenants
            spec.hostedDomain = hostedDomain
            spec.appleTeamID = appleTeamID
            spec.appleKeyID = appleKeyID
            spec.upstreamRefresh = upstreamRefresh
            for pair in authParams {
                guard let eq = pair.firstIndex(of: "=") else { throw ValidationError("--auth-param takes name=value") }
                spec.authorizationParameters[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
            }
            let mapping = maps.isEmpty && mappingFile == nil ? nil : try mappingOption(maps: maps, file: mappingFile, otherwise: .oidcStandard)
            try await withEnvironment(common) { env in
                let provider = try await env.admin.createOIDCProvider(pool: pool, name: name, spec: spec, clientSecret: secret, mapping: mapping, idpIdentifiers: identifiers)
                let base = env.configuration.issuer(for: provider.poolID)
                print("Added provider \(provider.name). Its redirect URI (register it upstream): \(base)/oauth2/idpresponse")
                if provider.oidc?.clientAuthentication == .privateKeyJWT {
                    print("Its client key for private_key_jwt (register the URL or the key upstream): \(base)/providers/\(provider.name)/jwks.json")
                }
                print("Check it against the provider with: gatehouse oidc verify --pool \(pool) --provider \(provider.name)")
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
