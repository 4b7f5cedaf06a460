import Foundation
public import GatehouseCore
public import GatehouseJOSE

/// What Gatehouse authenticates to a provider's token endpoint with.
public enum ClientCredential: Sendable {
    /// A public client (`none`): only `client_id`.
    case none
    /// A client secret, sent per the settings' `client_secret_basic` or `client_secret_post`.
    case secret(RedactedSecret)
    /// `private_key_jwt` (RFC 7523): an assertion signed with this key, published under `kid`.
    case privateKey(JWSSigningKey, kid: String)
    /// Sign in with Apple: the client secret is an ES256 JWT signed with the team's key.
    case apple(JWSSigningKey)

    /// The public key a provider is given for `private_key_jwt` (served by Gatehouse and printed by the CLI).
    public var publicJWKS: JWKSet? {
        guard case .privateKey(let key, let kid) = self, let jwk = try? key.publicJWK(kid: kid) else { return nil }
        return JWKSet(keys: [jwk])
    }

    /// Builds the credential for `settings` from the provider's opened secret: the secret itself,
    /// or a PEM private key (`private_key_jwt`: RSA; Apple: the team's P-256 `.p8` key).
    public static func make(settings: OIDCProviderSettings, secret: String?) throws -> ClientCredential {
        if settings.kind == .apple {
            guard let secret else { throw UpstreamError(.misconfigured, "Sign in with Apple needs the team's private key") }
            do { return .apple(try JWSSigningKey(pem: secret, algorithm: .es256)) } catch {
                throw UpstreamError(.misconfigured, "the Apple private key is not a P-256 key in PEM (the .p8 file)")
            }
        }
        switch settings.clientAuthentication {
        case .none: return .none
        case .clientSecretBasic, .clientSecretPost:
            guard let secret, !secret.isEmpty else { throw UpstreamError(.misconfigured, "\(settings.clientAuthentication.rawValue) needs a client secret") }
            return .secret(RedactedSecret(secret))
        case .privateKeyJWT:
            guard let secret, let key = try? JWSSigningKey(pem: secret, algorithm: .rs256) else {
                throw UpstreamError(.misconfigured, "private_key_jwt needs the provider's RSA private key")
            }
            return .privateKey(key, kid: try key.thumbprint())
        }
    }
}

/// Calls a provider's token endpoint with the client's authentication, and reads the answer
/// strictly: JSON, no `error` member (GitHub answers errors with HTTP 200), HTTP 200, Bearer.
struct TokenEndpoint: Sendable {
    let settings: OIDCProviderSettings
    let credential: ClientCredential
    let http: UpstreamHTTP

    /// Token endpoint errors that mean the client itself was refused (GitHub's own name included).
    static let clientRefusals: Set<String> = ["invalid_client", "unauthorized_client", "incorrect_client_credentials"]

    static let outages: Set<String> = ["temporarily_unavailable", "server_error"]

    /// Lifetime of the JWTs Gatehouse signs to authenticate itself.
    static let assertionLifetime: TimeInterval = 300

    func call(_ endpoint: String, form initial: [(String, String)], now: Date) async throws -> [String: JSONValue] {
        var form = initial
        var basic: (String, String)? = nil
        switch credential {
        case .none:
            form.append(("client_id", settings.clientID))
        case .secret(let secret):
            if settings.clientAuthentication == .clientSecretBasic {
                basic = (settings.clientID, secret.value)
            } else {
                form += [("client_id", settings.clientID), ("client_secret", secret.value)]
            }
        case .privateKey(let key, let kid):
            // RFC 7523 §3: iss and sub are the client, aud the token endpoint; a fresh jti each time.
            let claims: [String: JSONValue] = [
                "iss": .string(settings.clientID), "sub": .string(settings.clientID), "aud": .string(endpoint),
                "jti": .string(Secrets.randomToken()), "iat": .number(now.timeIntervalSince1970.rounded(.down)),
                "exp": .number((now.timeIntervalSince1970 + Self.assertionLifetime).rounded(.down)),
            ]
            form += [
                ("client_id", settings.clientID),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("client_assertion", try JWSEncoder.sign(payloadJSON: Data(JSONValue.serialize(object: claims).utf8), key: key, kid: kid)),
            ]
        case .apple(let key):
            form += [("client_id", settings.clientID), ("client_secret", try appleClientSecret(key: key, now: now))]
        }
        let response = try await http.postForm(endpoint, form: form, basicAuth: basic)
        guard let json = try? JSONValue.parseObject(response.body) else {
            throw UpstreamError(.unreachable, "token endpoint answered HTTP \(response.status) without a JSON object")
        }
        if let error = json["error"] {
            // RFC 6749 §5.2 sends a code; Facebook's Graph API an object with a type and a message.
            let code: String
            let detail: String?
            if case .object(let o) = error {
                code = Self.safeCode(o["type"]?.stringValue ?? "error")
                detail = o["message"]?.stringValue
            } else {
                code = Self.safeCode(error.stringValue ?? "error")
                detail = json["error_description"]?.stringValue
            }
            // A refused client is Gatehouse's configuration, not the person's sign-in.
            // An outage is not a refusal (an upstream refresh must not revoke anything for it).
            let kind: UpstreamError.Kind =
                response.status >= 500 || Self.outages.contains(code) ? .unreachable
                : Self.clientRefusals.contains(code) ? .misconfigured : .upstreamRefused
            throw UpstreamError(kind, "token endpoint refused: \(code)" + (detail.map { " (\(Self.safeText($0)))" } ?? ""), upstreamCode: code)
        }
        guard response.status == 200 else { throw UpstreamError(.unreachable, "token endpoint answered HTTP \(response.status)") }
        if let type = json["token_type"]?.stringValue, type.lowercased() != "bearer" {
            throw UpstreamError(.verification, "token response", failures: [.init(check: "token_type", reason: "token_type \(Self.safeCode(type)) is not Bearer")])
        }
        return json
    }

    /// Apple's client secret: `iss` the team ID, `sub` the services ID, `aud` Apple's issuer, signed
    /// ES256 under the key ID, short-lived (Apple allows up to six months; five minutes is enough).
    func appleClientSecret(key: JWSSigningKey, now: Date) throws -> String {
        guard let apple = settings.apple else { throw UpstreamError(.misconfigured, "Sign in with Apple needs the team ID and key ID") }
        let t = now.timeIntervalSince1970.rounded(.down)
        let claims: [String: JSONValue] = [
            "iss": .string(apple.teamID), "sub": .string(settings.clientID), "aud": .string(settings.issuer),
            "iat": .number(t), "exp": .number(t + Self.assertionLifetime),
        ]
        return try JWSEncoder.sign(payloadJSON: Data(JSONValue.serialize(object: claims).utf8), key: key, kid: apple.keyID)
    }

    /// An upstream's error code as it may appear in logs: at most 64 of `A-Za-z0-9_.-`.
    static func safeCode(_ s: String) -> String {
        let kept = String(s.unicodeScalars.prefix(64).filter { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "_.-".unicodeScalars.contains($0)) }.map(Character.init))
        return kept.isEmpty ? "error" : kept
    }

    /// An upstream's error description for logs: printable ASCII, at most 200 characters.
    static func safeText(_ s: String) -> String {
        String(s.unicodeScalars.prefix(200).filter { $0.value >= 0x20 && $0.value < 0x7F }.map(Character.init))
    }
}
