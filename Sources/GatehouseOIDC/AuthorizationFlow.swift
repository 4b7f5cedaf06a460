import Foundation
import GatehouseCore

/// The browser half of the authorization code flow, shared by the OpenID and OAuth 2.0 adapters:
/// the authorization request, and the checks of the authorization response before any code is spent.
enum AuthorizationFlow {
    static func requestURL(endpoint: String, settings: OIDCProviderSettings, state: UpstreamLoginState, openID: Bool) throws -> URL {
        guard var components = URLComponents(string: endpoint) else {
            throw UpstreamError(.misconfigured, "authorization endpoint is not a URL")
        }
        var items: [(String, String)] = (components.queryItems ?? []).map { ($0.name, $0.value ?? "") }
        items += [
            ("response_type", "code"), ("client_id", settings.clientID), ("redirect_uri", state.callbackURL),
            ("scope", settings.scopes.joined(separator: " ")), ("state", state.state),
            ("code_challenge", Secrets.pkceChallenge(verifier: state.pkceVerifier)), ("code_challenge_method", "S256"),
        ]
        if openID { items.append(("nonce", state.nonce)) }
        if settings.mode == .formPost { items.append(("response_mode", "form_post")) }
        if state.forceFreshLogin {
            // max_age=0 also obliges an OpenID provider to state auth_time (OpenID Connect Core 3.1.2.1).
            items.append(("prompt", "login"))
            if openID { items.append(("max_age", "0")) }
        }
        // The admin's extra parameters (Google's access_type, a prompt=select_account) never
        // replace one Gatehouse sets.
        let reserved = Set(items.map(\.0))
        for (name, value) in (settings.authorizationParameters ?? [:]).sorted(by: { $0.key < $1.key }) where !reserved.contains(name) {
            items.append((name, value))
        }
        components.percentEncodedQuery = FormEncoding.encode(items)
        guard let url = components.url else { throw UpstreamError(.misconfigured, "cannot build the authorization URL") }
        return url
    }

    /// Checks the authorization response and returns its code: the response mode it was asked for,
    /// the RFC 9207 `iss` (required when the provider advertises it), the `state` of this login,
    /// then either the upstream's error or a code.
    static func code(from callback: UpstreamCallback, state: UpstreamLoginState, settings: OIDCProviderSettings, isIssuer: (String) -> Bool, issAdvertised: Bool) throws -> String {
        let p = callback.parameters
        func refuse(_ check: String, _ reason: String) -> UpstreamError {
            UpstreamError(.verification, "authorization response", failures: [.init(check: check, reason: reason)])
        }
        // A response in the query when form_post was asked for (or the reverse) did not come the way
        // this login sent it; the code may have been exposed in a URL.
        guard callback.viaPost == (settings.mode == .formPost) else {
            throw refuse("response_mode", "the response came \(callback.viaPost ? "as a form post" : "in the query") but \(settings.mode.rawValue) was asked for")
        }
        if let iss = p["iss"] {
            guard isIssuer(iss) else { throw refuse("iss_param", "authorization response iss \(TokenEndpoint.safeText(iss)) is not \(settings.issuer)") }
        } else if issAdvertised {
            throw refuse("iss_param", "provider advertises iss in authorization responses but sent none")
        }
        guard let returnedState = p["state"], Secrets.constantTimeEquals(returnedState, state.state) else {
            throw refuse("state", "state does not match the login transaction")
        }
        if let error = p["error"] {
            let code = TokenEndpoint.safeCode(error)
            throw UpstreamError(.upstreamRefused, "the provider answered \(code)" + (p["error_description"].map { ": " + TokenEndpoint.safeText($0) } ?? ""), upstreamCode: code)
        }
        guard let code = p["code"], !code.isEmpty, code.utf8.count <= 4096 else { throw refuse("code", "no authorization code") }
        return code
    }

    static func codeExchangeForm(code: String, state: UpstreamLoginState) -> [(String, String)] {
        [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", state.callbackURL), ("code_verifier", state.pkceVerifier)]
    }
}
