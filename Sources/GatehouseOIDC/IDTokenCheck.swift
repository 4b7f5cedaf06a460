public import Foundation
public import GatehouseCore
import GatehouseJOSE

/// What `gatehouse oidc verify` does, as a library call: verify one ID token exactly as the adapter
/// would and describe the outcome for an admin.
public enum IDTokenCheck {
    public struct Report: Sendable {
        public let verified: Bool
        /// JSON of the verified claims, or one line per failed check.
        public let text: String
    }

    public static func run(token: String, keys: any VerificationKeySource, policy: IDTokenPolicy, now: Date) async -> Report {
        do {
            let verified = try await IDTokenVerifier.verify(token.trimmingCharacters(in: .whitespacesAndNewlines), keys: keys, policy: policy, now: now)
            let data = (try? JSONSerialization.data(withJSONObject: JSONSerialization.jsonObject(with: Data(JSONValue.serialize(object: verified.claims).utf8)), options: [.prettyPrinted, .sortedKeys])) ?? Data()
            return Report(verified: true, text: String(decoding: data, as: UTF8.self))
        } catch let e as VerificationError {
            return Report(verified: false, text: e.failures.map { "FAILED \($0.check): \($0.reason)" }.joined(separator: "\n"))
        } catch {
            return Report(verified: false, text: "FAILED: \(error)")
        }
    }

    /// Parses `--now`: ISO 8601 with or without fractional seconds.
    public static func parseInstant(_ text: String) -> Date? {
        let f = ISO8601DateFormatter()
        if let d = f.date(from: text) { return d }
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: text)
    }
}
