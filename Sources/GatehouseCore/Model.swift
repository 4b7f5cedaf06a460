public import Foundation
import Synchronization

/// The name of a user pool: the tenant with its own issuer, clients, providers and users.
///
/// A slug of 1–63 characters `[a-z0-9-]`, starting with a letter or digit, and not one of the
/// names the server uses for its own routes. It appears in the issuer URL (`{base}/{pool}`).
public struct PoolID: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    public let rawValue: String
    public static let reserved: Set<String> = ["healthz", "readyz", "metrics", "admin", "static", "well-known", "oauth2"]

    public init(_ raw: String) throws {
        let bytes = Array(raw.utf8)
        guard (1...63).contains(bytes.count),
            bytes.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }),
            bytes[0] != 0x2D, !Self.reserved.contains(raw)
        else {
            throw DirectoryError(.invalid, "a pool name is 1-63 characters of a-z, 0-9 and '-', not starting with '-' nor reserved")
        }
        self.rawValue = raw
    }

    public init(from decoder: any Decoder) throws {
        try self.init(try decoder.singleValueContainer().decode(String.self))
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
    public var description: String { rawValue }
    public static func < (a: PoolID, b: PoolID) -> Bool { a.rawValue < b.rawValue }
}

/// The JWS algorithm a pool signs its ID and access tokens with.
public enum SigningAlgorithm: String, Sendable, Codable, CaseIterable {
    case es256 = "ES256"
    case rs256 = "RS256"
}

/// A user pool.
public struct Pool: Sendable, Codable, Equatable {
    public var id: PoolID
    public var displayName: String
    public var signingAlgorithm: SigningAlgorithm
    public var createdAt: Date
    /// The `custom:*` attributes users of this pool may have, with their types.
    public var customAttributes: [CustomAttribute]

    public init(id: PoolID, displayName: String, signingAlgorithm: SigningAlgorithm = .es256, createdAt: Date, customAttributes: [CustomAttribute] = []) {
        self.id = id
        self.displayName = displayName
        self.signingAlgorithm = signingAlgorithm
        self.createdAt = createdAt
        self.customAttributes = customAttributes
    }

    public func validate() throws {
        guard !displayName.isEmpty, displayName.utf8.count <= 128 else { throw DirectoryError(.invalid, "a display name is 1-128 characters") }
        var names: Set<String> = []
        for attribute in customAttributes {
            try attribute.validate()
            guard names.insert(attribute.name).inserted else { throw DirectoryError(.invalid, "\(attribute.name) is declared twice") }
        }
        guard customAttributes.count <= 50 else { throw DirectoryError(.invalid, "a pool declares at most 50 custom attributes") }
    }
}

/// An application registered in a pool (an OAuth 2.0 client of Gatehouse).
///
/// A client with no secret is public and must use PKCE S256. Redirect and logout URIs match
/// exactly, byte for byte. Lifetimes are in seconds.
public struct AppClient: Sendable, Codable, Equatable {
    public var poolID: PoolID
    public var clientID: String
    public var name: String
    /// `Secrets.hash` of the client secret; `nil` for a public client.
    public var secretHash: String?
    public var redirectURIs: [String]
    public var logoutURIs: [String]
    public var allowedScopes: [String]
    /// Identity providers this client may use; empty means every provider of the pool.
    public var allowedProviders: [String]
    public var idTokenTTL: Int
    public var accessTokenTTL: Int
    public var refreshTokenTTL: Int
    public var createdAt: Date

    public static let defaultIDTokenTTL = 3600
    public static let defaultAccessTokenTTL = 3600
    public static let defaultRefreshTokenTTL = 30 * 86400
    /// The longest ID or access token lifetime a client may have (as in Cognito): one day.
    public static let maximumTokenTTL = 86400

    public init(
        poolID: PoolID, clientID: String, name: String, secretHash: String?, redirectURIs: [String],
        logoutURIs: [String] = [], allowedScopes: [String] = ["openid", "email", "profile"],
        allowedProviders: [String] = [], idTokenTTL: Int = AppClient.defaultIDTokenTTL,
        accessTokenTTL: Int = AppClient.defaultAccessTokenTTL, refreshTokenTTL: Int = AppClient.defaultRefreshTokenTTL,
        createdAt: Date
    ) {
        self.poolID = poolID
        self.clientID = clientID
        self.name = name
        self.secretHash = secretHash
        self.redirectURIs = redirectURIs
        self.logoutURIs = logoutURIs
        self.allowedScopes = allowedScopes
        self.allowedProviders = allowedProviders
        self.idTokenTTL = idTokenTTL
        self.accessTokenTTL = accessTokenTTL
        self.refreshTokenTTL = refreshTokenTTL
        self.createdAt = createdAt
    }

    public var isPublic: Bool { secretHash == nil }

    /// Checks the rules every stored client obeys; throws `DirectoryError.invalid` with the reason.
    public func validate() throws {
        func bad(_ r: String) -> DirectoryError { DirectoryError(.invalid, r) }
        guard !clientID.isEmpty, clientID.utf8.count <= 128 else { throw bad("client_id must be 1-128 characters") }
        guard !redirectURIs.isEmpty else { throw bad("an app client needs at least one redirect URI") }
        for uri in redirectURIs + logoutURIs {
            guard let u = URL(string: uri), let scheme = u.scheme?.lowercased(), u.fragment == nil else {
                throw bad("not an absolute URI without fragment: \(uri)")
            }
            if scheme == "http" {
                guard let host = u.host, Self.isLoopbackHost(host) else {
                    throw bad("http redirect URIs are allowed only on loopback: \(uri)")
                }
            } else if scheme != "https" && !scheme.contains(".") {
                // Private-use schemes for native apps must be reverse-DNS (RFC 8252 §7.1).
                throw bad("redirect URI scheme must be https, loopback http, or a reverse-DNS private scheme: \(uri)")
            }
        }
        for ttl in [idTokenTTL, accessTokenTTL] where !(300...Self.maximumTokenTTL).contains(ttl) {
            throw bad("ID and access token lifetimes must be between 5 minutes and 1 day")
        }
        guard (3600...(3650 * 86400)).contains(refreshTokenTTL) else {
            throw bad("refresh token lifetime must be between 1 hour and 10 years")
        }
    }

    /// `localhost`, `::1`, or a dotted-quad IPv4 address in 127.0.0.0/8 (not a name that merely starts with "127.").
    public static func isLoopbackHost(_ host: String) -> Bool {
        if host == "localhost" || host == "::1" || host == "[::1]" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return false }
        let values = octets.map { o -> Int? in
            guard (1...3).contains(o.count), o.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            return Int(o).flatMap { $0 <= 255 ? $0 : nil }
        }
        return values.allSatisfy { $0 != nil } && values[0] == 127
    }
}

/// The kind of upstream an identity provider is.
public enum ProviderKind: String, Sendable, Codable {
    case oidc
    case saml
}

/// Settings of an upstream SAML 2.0 identity provider. The IdP's metadata document is kept as
/// imported (the last good copy when it comes from a URL); the SP side's private key is sealed with
/// the master key (purpose `saml-sp-key:{pool}/{name}`).
public struct SAMLProviderSettings: Sendable, Codable, Equatable {
    public enum RequestBinding: String, Sendable, Codable, CaseIterable {
        case redirect, post
    }
    /// Exactly as the IdP's metadata spells its entityID.
    public var idpEntityID: String
    /// The IdP's metadata XML as last imported and verified.
    public var metadataXML: String
    /// Where the metadata is refreshed from in the background, if it came from a URL (https).
    public var metadataURL: String?
    /// A certificate (PEM) the metadata itself must be signed with, if the admin pinned one.
    public var metadataSigningCertificatePEM: String?
    /// Gatehouse's SP entity ID and ACS URL for this provider.
    public var spEntityID: String
    public var acsURL: String
    public var spCertificatePEM: String
    public var sealedSPPrivateKey: String
    /// Which of Response and Assertion must be signed: assertion, response, either, both.
    public var signatures: String
    public var clockSkewSeconds: Int
    public var requestBinding: RequestBinding
    public var nameIDFormat: String?
    public var forceAuthn: Bool
    public var requestedAuthnContext: [String]
    /// IdP-initiated (unsolicited) login; off unless the admin turns it on.
    public var allowIdPInitiated: Bool
    /// Gatehouse's single logout endpoint for this provider.
    public var sloURL: String? = nil

    public init(
        idpEntityID: String, metadataXML: String, metadataURL: String? = nil, metadataSigningCertificatePEM: String? = nil,
        spEntityID: String, acsURL: String, spCertificatePEM: String, sealedSPPrivateKey: String,
        signatures: String = "assertion", clockSkewSeconds: Int = 60, requestBinding: RequestBinding = .redirect,
        nameIDFormat: String? = nil, forceAuthn: Bool = false, requestedAuthnContext: [String] = [], allowIdPInitiated: Bool = false
    ) {
        self.idpEntityID = idpEntityID
        self.metadataXML = metadataXML
        self.metadataURL = metadataURL
        self.metadataSigningCertificatePEM = metadataSigningCertificatePEM
        self.spEntityID = spEntityID
        self.acsURL = acsURL
        self.spCertificatePEM = spCertificatePEM
        self.sealedSPPrivateKey = sealedSPPrivateKey
        self.signatures = signatures
        self.clockSkewSeconds = clockSkewSeconds
        self.requestBinding = requestBinding
        self.nameIDFormat = nameIDFormat
        self.forceAuthn = forceAuthn
        self.requestedAuthnContext = requestedAuthnContext
        self.allowIdPInitiated = allowIdPInitiated
    }

    public static func spKeyPurpose(pool: PoolID, provider: String) -> String { "saml-sp-key:\(pool)/\(provider)" }

    public func validate() throws {
        guard !idpEntityID.isEmpty, !metadataXML.isEmpty else { throw DirectoryError(.invalid, "a SAML provider needs its IdP metadata") }
        guard !spEntityID.isEmpty, spEntityID.utf8.count <= 1024 else { throw DirectoryError(.invalid, "the SP entity ID is 1-1024 characters") }
        guard let acs = URL(string: acsURL), let host = acs.host, acs.scheme == "https" || (acs.scheme == "http" && AppClient.isLoopbackHost(host)) else {
            throw DirectoryError(.invalid, "the ACS URL must use https (plain http only on loopback)")
        }
        if let metadataURL {
            guard let u = URL(string: metadataURL), let host = u.host, u.scheme == "https" || (u.scheme == "http" && AppClient.isLoopbackHost(host)) else {
                throw DirectoryError(.invalid, "the metadata URL must use https (plain http only on loopback)")
            }
        }
        guard ["assertion", "response", "either", "both"].contains(signatures) else {
            throw DirectoryError(.invalid, "signatures must be assertion, response, either or both")
        }
        guard (0...600).contains(clockSkewSeconds) else { throw DirectoryError(.invalid, "clock skew must be 0-600 seconds") }
    }
}

/// How one identity provider's attributes and claims become a pool's canonical attributes.
///
/// Each rule fills one pool attribute (a standard claim, `custom:*`, or `groups`) from either an
/// upstream attribute's name (Cognito's flat form) or an expression of the mapping language, and says
/// whether it is applied at every login (Cognito's behaviour, the default) or only when the user is
/// created (Keycloak's "import"). The document form is a JSON object, target -> name or
/// `{"expression": "…", "update": "first_login"}`; Cognito's flat map is accepted as is.
///
/// This type holds the text; the Mapping module compiles and checks the expressions.
public struct AttributeMapping: Sendable, Equatable, Codable {
    public enum Update: String, Sendable, Codable, CaseIterable {
        case everyLogin = "every_login"
        case firstLogin = "first_login"
    }

    public enum Source: Sendable, Equatable {
        /// The upstream attribute or claim of this name, as is.
        case attribute(String)
        /// An expression of the mapping language.
        case expression(String)
    }

    public struct Rule: Sendable, Equatable {
        public var target: String
        public var source: Source
        public var update: Update
        public init(target: String, source: Source, update: Update = .everyLogin) {
            self.target = target
            self.source = source
            self.update = update
        }
    }

    /// Ordered by target.
    public private(set) var rules: [Rule]

    public init(rules: [Rule]) { self.rules = rules.sorted { $0.target < $1.target } }

    /// Cognito's flat form: pool attribute -> upstream attribute or claim name, updated every login.
    public init(_ flat: [String: String]) {
        self.init(rules: flat.map { Rule(target: $0.key, source: .attribute($0.value)) })
    }

    /// What a new OIDC provider maps when the admin gives no mapping: the standard claims by name.
    public static let oidcStandard = AttributeMapping([
        "email": "email", "email_verified": "email_verified", "name": "name", "given_name": "given_name",
        "family_name": "family_name", "preferred_username": "preferred_username",
    ])

    /// Names a pool attribute may have: the OIDC standard claims and `custom:*`.
    public static let standardAttributes: Set<String> = [
        "email", "email_verified", "phone_number", "phone_number_verified", "name", "given_name", "family_name",
        "middle_name", "nickname", "preferred_username", "profile", "picture", "website", "gender", "birthdate",
        "zoneinfo", "locale", "address", "updated_at",
    ]

    /// The target that sets the user's pool groups rather than an attribute.
    public static let groupsTarget = "groups"

    /// Checks the targets and the shape of each rule (not the expressions: see the Mapping module).
    public func validate() throws {
        var targets: Set<String> = []
        for rule in rules {
            let t = rule.target
            guard targets.insert(t).inserted else { throw DirectoryError(.invalid, "more than one rule sets '\(t)'") }
            guard Self.standardAttributes.contains(t) || t == Self.groupsTarget || CustomAttribute.isValidName(t) else {
                throw DirectoryError(.invalid, "unknown pool attribute '\(t)' (standard claims, groups, or custom:*)")
            }
            switch rule.source {
            case .attribute(let name):
                guard !name.isEmpty, name.utf8.count <= 512 else {
                    throw DirectoryError(.invalid, "the source of '\(t)' must be 1-512 characters")
                }
            case .expression(let text):
                guard !text.isEmpty, text.utf8.count <= 4096 else {
                    throw DirectoryError(.invalid, "the expression of '\(t)' must be 1-4096 bytes")
                }
            }
        }
    }

    // MARK: The document form

    /// The JSON document form, keys sorted.
    public var document: JSONValue {
        var object: [String: JSONValue] = [:]
        for rule in rules {
            switch (rule.source, rule.update) {
            case (.attribute(let name), .everyLogin): object[rule.target] = .string(name)
            case (.attribute(let name), let update): object[rule.target] = .object(["attribute": .string(name), "update": .string(update.rawValue)])
            case (.expression(let text), let update):
                var o: [String: JSONValue] = ["expression": .string(text)]
                if update != .everyLogin { o["update"] = .string(update.rawValue) }
                object[rule.target] = .object(o)
            }
        }
        return .object(object)
    }

    /// Reads the document form (or Cognito's flat map).
    public init(document: JSONValue) throws {
        guard case .object(let object) = document else { throw DirectoryError(.invalid, "a mapping is a JSON object: pool attribute -> source") }
        var rules: [Rule] = []
        for (target, value) in object {
            switch value {
            case .string(let name):
                rules.append(Rule(target: target, source: .attribute(name)))
            case .object(let o):
                let unknown = Set(o.keys).subtracting(["attribute", "expression", "update"])
                guard unknown.isEmpty else { throw DirectoryError(.invalid, "rule '\(target)': unknown key '\(unknown.sorted()[0])'") }
                var update = Update.everyLogin
                if let u = o["update"] {
                    guard let text = u.stringValue, let parsed = Update(rawValue: text) else {
                        throw DirectoryError(.invalid, "rule '\(target)': update is every_login or first_login")
                    }
                    update = parsed
                }
                switch (o["attribute"]?.stringValue, o["expression"]?.stringValue) {
                case (let name?, nil): rules.append(Rule(target: target, source: .attribute(name), update: update))
                case (nil, let text?): rules.append(Rule(target: target, source: .expression(text), update: update))
                default: throw DirectoryError(.invalid, "rule '\(target)': give exactly one of attribute and expression, as strings")
                }
            default:
                throw DirectoryError(.invalid, "rule '\(target)': a source is an attribute name or {\"expression\": …}")
            }
        }
        self.init(rules: rules)
    }

    public init(from decoder: any Decoder) throws {
        var document = try JSONValue(from: decoder)
        // Rows written before expressions existed hold {"rules": {target: name}}.
        if case .object(let o) = document, o.count == 1, case .object(let flat)? = o["rules"] { document = .object(flat) }
        try self.init(document: document)
    }

    public func encode(to encoder: any Encoder) throws { try document.encode(to: encoder) }

    /// What changed from `old` to this mapping, rule by rule (in target order): each rule as its
    /// document text, `nil` where the rule is absent.
    public func changes(from old: AttributeMapping) -> [MappingChange] {
        func text(_ m: AttributeMapping) -> [String: String] {
            guard case .object(let o) = m.document else { return [:] }
            return o.mapValues { JSONValue.serialize($0, sortedKeys: true) }
        }
        let before = text(old), after = text(self)
        return Set(before.keys).union(after.keys).sorted().compactMap { target in
            before[target] == after[target] ? nil : MappingChange(target: target, before: before[target], after: after[target])
        }
    }
}

/// One rule's change between two versions of a mapping.
public struct MappingChange: Sendable, Codable, Equatable {
    public var target: String
    /// The rule as JSON before and after; `nil` when it did not exist.
    public var before: String?
    public var after: String?
    public init(target: String, before: String?, after: String?) {
        self.target = target
        self.before = before
        self.after = after
    }
}

/// A saved version of a provider's mapping: who saved it, when, and what changed.
public struct MappingVersion: Sendable, Codable, Equatable {
    public var poolID: PoolID
    public var providerName: String
    /// 1 for the mapping the provider was created with, then one more per change.
    public var version: Int
    public var mapping: AttributeMapping
    public var author: String
    public var createdAt: Date
    public var changes: [MappingChange]
    /// Why it was saved, when the saver said (for example "rollback to 3").
    public var note: String?

    public init(poolID: PoolID, providerName: String, version: Int, mapping: AttributeMapping, author: String, createdAt: Date, changes: [MappingChange], note: String? = nil) {
        self.poolID = poolID
        self.providerName = providerName
        self.version = version
        self.mapping = mapping
        self.author = author
        self.createdAt = createdAt
        self.changes = changes
        self.note = note
    }
}

/// A verified login kept, redacted, so an admin can preview a mapping against what a provider
/// really sends. Values that identify a person are masked (letters to `x`, digits to `9`, an email
/// keeping its domain); names, structure and organisational values (groups, domains) stay.
public struct LoginSample: Sendable, Codable, Equatable {
    public var poolID: PoolID
    public var providerName: String
    /// Orders samples: see `newID(at:)`.
    public var id: String
    public var capturedAt: Date
    public var attributes: [String: [String]]

    /// An id that sorts by capture time (milliseconds), then by the order this process made ids
    /// in (so ids of one millisecond keep their order), then at random (across processes).
    public static func newID(at date: Date) -> String {
        func padded(_ n: Int64, _ width: Int) -> String {
            let digits = String(n)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        let ms = max(0, Int64(date.timeIntervalSince1970 * 1000))
        let n = Int64(idSequence.add(1, ordering: .relaxed).newValue % 1_000_000_000_000)
        return padded(ms, 14) + "-" + padded(n, 12) + "-" + Secrets.randomToken(bytes: 6)
    }

    private static let idSequence = Atomic<Int>(0)

    public init(poolID: PoolID, providerName: String, id: String, capturedAt: Date, attributes: [String: [String]]) {
        self.poolID = poolID
        self.providerName = providerName
        self.id = id
        self.capturedAt = capturedAt
        self.attributes = attributes
    }

    /// Attributes kept as sent: they describe the organisation or the login, not the person.
    public static let keptAsSent: Set<String> = [
        "groups", "roles", "email_verified", "phone_number_verified", "locale", "zoneinfo", "amr", "acr", "iss", "aud", "azp", "tid", "hd",
        "http://schemas.xmlsoap.org/claims/Group", "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/role", "http://schemas.microsoft.com/identity/claims/tenantid",
    ]

    /// Masks one login's values for keeping.
    public static func redact(_ attributes: [String: [String]]) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for (name, values) in attributes {
            let lower = name.lowercased()
            if keptAsSent.contains(name) || lower.hasSuffix("group") || lower.hasSuffix("groups") || lower.hasSuffix("role") || lower.hasSuffix("roles") {
                out[name] = values
            } else {
                out[name] = values.map(mask)
            }
        }
        return out
    }

    static func mask(_ value: String) -> String {
        if value == "true" || value == "false" { return value }
        // ASCII (nearly every value): the same rule over bytes, without Unicode property lookups.
        if value.utf8.allSatisfy({ $0 < 0x80 }) {
            var bytes = Array(value.utf8)
            let ats = bytes.indices.filter { bytes[$0] == UInt8(ascii: "@") }
            let end = ats.count == 1 ? ats[0] : bytes.count
            for i in 0..<end {
                switch bytes[i] {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"): bytes[i] = UInt8(ascii: "x")
                case UInt8(ascii: "0")...UInt8(ascii: "9"): bytes[i] = UInt8(ascii: "9")
                default: break
                }
            }
            return String(decoding: bytes, as: UTF8.self)
        }
        var local = Substring(value)
        var domain: Substring = ""
        if let at = value.lastIndex(of: "@"), value.firstIndex(of: "@") == at {
            local = value[..<at]
            domain = value[at...]
        }
        var masked = String.UnicodeScalarView()
        for c in local.unicodeScalars {
            if c.properties.isAlphabetic {
                masked.append("x")
            } else if c.properties.numericType != nil {
                masked.append("9")
            } else {
                masked.append(c)
            }
        }
        return String(masked) + domain
    }
}

/// A custom attribute a pool declares (`custom:department`), with the type its values must have.
public struct CustomAttribute: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case string, number, boolean
    }
    /// With the `custom:` prefix.
    public var name: String
    public var type: Kind
    /// Longest value, in bytes (strings only).
    public var maximumLength: Int

    public init(name: String, type: Kind = .string, maximumLength: Int = 2048) {
        self.name = name
        self.type = type
        self.maximumLength = maximumLength
    }

    /// `custom:` then 1-32 of `A-Z a-z 0-9 _ -`.
    public static func isValidName(_ name: String) -> Bool {
        guard name.hasPrefix("custom:") else { return false }
        let rest = name.utf8.dropFirst(7)
        return (1...32).contains(rest.count) && rest.allSatisfy { c in
            (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x5F || c == 0x2D
        }
    }

    public func validate() throws {
        guard Self.isValidName(name) else { throw DirectoryError(.invalid, "a custom attribute is named custom: then 1-32 of A-Z a-z 0-9 _ -") }
        guard (1...2048).contains(maximumLength) else { throw DirectoryError(.invalid, "a custom attribute's maximum length is 1-2048 bytes") }
    }
}

/// An upstream identity provider configured in a pool.
public struct IdentityProvider: Sendable, Codable, Equatable {
    public var poolID: PoolID
    /// The name apps pass as `identity_provider` (like Cognito's ProviderName); `[A-Za-z0-9.-]{1,32}`.
    public var name: String
    public var kind: ProviderKind
    public var oidc: OIDCProviderSettings?
    public var saml: SAMLProviderSettings?
    /// The upstream client secret, sealed with the master key (purpose `provider-secret:{pool}/{name}`).
    public var sealedClientSecret: String?
    public var attributeMapping: AttributeMapping
    /// Identifiers (typically email domains) that route `idp_identifier` to this provider.
    public var idpIdentifiers: [String]
    public var createdAt: Date
    /// Linking at first login; absent means a new user each time, with email not trusted.
    public var linking: LinkSettings? = nil

    public var linkSettings: LinkSettings { linking ?? LinkSettings() }

    public init(
        poolID: PoolID, name: String, kind: ProviderKind, oidc: OIDCProviderSettings?, sealedClientSecret: String?,
        attributeMapping: AttributeMapping, idpIdentifiers: [String] = [], createdAt: Date, saml: SAMLProviderSettings? = nil
    ) {
        self.poolID = poolID
        self.name = name
        self.kind = kind
        self.oidc = oidc
        self.saml = saml
        self.sealedClientSecret = sealedClientSecret
        self.attributeMapping = attributeMapping
        self.idpIdentifiers = idpIdentifiers
        self.createdAt = createdAt
    }

    public static func secretPurpose(pool: PoolID, provider: String) -> String { "provider-secret:\(pool)/\(provider)" }

    public func validate() throws {
        let ok = name.utf8.allSatisfy { c in
            (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x2E || c == 0x2D
        }
        guard ok, (1...32).contains(name.utf8.count) else {
            // No '_': usernames are `{provider}_{subject}`, and the first '_' must end the provider name.
            throw DirectoryError(.invalid, "a provider name is 1-32 characters of A-Z a-z 0-9 . -")
        }
        switch kind {
        case .oidc:
            guard let oidc else { throw DirectoryError(.invalid, "an OIDC provider needs its settings") }
            try oidc.validate()
        case .saml:
            guard let saml else { throw DirectoryError(.invalid, "a SAML provider needs its settings") }
            try saml.validate()
        }
        try attributeMapping.validate()
        for id in idpIdentifiers where id.isEmpty || id.utf8.count > 255 || id != id.lowercased() {
            throw DirectoryError(.invalid, "IdP identifiers are 1-255 lowercase characters")
        }
    }
}

/// A user of a pool. `id` is the stable `sub` of issued tokens.
public struct User: Sendable, Codable, Equatable {
    public var poolID: PoolID
    public var id: String
    public var username: String
    public var attributes: [String: String]
    public var enabled: Bool
    public var createdAt: Date
    public var updatedAt: Date

    public init(poolID: PoolID, id: String, username: String, attributes: [String: String], enabled: Bool = true, createdAt: Date, updatedAt: Date) {
        self.poolID = poolID
        self.id = id
        self.username = username
        self.attributes = attributes
        self.enabled = enabled
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// One upstream identity joined to a user, keyed by (pool, provider, upstream subject).
public struct LinkedIdentity: Sendable, Codable, Equatable {
    public var poolID: PoolID
    public var providerName: String
    public var providerKind: ProviderKind
    public var upstreamIssuer: String
    public var upstreamSubject: String
    public var userID: String
    public var createdAt: Date

    public init(poolID: PoolID, providerName: String, providerKind: ProviderKind, upstreamIssuer: String, upstreamSubject: String, userID: String, createdAt: Date) {
        self.poolID = poolID
        self.providerName = providerName
        self.providerKind = providerKind
        self.upstreamIssuer = upstreamIssuer
        self.upstreamSubject = upstreamSubject
        self.userID = userID
        self.createdAt = createdAt
    }
}

/// A group of users in a pool; its name appears in the `cognito:groups`-style groups claim.
public struct Group: Sendable, Codable, Equatable {
    public var poolID: PoolID
    public var name: String
    public var description: String
    public init(poolID: PoolID, name: String, description: String = "") {
        self.poolID = poolID
        self.name = name
        self.description = description
    }
}
