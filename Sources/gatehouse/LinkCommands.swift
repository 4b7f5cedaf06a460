import ArgumentParser
import Foundation
import GatehouseCore
import GatehouseServer

extension ProviderCommand {
    struct SetLinking: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-linking", abstract: "Set what a provider's first logins do: create_user, verified_email, prove_existing or refuse.")
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        @Option(help: "The identity provider's name.") var provider: String
        @Option(help: "create_user (default), verified_email, prove_existing or refuse.") var policy: String
        @Flag(name: .customLong("trust-email"), help: "Believe this provider's email_verified (only for a provider that owns its users' addresses).") var trustEmail = false
        func run() async throws {
            guard let p = LinkPolicy(rawValue: policy) else { throw ValidationError("--policy is one of \(LinkPolicy.allCases.map(\.rawValue).joined(separator: ", "))") }
            try await withEnvironment(common) { env in
                try await env.admin.setLinkSettings(pool: pool, provider: provider, LinkSettings(policy: p, trustEmail: trustEmail))
                print("\(provider): first logins \(p.rawValue)\(trustEmail ? ", email trusted" : "").")
            }
        }
    }
}

extension UserCommand {
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Provision a user before their first login, with the provider identity they will use.")
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        @Option var provider: String
        @Option(help: "Their subject at the provider (NameID for SAML).") var subject: String
        @Option(help: "The identity's issuer (default: the provider's).") var issuer: String?
        @Option(name: .customLong("attribute"), help: "name=value (repeatable), e.g. email=ada@example.com.") var attributes: [String] = []
        func run() async throws {
            var values: [String: String] = [:]
            for a in attributes {
                let parts = a.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { throw ValidationError("--attribute takes name=value") }
                values[parts[0]] = parts[1]
            }
            try await withEnvironment(common) { env in
                let user = try await env.admin.createUser(pool: pool, provider: provider, subject: subject, attributes: values, issuer: issuer)
                print("Created user \(user.id) (\(user.username)).")
            }
        }
    }

    struct Find: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Find users by email, or the user of a linked identity.")
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        @Option var email: String?
        @Option(help: "With --subject: the provider of a linked identity.") var provider: String?
        @Option var subject: String?
        @Option(help: "The identity's issuer (default: the provider's).") var issuer: String?
        func run() async throws {
            try await withEnvironment(common) { env in
                let poolID = try PoolID(pool)
                let directory = env.gatehouse.directory
                if let email {
                    try printJSON(try await directory.users(pool: poolID, email: email, limit: 100))
                } else if let provider, let subject {
                    let found = try await env.admin.user(pool: pool, provider: provider, subject: subject, issuer: issuer)
                    try printJSON(found.map { [$0] } ?? [])
                } else {
                    throw ValidationError("give --email, or --provider and --subject")
                }
            }
        }
    }

    struct Link: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Link a provider identity to a user. One that already signed in is moved: its user's attributes fill the target's gaps, its groups are added, and it is deleted if it has no identity left.")
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        @Option(name: .customLong("user"), help: "The user's id (the sub of its tokens).") var userID: String
        @Option var provider: String
        @Option(help: "The identity's subject at the provider (NameID for SAML).") var subject: String
        @Option(help: "The identity's issuer (default: the provider's).") var issuer: String?
        func run() async throws {
            try await withEnvironment(common) { env in
                let merge = try await env.admin.link(pool: pool, userID: userID, provider: provider, subject: subject, issuer: issuer)
                if let from = merge.fromUserID {
                    print("Moved the identity from user \(from) and merged it\(merge.fromUserDeleted ? "; that user had no identity left and was deleted" : "").")
                } else {
                    print("Linked.")
                }
            }
        }
    }

    struct Unlink: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Unlink a provider identity from its user (never the user's last).")
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        @Option var provider: String
        @Option var subject: String
        @Option var issuer: String?
        func run() async throws {
            try await withEnvironment(common) { env in
                try await env.admin.unlink(pool: pool, provider: provider, subject: subject, issuer: issuer)
                print("Unlinked.")
            }
        }
    }
}

struct GroupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "group", abstract: "Pool groups (mappings can assign them too).", subcommands: [Create.self, List.self, AddUser.self])

    struct Create: AsyncParsableCommand {
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        @Option var name: String
        @Option var description: String = ""
        func run() async throws {
            try await withEnvironment(common) { env in
                try await env.admin.createGroup(pool: pool, name: name, description: description)
                print("Created group \(name).")
            }
        }
    }

    struct List: AsyncParsableCommand {
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        func run() async throws {
            try await withEnvironment(common) { env in try printJSON(try await env.gatehouse.directory.listGroups(pool: try PoolID(pool))) }
        }
    }

    struct AddUser: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add-user", abstract: "Add a user to a group (a membership no login removes).")
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        @Option var group: String
        @Option(name: .customLong("user")) var userID: String
        func run() async throws {
            try await withEnvironment(common) { env in
                try await env.admin.addUser(pool: pool, userID: userID, toGroup: group)
                print("Added.")
            }
        }
    }
}

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit", abstract: "The audit log: admin changes and link decisions.", subcommands: [Export.self])

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the audit log as JSON lines, oldest first.")
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        @Option(help: "Only this action (for example link.created).") var action: String?
        @Option(help: "Only entries after this id.") var after: String?
        func run() async throws {
            try await withEnvironment(common) { env in
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                encoder.dateEncodingStrategy = .iso8601
                var cursor = after
                while true {
                    let page = try await env.gatehouse.directory.auditEntries(pool: try PoolID(pool), after: cursor, action: action, limit: 1000)
                    for entry in page { print(String(decoding: try encoder.encode(entry), as: UTF8.self)) }
                    guard page.count == 1000, let last = page.last else { break }
                    cursor = last.id
                }
            }
        }
    }
}

struct AdminCredentialCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin-credential", abstract: "Credentials of the admin HTTP API (/admin/v1).", subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a credential; its secret is printed once.")
        @OptionGroup var common: CommonOptions
        @Option(help: "Its name, recorded as admin:NAME in the audit log.") var name: String
        @Option(help: "Limit it to this pool.") var pool: String?
        func run() async throws {
            try await withEnvironment(common) { env in
                let secret = try await env.admin.createCredential(name: name, pool: pool)
                print("admin credential \(name): \(secret)   (shown once; send it as Authorization: Bearer …)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        @OptionGroup var common: CommonOptions
        func run() async throws {
            try await withEnvironment(common) { env in
                struct View: Encodable { let name: String; let pool: PoolID?; let createdAt: Date; let revokedAt: Date? }
                try printJSON(try await env.gatehouse.directory.listAdminCredentials().map { View(name: $0.name, pool: $0.poolID, createdAt: $0.createdAt, revokedAt: $0.revokedAt) })
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        @OptionGroup var common: CommonOptions
        @Option var name: String
        func run() async throws {
            try await withEnvironment(common) { env in
                try await env.admin.revokeCredential(name: name)
                print("Revoked \(name).")
            }
        }
    }
}
