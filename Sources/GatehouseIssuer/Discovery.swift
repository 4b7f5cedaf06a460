public import GatehouseCore

/// The OpenID Provider metadata of one pool (OpenID Connect Discovery 1.0 §3).
public enum ProviderMetadata {
    public static func document(issuer: String, algorithm: SigningAlgorithm) -> [String: JSONValue] {
        func s(_ x: [String]) -> JSONValue { .array(x.map(JSONValue.string)) }
        return [
            "issuer": .string(issuer),
            "authorization_endpoint": .string(issuer + "/oauth2/authorize"),
            "token_endpoint": .string(issuer + "/oauth2/token"),
            "userinfo_endpoint": .string(issuer + "/oauth2/userInfo"),
            "revocation_endpoint": .string(issuer + "/oauth2/revoke"),
            "end_session_endpoint": .string(issuer + "/logout"),
            "jwks_uri": .string(issuer + "/.well-known/jwks.json"),
            "response_types_supported": s(["code"]),
            "response_modes_supported": s(["query"]),
            "grant_types_supported": s(["authorization_code", "refresh_token"]),
            "subject_types_supported": s(["public"]),
            "id_token_signing_alg_values_supported": s([algorithm.rawValue]),
            "scopes_supported": s(["openid", "email", "phone", "profile", "address", "gatehouse.links"]),
            "token_endpoint_auth_methods_supported": s(["client_secret_basic", "client_secret_post", "none"]),
            "revocation_endpoint_auth_methods_supported": s(["client_secret_basic", "client_secret_post", "none"]),
            "code_challenge_methods_supported": s(["S256"]),
            "claims_supported": s(["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "email", "email_verified",
                                   "name", "given_name", "family_name", "preferred_username", "username", "groups", "identities"]),
            "authorization_response_iss_parameter_supported": .bool(true),
        ]
    }
}
