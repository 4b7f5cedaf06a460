import ArgumentParser
import Foundation
import GatehouseCore
import GatehouseOIDC
import GatehouseSAML
import GatehouseServer

struct SAMLCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "saml", abstract: "SAML 2.0 tools.", subcommands: [Verify.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify one SAML response as the ACS does; print the verified identity (exit 0) or every failed check (exit 1).")
        @Option(name: .customLong("idp-metadata"), help: "The IdP's metadata file.") var metadata: String
        @Option(name: .customLong("sp-entity-id"), help: "The SP entity ID the response must be addressed to.") var spEntityID: String
        @Option(name: .customLong("acs-url"), help: "The ACS URL (Destination and Recipient).") var acsURL: String
        @Option(name: .customLong("request-id"), help: "The AuthnRequest ID it answers; omit for an IdP-initiated response.") var requestID: String?
        @Option(help: "Verify as of this instant (ISO 8601), to reproduce a past response.") var now: String?
        @Option(name: .customLong("clock-skew"), help: "Allowed clock skew in seconds.") var skew: Int = 60
        @Option(help: "Required signatures: assertion (default), response, either or both.") var signatures: String = "assertion"
        @Option(name: .customLong("sp-key"), help: "The SP's private key (PEM), for encrypted assertions.") var spKey: String?
        @Option(name: .customLong("sp-cert"), help: "The SP's certificate (PEM), with --sp-key.") var spCert: String?
        @Argument(help: "File holding the response (raw XML or the base64 SAMLResponse form value), or - for standard input.") var response: String

        func run() async throws {
            guard let requirement = SAMLSignatureRequirement(rawValue: signatures) else {
                throw ValidationError("--signatures is assertion, response, either or both")
            }
            let input = try readArgumentFile(response)
            let metadataXML = try readArgumentFile(metadata)
            let instant = try parseNow(now)
            var key: SAMLSigningCredential?
            if spKey != nil || spCert != nil {
                guard let spKey, let spCert, let k = FileManager.default.contents(atPath: spKey), let c = FileManager.default.contents(atPath: spCert) else {
                    throw ValidationError("--sp-key and --sp-cert go together and must be readable PEM files")
                }
                key = try SAMLSigningCredential(privateKeyPEM: String(decoding: k, as: UTF8.self), certificatePEM: String(decoding: c, as: UTF8.self))
            }
            let report = SAMLResponseCheck.run(
                response: input, metadataXML: metadataXML, spEntityID: spEntityID, acsURL: acsURL,
                requestID: requestID, signatures: requirement, clockSkew: TimeInterval(skew), now: instant, decryptionKey: key)
            print(report.text)
            if !report.verified { throw ExitCode(1) }
        }
    }
}

extension ProviderCommand {
    struct AddSAML: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add-saml", abstract: "Add an upstream SAML 2.0 identity provider from its metadata.")
        @OptionGroup var common: CommonOptions
        @Option var pool: String
        @Option(help: "The name apps pass as identity_provider.") var name: String
        @Option(name: .customLong("metadata-file"), help: "The IdP's metadata file.") var metadataFile: String?
        @Option(name: .customLong("metadata-url"), help: "The IdP's metadata URL (https).") var metadataURL: String?
        @Option(name: .customLong("metadata-cert"), help: "A PEM certificate the metadata must be signed with.") var metadataCert: String?
        @Option(name: .customLong("idp-entity-id"), help: "The IdP's entity ID (required when the metadata holds several).") var idpEntityID: String?
        @Option(name: .customLong("sp-entity-id"), help: "Gatehouse's SP entity ID for this IdP (default {issuer}/saml2/sp/{name}).") var spEntityID: String?
        @Option(help: "Required signatures: assertion (default), response, either or both.") var signatures: String = "assertion"
        @Option(help: "AuthnRequest binding: redirect (default) or post.") var binding: String = "redirect"
        @Option(name: .customLong("name-id-format"), help: "NameIDPolicy Format to ask for.") var nameIDFormat: String?
        @Flag(name: .customLong("force-authn"), help: "Ask the IdP to authenticate the user again.") var forceAuthn = false
        @Option(name: .customLong("authn-context"), help: "RequestedAuthnContext class (repeatable).") var authnContext: [String] = []
        @Flag(name: .customLong("allow-idp-initiated"), help: "Accept IdP-initiated logins (off by default).") var idpInitiated = false
        @Option(name: .customLong("map"), help: "Attribute mapping pool_attribute=SAML attribute Name or FriendlyName (repeatable).") var maps: [String] = []
        @Option(name: .customLong("mapping-file"), help: "A mapping document (JSON) instead of --map.") var mappingFile: String?
        @Option(name: .customLong("idp-identifier"), help: "Identifier (e.g. email domain) routed to this provider (repeatable).") var identifiers: [String] = []
        @Option(name: .customLong("clock-skew"), help: "Allowed clock skew in seconds.") var skew: Int = 60

        func run() async throws {
            guard (metadataFile == nil) != (metadataURL == nil) else { throw ValidationError("give exactly one of --metadata-file and --metadata-url") }
            guard let requestBinding = SAMLProviderSettings.RequestBinding(rawValue: binding) else { throw ValidationError("--binding is redirect or post") }
            let mapping = try mappingOption(maps: maps, file: mappingFile, otherwise: AttributeMapping([:]))
            var options = Admin.SAMLOptions()
            options.spEntityID = spEntityID
            options.signatures = signatures
            options.clockSkewSeconds = skew
            options.requestBinding = requestBinding
            options.nameIDFormat = nameIDFormat
            options.forceAuthn = forceAuthn
            options.requestedAuthnContext = authnContext
            options.allowIdPInitiated = idpInitiated
            options.metadataURL = metadataURL
            if let metadataCert {
                guard let d = FileManager.default.contents(atPath: metadataCert) else { throw ValidationError("cannot read \(metadataCert)") }
                options.metadataSigningCertificatePEM = String(decoding: d, as: UTF8.self)
            }
            try await withEnvironment(common) { env in
                let xml: String
                if let metadataFile {
                    guard let d = FileManager.default.contents(atPath: metadataFile) else { throw ValidationError("cannot read \(metadataFile)") }
                    xml = String(decoding: d, as: UTF8.self)
                } else {
                    xml = try await SAMLMetadataFetch.fetch(metadataURL!, http: env.http)
                }
                let provider = try await env.admin.createSAMLProvider(
                    pool: pool, name: name, metadataXML: xml, idpEntityID: idpEntityID, options: options,
                    mapping: mapping, idpIdentifiers: identifiers)
                let issuer = env.configuration.issuer(for: provider.poolID)
                print("""
                    Added SAML provider \(provider.name) (IdP \(provider.saml!.idpEntityID)).
                    Register Gatehouse at the IdP:
                      SP entity ID:  \(provider.saml!.spEntityID)
                      ACS (POST):    \(provider.saml!.acsURL)
                      SP metadata:   \(issuer)/saml2/metadata/\(provider.name)
                    """)
            }
        }
    }
}
