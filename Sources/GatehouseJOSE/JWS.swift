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
        var token = token
        token.makeContiguousUTF8()
        // The parts are written to locals rather than returned in a generic container, whose type
        // the runtime would look up on every call.
        var h: [UInt8] = [], p: [UInt8] = [], s = Data(), signingInput = Data()
        let split = try token.utf8.withContiguousStorageIfAvailable { all throws -> Void in
            var dots = (0, 0)
            var count = 0
            for i in 0..<all.count where all[i] == UInt8(ascii: ".") {
                count += 1
                if count == 1 { dots.0 = i } else if count == 2 { dots.1 = i } else if count > 4 { break }
            }
            guard count == 2 else {
                throw VerificationError(check: "format", reason: count == 4 ? "encrypted tokens (JWE) are not accepted" : "not a compact JWS")
            }
            guard let header = Base64URL.decodeToArray(bytes: UnsafeBufferPointer(rebasing: all[0..<dots.0])),
                let payload = Base64URL.decodeToArray(bytes: UnsafeBufferPointer(rebasing: all[(dots.0 + 1)..<dots.1])),
                let signature = Base64URL.decodeToArray(bytes: UnsafeBufferPointer(rebasing: all[(dots.1 + 1)...]))
            else { throw VerificationError(check: "format", reason: "a part is not base64url") }
            h = header
            p = payload
            s = Data(signature)
            signingInput = Data(UnsafeBufferPointer(rebasing: all[0..<dots.1]))
        }
        guard split != nil else { throw VerificationError(check: "format", reason: "not a compact JWS") }
        guard let header = try? JSONValue.parseObject(bytes: h) else {
            throw VerificationError(check: "format", reason: "header is not a JSON object (or repeats a member)")
        }
        guard let claims = try? JSONValue.parseObject(bytes: p) else {
            throw VerificationError(check: "format", reason: "payload is not a JSON object (or repeats a member)")
        }
        self.header = header
        self.claims = claims
        self.signingInput = signingInput
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
