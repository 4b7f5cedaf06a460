public import Foundation
import Crypto

/// Random values and one-way hashes for bearer secrets (codes, refresh tokens, client secrets, state).
public enum Secrets {
    /// A fresh random value of `bytes` bytes, base64url encoded (256 bits by default).
    public static func randomToken(bytes: Int = 32) -> String {
        var generator = SystemRandomNumberGenerator()
        let raw = (0..<bytes).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return Base64URL.encode(raw)
    }

    /// The SHA-256 of a bearer secret, base64url encoded: what the Directory stores instead of it.
    ///
    /// Bearer secrets made by `randomToken` carry 256 bits of entropy, so a fast hash is enough.
    public static func hash(_ secret: String) -> String {
        Base64URL.encode(Data(SHA256.hash(data: Data(secret.utf8))))
    }

    /// Compares two strings in time independent of where they first differ.
    public static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<x.count { diff |= x[i] ^ y[i] }
        return diff == 0
    }

    /// The PKCE S256 challenge for a verifier (RFC 7636 §4.2).
    public static func pkceChallenge(verifier: String) -> String {
        Base64URL.encode(Data(SHA256.hash(data: Data(verifier.utf8))))
    }

    /// Whether a PKCE verifier has the form RFC 7636 §4.1 requires: 43–128 unreserved characters.
    public static func isWellFormedPKCEVerifier(_ v: String) -> Bool {
        guard (43...128).contains(v.utf8.count) else { return false }
        return v.utf8.allSatisfy { c in
            (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39)
                || c == 0x2D || c == 0x2E || c == 0x5F || c == 0x7E
        }
    }
}

/// The key that encrypts secrets at rest (signing keys, upstream client secrets).
///
/// It comes from the environment or a file, never from the database. Each sealed value is bound
/// to a purpose string (for example `signing-key:pool/kid`) as AES-GCM associated data, so a
/// ciphertext copied into another row does not open there.
public struct MasterKey: Sendable {
    private let key: SymmetricKey

    /// - Parameter base64: 32 random bytes in standard base64.
    public init(base64: String) throws {
        guard let raw = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)),
            raw.count == 32
        else { throw ConfigurationError("the master key must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)") }
        self.key = SymmetricKey(data: raw)
    }

    /// A new random master key, in base64: what `gatehouse` writes on a first dev start.
    public static func generateBase64() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Data($0).base64EncodedString() }
    }

    public func seal(_ plaintext: Data, purpose: String) throws -> String {
        let box = try AES.GCM.seal(plaintext, using: key, authenticating: Data(purpose.utf8))
        guard let combined = box.combined else { throw ConfigurationError("AES-GCM produced no output") }
        return "v1." + Base64URL.encode(combined)
    }

    public func open(_ sealed: String, purpose: String) throws -> Data {
        guard sealed.hasPrefix("v1."), let combined = Base64URL.decode(sealed.dropFirst(3)) else {
            throw ConfigurationError("sealed secret has an unknown format")
        }
        do {
            let box = try AES.GCM.SealedBox(combined: combined)
            return try AES.GCM.open(box, using: key, authenticating: Data(purpose.utf8))
        } catch {
            throw ConfigurationError("sealed secret does not open with this master key (\(purpose))")
        }
    }
}
