public import Foundation
import GatehouseCore

/// SAML bindings Gatehouse speaks.
public enum SAMLBinding: String, Sendable, Codable {
    case redirect = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
    case post = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
}

/// One endpoint of an IdP: where, over which binding.
public struct SAMLEndpoint: Sendable, Equatable, Codable {
    public let binding: String
    public let location: String
    public let responseLocation: String?
}

/// What Gatehouse reads from an identity provider's metadata (SAML metadata 2.0, §2.4.3).
public struct SAMLIdentityProviderMetadata: Sendable, Equatable {
    public let entityID: String
    /// Every signing certificate at once: responses signed by any of them verify (rollover).
    public let signingCertificates: [SAMLCertificate]
    public let encryptionCertificates: [SAMLCertificate]
    public let singleSignOnServices: [SAMLEndpoint]
    public let singleLogoutServices: [SAMLEndpoint]
    public let nameIDFormats: [String]
    public let wantAuthnRequestsSigned: Bool
    public let validUntil: Date?
    /// `cacheDuration`, in seconds.
    public let cacheDuration: TimeInterval?
    /// Whether a signature over the metadata was verified against a pinned certificate.
    public let signatureVerified: Bool

    /// Largest metadata document accepted (aggregates such as InCommon's are far larger; import one
    /// entity from them instead).
    public static let maximumSize = 1 << 20

    /// Reads metadata. With `entityID`, that entity is chosen from an `EntitiesDescriptor` (and must
    /// match a lone `EntityDescriptor`). With `pinnedCertificate`, the document must carry an enveloped
    /// signature on its root made by that certificate's key. Expired metadata (`validUntil` passed) is
    /// refused.
    public static func parse(
        _ xml: [UInt8], entityID wanted: String? = nil, pinnedCertificate: SAMLCertificate? = nil, now: Date
    ) throws -> SAMLIdentityProviderMetadata {
        guard xml.count <= maximumSize else { throw ConfigurationError("metadata larger than \(maximumSize) bytes") }
        let tree: XMLTree
        do { tree = try XMLTree.parse(xml, what: "the metadata") } catch let e as VerificationError {
            throw ConfigurationError(e.description)
        }
        guard let root = tree.root else { throw ConfigurationError("the metadata is empty") }
        var signatureVerified = false
        if let pinnedCertificate {
            do {
                try checkUniqueIDs(tree)
                guard let signature = try SignatureCheck.signature(of: root) else {
                    throw ConfigurationError("the metadata is not signed, but a signing certificate is pinned for it")
                }
                try SignatureCheck.verify(signature, signing: root, in: tree, keys: [TrustedKey(pinnedCertificate)])
                signatureVerified = true
            } catch let e as VerificationError {
                throw ConfigurationError("the metadata signature is not valid: \(e)")
            }
        }
        let entity: XMLElement
        if root.is(NS.metadata, "EntityDescriptor") {
            entity = root
        } else if root.is(NS.metadata, "EntitiesDescriptor") {
            guard let wanted else { throw ConfigurationError("the metadata describes several entities: name the IdP's entity ID") }
            let all = collectEntities(root)
            guard let found = all.first(where: { $0.attribute("entityID") == wanted }) else {
                throw ConfigurationError("the metadata has no entity \(wanted)")
            }
            entity = found
        } else {
            throw ConfigurationError("the document is not SAML metadata (no EntityDescriptor)")
        }
        guard let entityID = entity.attribute("entityID"), !entityID.isEmpty else {
            throw ConfigurationError("the EntityDescriptor has no entityID")
        }
        if let wanted, wanted != entityID { throw ConfigurationError("the metadata describes \(entityID), not \(wanted)") }

        // validUntil and cacheDuration may sit on the entity and on every EntitiesDescriptor around
        // it: the earliest wins.
        var validUntil: Date?
        var cacheDuration: TimeInterval?
        var path: [XMLElement] = []
        var cursor: XMLElement? = entity
        while let e = cursor { path.append(e); cursor = e.parent }
        for element in path {
            if let text = element.attribute("validUntil") {
                guard let t = SAMLTime.parse(text) else { throw ConfigurationError("unreadable validUntil \(text)") }
                validUntil = min(validUntil ?? t, t)
            }
            if let text = element.attribute("cacheDuration") {
                guard let d = parseDuration(text) else { throw ConfigurationError("unreadable cacheDuration \(text)") }
                cacheDuration = min(cacheDuration ?? d, d)
            }
        }
        if let validUntil, validUntil <= now {
            throw ConfigurationError("the metadata expired at \(SAMLTime.format(validUntil))")
        }

        let descriptors = entity.children(NS.metadata, "IDPSSODescriptor").filter {
            ($0.attribute("protocolSupportEnumeration") ?? "").split(separator: " ").contains("urn:oasis:names:tc:SAML:2.0:protocol")
        }
        guard descriptors.count == 1, let idp = descriptors.first else {
            throw ConfigurationError("the entity has no SAML 2.0 IDPSSODescriptor")
        }
        var signing: [SAMLCertificate] = []
        var encryption: [SAMLCertificate] = []
        for descriptor in idp.children(NS.metadata, "KeyDescriptor") {
            let use = descriptor.attribute("use")
            let certificates = descriptor.children(NS.dsig, "KeyInfo").flatMap { $0.children(NS.dsig, "X509Data") }
                .flatMap { $0.children(NS.dsig, "X509Certificate") }
            for element in certificates {
                let certificate: SAMLCertificate
                do { certificate = try SAMLCertificate(base64OrPEM: try element.text()) } catch {
                    throw ConfigurationError("a KeyDescriptor certificate cannot be read: \(error)")
                }
                if use == nil || use == "signing", !signing.contains(certificate) { signing.append(certificate) }
                if use == nil || use == "encryption", !encryption.contains(certificate) { encryption.append(certificate) }
            }
        }
        guard !signing.isEmpty else { throw ConfigurationError("the IdP publishes no signing certificate") }
        func endpoints(_ name: StaticString) -> [SAMLEndpoint] {
            idp.children(NS.metadata, name).compactMap { e in
                guard let binding = e.attribute("Binding"), let location = e.attribute("Location") else { return nil }
                return SAMLEndpoint(binding: binding, location: location, responseLocation: e.attribute("ResponseLocation"))
            }
        }
        let sso = endpoints("SingleSignOnService")
        guard sso.contains(where: { $0.binding == SAMLBinding.redirect.rawValue || $0.binding == SAMLBinding.post.rawValue }) else {
            throw ConfigurationError("the IdP has no SingleSignOnService over HTTP-Redirect or HTTP-POST")
        }
        let formats = try idp.children(NS.metadata, "NameIDFormat").map { try $0.trimmedText() }
        return SAMLIdentityProviderMetadata(
            entityID: entityID, signingCertificates: signing, encryptionCertificates: encryption, singleSignOnServices: sso,
            singleLogoutServices: endpoints("SingleLogoutService"), nameIDFormats: formats,
            wantAuthnRequestsSigned: idp.attribute("WantAuthnRequestsSigned") == "true", validUntil: validUntil,
            cacheDuration: cacheDuration, signatureVerified: signatureVerified)
    }

    /// The SSO endpoint for a binding, if the IdP has one.
    public func singleSignOn(_ binding: SAMLBinding) -> SAMLEndpoint? {
        singleSignOnServices.first { $0.binding == binding.rawValue }
    }

    public func singleLogout(_ binding: SAMLBinding) -> SAMLEndpoint? {
        singleLogoutServices.first { $0.binding == binding.rawValue }
    }

    /// Signing certificates that expire within `window` of `now` (or already have).
    public func certificatesExpiring(within window: TimeInterval, now: Date) -> [SAMLCertificate] {
        (signingCertificates + encryptionCertificates).filter { $0.notAfter <= now.addingTimeInterval(window) }
    }

    private static func collectEntities(_ element: XMLElement) -> [XMLElement] {
        element.children.flatMap { child -> [XMLElement] in
            if child.is(NS.metadata, "EntityDescriptor") { return [child] }
            if child.is(NS.metadata, "EntitiesDescriptor") { return collectEntities(child) }
            return []
        }
    }

    static func checkUniqueIDs(_ tree: XMLTree) throws {
        var ids = Set<String>()
        for element in tree.allElements() {
            for value in element.idAttributeValues() {
                guard ids.insert(value).inserted else {
                    throw VerificationError(check: "structure", reason: "the ID \(value) is used twice")
                }
            }
        }
    }

    /// An `xs:duration` (`PnYnMnDTnHnMnS`, no sign), in seconds; years and months as 365 and 30 days.
    static func parseDuration(_ text: String) -> TimeInterval? {
        var rest = Substring(text)
        guard rest.first == "P", rest.count > 1 else { return nil }
        rest = rest.dropFirst()
        var total = 0.0
        var inTime = false
        var number = ""
        var any = false
        for c in rest {
            if c == "T" {
                guard !inTime, number.isEmpty else { return nil }
                inTime = true
                continue
            }
            if c.isNumber || c == "." { number.append(c); continue }
            guard let v = Double(number) else { return nil }
            number = ""
            any = true
            switch (c, inTime) {
            case ("Y", false): total += v * 365 * 86_400
            case ("M", false): total += v * 30 * 86_400
            case ("D", false): total += v * 86_400
            case ("H", true): total += v * 3600
            case ("M", true): total += v * 60
            case ("S", true): total += v
            default: return nil
            }
        }
        guard number.isEmpty, any else { return nil }
        return total
    }
}
