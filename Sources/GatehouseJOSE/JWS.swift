public import Foundation
public import GatehouseCore

/// A compact JWS split into its parts, nothing verified yet.
///
/// Parsing checks only the form: exactly three base64url parts, a JSON object header and payload,
/// and the size limit. Reading claims from it before a signature check is the caller's mistake to
/// avoid; `JWSVerifier` in the adapters is the only path that returns trusted claims.
public struct UnverifiedJWS: Sendable {
    public let header: [String: JSONValue]
    public let claims: [String: JSONValue]
    public let signingInput: Data
    public let signature: Data

    /// Tokens larger than this are refused before any decoding.
    public static let maximumSize = 16 * 1024

    public init(compact token: String) throws {
        guard token.utf8.count <= Self.maximumSize else {
            throw VerificationError(check: "format", reason: "token larger than \(Self.maximumSize) bytes")
        }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            throw VerificationError(check: "format", reason: parts.count == 5 ? "encrypted tokens (JWE) are not accepted" : "not a compact JWS")
        }
        guard let h = Base64URL.decode(parts[0]), let p = Base64URL.decode(parts[1]), let s = Base64URL.decode(parts[2]) else {
            throw VerificationError(check: "format", reason: "a part is not base64url")
        }
        let decoder = JSONDecoder()
        guard let header = try? decoder.decode([String: JSONValue].self, from: h) else {
            throw VerificationError(check: "format", reason: "header is not a JSON object")
        }
        guard let claims = try? decoder.decode([String: JSONValue].self, from: p) else {
            throw VerificationError(check: "format", reason: "payload is not a JSON object")
        }
        self.header = header
        self.claims = claims
        self.signingInput = Data(token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        self.signature = s
    }

    public var algorithm: String? { header["alg"]?.stringValue }
    public var keyID: String? { header["kid"]?.stringValue }
}

/// Builds compact JWS strings.
public enum JWSEncoder {
    /// Signs `payload` (already JSON) with `key` under a header of `alg`, `kid` and `typ`.
    public static func sign(payloadJSON: Data, key: JWSSigningKey, kid: String, type: String = "JWT") throws -> String {
        let header = "{\"alg\":\"\(key.algorithm.rawValue)\",\"kid\":\"\(kid)\",\"typ\":\"\(type)\"}"
        let input = Base64URL.encode(Data(header.utf8)) + "." + Base64URL.encode(payloadJSON)
        let signature = try key.sign(Data(input.utf8))
        return input + "." + Base64URL.encode(signature)
    }
}
