public import Foundation
import Crypto
import _CryptoExtras
public import GatehouseCore

/// A private key Gatehouse signs its own tokens with.
public struct JWSSigningKey: Sendable {
    private enum Backing: Sendable {
        case p256(P256.Signing.PrivateKey)
        case rsa(_RSA.Signing.PrivateKey)
    }
    private let backing: Backing

    public var algorithm: SigningAlgorithm {
        switch backing {
        case .p256: .es256
        case .rsa: .rs256
        }
    }

    /// A new key: P-256 for ES256, RSA-2048 for RS256.
    public static func generate(_ algorithm: SigningAlgorithm) throws -> JWSSigningKey {
        switch algorithm {
        case .es256: return JWSSigningKey(backing: .p256(P256.Signing.PrivateKey()))
        case .rs256: return JWSSigningKey(backing: .rsa(try _RSA.Signing.PrivateKey(keySize: .bits2048)))
        }
    }

    /// Loads a key from PKCS#8 (or SEC1 / PKCS#1) PEM.
    public init(pem: String, algorithm: SigningAlgorithm) throws {
        switch algorithm {
        case .es256: self.backing = .p256(try P256.Signing.PrivateKey(pemRepresentation: pem))
        case .rs256: self.backing = .rsa(try _RSA.Signing.PrivateKey(pemRepresentation: pem))
        }
    }

    private init(backing: Backing) { self.backing = backing }

    public var pemRepresentation: String {
        switch backing {
        case .p256(let k): k.pemRepresentation
        case .rsa(let k): k.pemRepresentation
        }
    }

    public func sign(_ input: Data) throws -> Data {
        switch backing {
        case .p256(let k): return try k.signature(for: input).rawRepresentation
        case .rsa(let k): return try k.signature(for: input, padding: .insecurePKCS1v1_5).rawRepresentation
        }
    }

    /// The public half as a JWK with `kid`, `use: sig` and `alg`.
    public func publicJWK(kid: String) throws -> JWK {
        switch backing {
        case .p256(let k):
            let raw = k.publicKey.rawRepresentation  // x || y
            return JWK(kty: "EC", kid: kid, alg: "ES256", crv: "P-256", x: Base64URL.encode(raw.prefix(32)), y: Base64URL.encode(raw.suffix(32)))
        case .rsa(let k):
            let p = try k.publicKey.getKeyPrimitives()
            return JWK(kty: "RSA", kid: kid, alg: "RS256", n: Base64URL.encode(p.modulus), e: Base64URL.encode(p.publicExponent))
        }
    }

    /// A key ID derived from the public key: the RFC 7638 thumbprint.
    public func thumbprint() throws -> String {
        let jwk = try publicJWK(kid: "")
        let canonical: String
        switch backing {
        case .p256: canonical = "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"\(jwk.x!)\",\"y\":\"\(jwk.y!)\"}"
        case .rsa: canonical = "{\"e\":\"\(jwk.e!)\",\"kty\":\"RSA\",\"n\":\"\(jwk.n!)\"}"
        }
        return Base64URL.encode(Data(SHA256.hash(data: Data(canonical.utf8))))
    }
}
