public import Foundation
public import Crypto
public import _CryptoExtras
public import GatehouseCore

/// A JSON Web Key (RFC 7517), public members only.
public struct JWK: Sendable, Codable, Equatable {
    public var kty: String
    public var kid: String?
    public var use: String?
    public var alg: String?
    public var n: String?
    public var e: String?
    public var crv: String?
    public var x: String?
    public var y: String?
    /// Present only if someone put private material in a public set; such a key is refused.
    public var d: String?

    public init(kty: String, kid: String?, use: String? = "sig", alg: String?, n: String? = nil, e: String? = nil, crv: String? = nil, x: String? = nil, y: String? = nil) {
        self.kty = kty
        self.kid = kid
        self.use = use
        self.alg = alg
        self.n = n
        self.e = e
        self.crv = crv
        self.x = x
        self.y = y
        self.d = nil
    }
}

/// A JWK Set (RFC 7517 §5).
public struct JWKSet: Sendable, Codable, Equatable {
    public var keys: [JWK]
    public init(keys: [JWK]) { self.keys = keys }
}

/// A public key that can check JWS signatures, made once from a JWK.
///
/// The key knows its type; `JWSAlgorithm.verify` refuses an algorithm that does not fit it, so a key
/// published as RSA can never be used as an HMAC secret or an EC key.
public enum JWSVerificationKey: Sendable {
    case rsa(_RSA.Signing.PublicKey)
    case p256(P256.Signing.PublicKey)
    case p384(P384.Signing.PublicKey)

    public init(jwk: JWK) throws {
        guard jwk.d == nil else { throw VerificationError(check: "jwks", reason: "a published key carries private material") }
        if let use = jwk.use, use != "sig" { throw VerificationError(check: "jwks", reason: "key \(jwk.kid ?? "?") is not for signatures") }
        switch jwk.kty {
        case "RSA":
            guard let n = jwk.n.flatMap(Base64URL.decode), let e = jwk.e.flatMap(Base64URL.decode) else {
                throw VerificationError(check: "jwks", reason: "RSA key without n or e")
            }
            do { self = .rsa(try _RSA.Signing.PublicKey(n: n, e: e)) } catch {
                throw VerificationError(check: "jwks", reason: "RSA key refused (must be at least 2048 bits)")
            }
        case "EC":
            guard let x = jwk.x.flatMap(Base64URL.decode), let y = jwk.y.flatMap(Base64URL.decode) else {
                throw VerificationError(check: "jwks", reason: "EC key without x or y")
            }
            do {
                switch jwk.crv {
                case "P-256" where x.count != 32 || y.count != 32, "P-384" where x.count != 48 || y.count != 48:
                    throw VerificationError(check: "jwks", reason: "EC coordinates have the wrong length for \(jwk.crv ?? "")")
                case "P-256": self = .p256(try P256.Signing.PublicKey(x963Representation: [0x04] + x + y))
                case "P-384": self = .p384(try P384.Signing.PublicKey(x963Representation: [0x04] + x + y))
                default: throw VerificationError(check: "jwks", reason: "unsupported curve \(jwk.crv ?? "none")")
                }
            } catch let e as VerificationError { throw e } catch {
                throw VerificationError(check: "jwks", reason: "EC key is not a point on its curve")
            }
        default:
            throw VerificationError(check: "jwks", reason: "unsupported key type \(jwk.kty)")
        }
    }
}

/// The JWS algorithms Gatehouse knows (RFC 7518). `none` and HMAC are deliberately absent.
public enum JWSAlgorithm: String, Sendable, CaseIterable {
    case rs256 = "RS256", rs384 = "RS384", rs512 = "RS512"
    case ps256 = "PS256", ps384 = "PS384", ps512 = "PS512"
    case es256 = "ES256", es384 = "ES384"

    /// Whether `signature` over `input` is valid under `key` with this algorithm. A key of the wrong
    /// type for the algorithm is simply a `false`.
    public func verify(signature: Data, input: Data, key: JWSVerificationKey) -> Bool {
        switch (self, key) {
        case (.rs256, .rsa(let k)): return k.isValidSignature(.init(rawRepresentation: signature), for: SHA256.hash(data: input), padding: .insecurePKCS1v1_5)
        case (.rs384, .rsa(let k)): return k.isValidSignature(.init(rawRepresentation: signature), for: SHA384.hash(data: input), padding: .insecurePKCS1v1_5)
        case (.rs512, .rsa(let k)): return k.isValidSignature(.init(rawRepresentation: signature), for: SHA512.hash(data: input), padding: .insecurePKCS1v1_5)
        case (.ps256, .rsa(let k)): return k.isValidSignature(.init(rawRepresentation: signature), for: SHA256.hash(data: input), padding: .PSS)
        case (.ps384, .rsa(let k)): return k.isValidSignature(.init(rawRepresentation: signature), for: SHA384.hash(data: input), padding: .PSS)
        case (.ps512, .rsa(let k)): return k.isValidSignature(.init(rawRepresentation: signature), for: SHA512.hash(data: input), padding: .PSS)
        case (.es256, .p256(let k)):
            guard signature.count == 64, let s = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return k.isValidSignature(s, for: SHA256.hash(data: input))
        case (.es384, .p384(let k)):
            guard signature.count == 96, let s = try? P384.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return k.isValidSignature(s, for: SHA384.hash(data: input))
        default:
            return false
        }
    }
}
