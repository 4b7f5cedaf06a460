import Foundation
import Testing
import GatehouseCore
import GatehouseOIDC
import GatehouseTestSupport

/// The authorization request an adapter sends: what Gatehouse sets always wins over the admin's
/// extra parameters.
@Suite struct AuthorizationRequest {
    func query(_ url: URL) -> [String: String] {
        FormEncoding.decode(URLComponents(url: url, resolvingAgainstBaseURL: false)?.percentEncodedQuery ?? "") ?? [:]
    }

    @Test func extraParametersNeverReplaceGatehousesOwn() async throws {
        try await withProvider { op, http in
            var settings = ProviderPreset.google.settings(clientID: op.clientID, issuer: op.issuer)
            settings.responseMode = .formPost
            settings.authorizationParameters = ["access_type": "offline", "prompt": "select_account", "state": "forged", "redirect_uri": "https://evil.example/cb", "response_mode": "query"]
            let adapter = OIDCAdapter(providerName: "G", settings: settings, credential: .none, http: http, clock: SystemClock())
            let state = UpstreamLoginState(state: "s1", nonce: "n1", pkceVerifier: String(repeating: "v", count: 43), callbackURL: "http://127.0.0.1:9/acme/oauth2/idpresponse")
            let q = query(try await adapter.begin(state))
            #expect(q["state"] == "s1" && q["nonce"] == "n1" && q["redirect_uri"] == state.callbackURL)
            #expect(q["response_mode"] == "form_post" && q["code_challenge_method"] == "S256")
            #expect(q["access_type"] == "offline" && q["prompt"] == "select_account")

            // A demanded fresh login's prompt and max_age win over the admin's prompt.
            let fresh = UpstreamLoginState(state: "s2", nonce: "n2", pkceVerifier: String(repeating: "w", count: 43), callbackURL: state.callbackURL, forceFreshLogin: true)
            let f = query(try await adapter.begin(fresh))
            #expect(f["prompt"] == "login" && f["max_age"] == "0")
        }
    }
}
