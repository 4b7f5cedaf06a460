public import GatehouseCore
import Foundation

/// Turns a verified upstream identity into a pool's canonical attributes with a Cognito-style flat
/// mapping (pool attribute <- upstream attribute or claim).
///
/// Pure and thread-safe. An upstream attribute that is absent leaves its pool attribute unset; a
/// multi-valued one becomes a JSON array text, as Cognito stores multi-valued SAML attributes.
public enum AttributeMapper {
    /// Pool attributes whose values are booleans; normalised to `true` / `false`.
    static let booleanAttributes: Set<String> = ["email_verified", "phone_number_verified"]

    /// Upper bound on one mapped value, so a hostile upstream cannot bloat the user record.
    public static let maximumValueLength = 2048

    public static func map(_ identity: VerifiedIdentity, with mapping: AttributeMapping) -> [String: String] {
        var out: [String: String] = [:]
        for (target, source) in mapping.rules {
            guard let values = identity.attributes[source], !values.isEmpty else { continue }
            var value: String
            if booleanAttributes.contains(target) {
                value = ["true", "1"].contains(values[0].lowercased()) ? "true" : "false"
            } else if values.count == 1 {
                value = values[0]
            } else {
                value = JSONValue.serialize(.array(values.map(JSONValue.string)))
            }
            if value.utf8.count > maximumValueLength { value = String(decoding: value.utf8.prefix(maximumValueLength), as: UTF8.self) }
            if target == "email" { value = value.trimmingWhitespace() }
            out[target] = value
        }
        return out
    }

    /// The username Gatehouse gives a user created from a federated login: `{provider}_{subject}`,
    /// as Cognito does. Deterministic, so concurrent first logins of one identity agree on it.
    public static func username(for identity: VerifiedIdentity) -> String {
        "\(identity.providerName)_\(identity.upstreamSubject)"
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
