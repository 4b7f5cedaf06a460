import ArgumentParser
import Foundation
import GatehouseCore
import GatehouseServer

struct MappingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mapping", abstract: "Attribute mappings: show, set, preview, versions, rollback.",
        subcommands: [Show.self, Set.self, Preview.self, Versions.self, Rollback.self])

    struct Target: ParsableArguments {
        @Option var pool: String
        @Option(help: "The identity provider's name.") var provider: String
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a provider's current mapping (the JSON document form).")
        @OptionGroup var common: CommonOptions
        @OptionGroup var target: Target
        func run() async throws {
            try await withEnvironment(common) { env in
                guard let p = try await env.gatehouse.directory.provider(pool: try PoolID(target.pool), name: target.provider) else { throw ValidationError("no such provider") }
                try printJSON(p.attributeMapping)
            }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check a mapping document and save it as the provider's next version.")
        @OptionGroup var common: CommonOptions
        @OptionGroup var target: Target
        @Option(help: "The mapping document (JSON; '-' for standard input).") var file: String
        @Option(help: "Why, kept with the version.") var note: String?
        func run() async throws {
            let mapping = try readMapping(file)
            try await withEnvironment(common) { env in
                let version = try await env.admin.setMapping(pool: target.pool, provider: target.provider, mapping: mapping, note: note)
                print("Saved version \(version.version) of the mapping of \(target.provider) (\(version.changes.count) rule\(version.changes.count == 1 ? "" : "s") changed).")
            }
        }
    }

    struct Preview: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the user a mapping makes of a captured login, and every rule's input and output. Changes nothing.",
            discussion: "Captured SAML responses and ID tokens are read without verification: a preview never signs anyone in.")
        @OptionGroup var common: CommonOptions
        @OptionGroup var target: Target
        @Option(help: "A mapping document to try instead of the current one.") var file: String?
        @Option(name: .customLong("saml-response"), help: "A captured SAML response (XML, base64 or percent-encoded).") var samlResponse: String?
        @Option(name: .customLong("id-token"), help: "A file holding a captured ID token.") var idToken: String?
        @Option(help: "A JSON object of upstream attributes (name -> string or list of strings).") var attributes: String?
        @Option(help: "Preview over the provider's last N verified logins (kept redacted).") var recent: Int?
        func run() async throws {
            let chosen = [samlResponse, idToken, attributes, recent.map(String.init)].compactMap { $0 }
            guard chosen.count == 1 else { throw ValidationError("give exactly one of --saml-response, --id-token, --attributes, --recent") }
            let input: Admin.PreviewInput
            if let samlResponse {
                input = .samlResponse(try readArgumentFile(samlResponse))
            } else if let idToken {
                input = .idToken(try readArgumentFile(idToken))
            } else if let attributes {
                input = .attributes(try readAttributes(attributes))
            } else {
                input = .recentLogins(recent ?? 1)
            }
            let mapping = try file.map(readMapping)
            try await withEnvironment(common) { env in
                try printJSON(try await env.admin.previewMapping(pool: target.pool, provider: target.provider, mapping: mapping, input: input))
            }
        }
    }

    struct Versions: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a mapping's versions, newest first: who, when, what changed.")
        @OptionGroup var common: CommonOptions
        @OptionGroup var target: Target
        func run() async throws {
            try await withEnvironment(common) { env in
                try printJSON(try await env.admin.mappingVersions(pool: target.pool, provider: target.provider))
            }
        }
    }

    struct Rollback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make an earlier version current again (saved as a new version).")
        @OptionGroup var common: CommonOptions
        @OptionGroup var target: Target
        @Option(help: "The version to return to.") var version: Int
        func run() async throws {
            try await withEnvironment(common) { env in
                let saved = try await env.admin.rollbackMapping(pool: target.pool, provider: target.provider, to: version)
                print("Version \(version) is current again, as version \(saved.version).")
            }
        }
    }
}

/// A mapping document from a file (or standard input).
func readMapping(_ path: String) throws -> AttributeMapping {
    let text = try readArgumentFile(path)
    do {
        return try AttributeMapping(document: try JSONValue.parse(Data(text.utf8)))
    } catch let e as DirectoryError {
        throw ValidationError("\(path): \(e.reason)")
    } catch {
        throw ValidationError("\(path): \(error)")
    }
}

/// Upstream attributes for a preview: a JSON object of strings or lists of strings.
func readAttributes(_ path: String) throws -> [String: [String]] {
    guard case .object(let object)? = try? JSONValue.parse(Data(try readArgumentFile(path).utf8)) else {
        throw ValidationError("\(path) is not a JSON object")
    }
    return JSONValue.flatten(object)
}

/// A new provider's mapping: `--mapping-file`, or `--map target=source` pairs (Cognito's flat
/// form), or `otherwise`.
func mappingOption(maps: [String], file: String?, otherwise: AttributeMapping) throws -> AttributeMapping {
    if let file {
        guard maps.isEmpty else { throw ValidationError("give --map or --mapping-file, not both") }
        return try readMapping(file)
    }
    guard !maps.isEmpty else { return otherwise }
    var rules: [String: String] = [:]
    for m in maps {
        let parts = m.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw ValidationError("--map takes pool_attribute=upstream_name") }
        rules[parts[0]] = parts[1]
    }
    return AttributeMapping(rules)
}
