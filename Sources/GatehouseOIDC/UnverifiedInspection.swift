import GatehouseCore
import Foundation

/// Reads a captured ID token's claims *without verifying it*, so an admin can preview an attribute
/// mapping against what a provider really sends. What it returns must never sign anyone in: it is
/// not a `VerifiedIdentity`, and only the preview path calls it.
public enum UnverifiedIDToken {
    /// The claims the mapping would see (nested objects by dotted path, arrays as several values).
    public static func claimsForPreview(_ token: String) throws -> [String: [String]] {
        let parts = token.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[1].utf8.count <= 64 * 1024, let payload = Base64URL.decode(String(parts[1])) else {
            throw UpstreamError(.verification, "not a compact JWT (three base64url parts)")
        }
        do {
            return JSONValue.flatten(try JSONValue.parseObject(payload))
        } catch {
            throw UpstreamError(.verification, "the token's payload is not a JSON object: \(error)")
        }
    }
}
