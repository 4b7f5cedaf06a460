public import Foundation
import GatehouseCore

/// What `gatehouse saml verify` does: one response checked exactly as the ACS checks it (without
/// the replay cache and the browser binding, which need a live login), reported for an admin.
public enum SAMLResponseCheck {
    public struct Report: Sendable {
        public let verified: Bool
        /// JSON: the verified identity, or every failed check.
        public let text: String
    }

    /// Reads a response given as raw XML, as the base64 `SAMLResponse` form value, or as that value
    /// still percent-encoded (as copied from a browser's network panel).
    public static func decode(_ input: String) -> [UInt8]? {
        let trimmed = input.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("<") { return Array(trimmed.utf8) }
        var value = trimmed
        if value.hasPrefix("SAMLResponse=") { value = String(value.dropFirst("SAMLResponse=".count)) }
        if value.contains("%"), let unescaped = FormEncoding.decodeComponent(Substring(value)) { value = unescaped }
        return Data(base64Encoded: value, options: .ignoreUnknownCharacters).map { Array($0) }
    }

    public static func run(
        response input: String, metadataXML: String, spEntityID: String, acsURL: String, requestID: String?,
        signatures: SAMLSignatureRequirement, clockSkew: TimeInterval, now: Date, decryptionKey: SAMLSigningCredential? = nil
    ) -> Report {
        func failed(_ failures: [VerificationError.Failure]) -> Report {
            let list: [JSONValue] = failures.map { .object(["check": .string($0.check), "reason": .string($0.reason)]) }
            return Report(verified: false, text: JSONValue.serialize(object: ["verified": .bool(false), "failures": .array(list)]))
        }
        guard let xml = decode(input) else {
            return failed([.init(check: "encoding", reason: "the response is neither XML nor base64")])
        }
        let metadata: SAMLIdentityProviderMetadata
        let verifier: SAMLResponseVerifier
        do {
            metadata = try SAMLIdentityProviderMetadata.parse(Array(metadataXML.utf8), now: now)
            verifier = try SAMLResponseVerifier(signingCertificates: metadata.signingCertificates, decryptionKey: decryptionKey)
        } catch {
            return failed([.init(check: "metadata", reason: "\(error)")])
        }
        let policy = SAMLResponsePolicy(
            spEntityID: spEntityID, acsURL: acsURL, idpEntityID: metadata.entityID, expectedRequestID: requestID,
            clockSkew: clockSkew, signatures: signatures)
        do {
            let a = try verifier.verify(xml: xml, policy: policy, now: now)
            let attributes: [JSONValue] = a.attributes.map { attribute in
                var o: [String: JSONValue] = ["name": .string(attribute.name), "values": .array(attribute.values.map(JSONValue.string))]
                if let f = attribute.friendlyName { o["friendlyName"] = .string(f) }
                if let n = attribute.nameFormat { o["nameFormat"] = .string(n) }
                return .object(o)
            }
            var out: [String: JSONValue] = [
                "verified": .bool(true), "issuer": .string(a.issuer), "assertionID": .string(a.assertionID),
                "nameID": .string(a.nameID), "attributes": .array(attributes),
                "signed": .array((a.signedResponse ? [JSONValue.string("Response")] : []) + (a.signedAssertion ? [.string("Assertion")] : [])),
                "encrypted": .bool(a.wasEncrypted),
                "replayableUntil": .string(SAMLTime.format(a.replayableUntil)),
            ]
            if let v = a.nameIDFormat { out["nameIDFormat"] = .string(v) }
            if let v = a.sessionIndex { out["sessionIndex"] = .string(v) }
            if let v = a.authnInstant { out["authnInstant"] = .string(SAMLTime.format(v)) }
            if let v = a.authnContextClassRef { out["authnContextClassRef"] = .string(v) }
            if let v = a.inResponseTo { out["inResponseTo"] = .string(v) }
            return Report(verified: true, text: JSONValue.serialize(object: out))
        } catch let e as VerificationError {
            return failed(e.failures)
        } catch {
            return failed([.init(check: "internal", reason: "\(error)")])
        }
    }
}
