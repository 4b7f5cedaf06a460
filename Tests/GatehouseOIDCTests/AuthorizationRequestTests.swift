import Foundation
import Testing
import GatehouseCore
import GatehouseOIDC
import GatehouseJOSE
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

/// What presets configure where the upstream's own documents decide.
@Suite struct PresetSettings {
    @Test func microsoftTenantsMapToTheIssuersTheirDiscoveryNames() {
        let common = ProviderPreset.microsoft.settings(clientID: "c")
        #expect(common.microsoftIssuerTemplate == "https://login.microsoftonline.com/{tenantid}/v2.0")
        let organizations = ProviderPreset.microsoft.settings(clientID: "c", tenant: "organizations")
        #expect(organizations.microsoftIssuerTemplate == "https://login.microsoftonline.com/{tenantid}/v2.0")
        // Personal accounts are one tenant, whose discovery names its ID rather than a template.
        let consumers = ProviderPreset.microsoft.settings(clientID: "c", tenant: "consumers")
        #expect(consumers.issuer == "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0")
        #expect(consumers.microsoftIssuerTemplate == nil)
    }
}

/// A key set that cannot be fetched leaves the token unjudged: the error says the provider is
/// unreachable (so an upstream refresh spends and revokes nothing), not that the token is bad.
@Suite struct UnreachableKeys {
    struct DownKeySource: VerificationKeySource {
        func keys(refreshingFor unknownKid: String?) async throws -> [PreparedKey] { throw UpstreamError(.unreachable, "JWKS down") }
    }

    @Test func aJWKSThatCannotBeFetchedIsUnreachableNotInvalid() async throws {
        let key = try JWSSigningKey.generate(.rs256)
        let now = Date()
        let claims: [String: JSONValue] = ["iss": .string("https://i.example"), "sub": .string("u"), "aud": .string("c"), "iat": .number(now.timeIntervalSince1970), "exp": .number(now.timeIntervalSince1970 + 60)]
        let token = try JWSEncoder.sign(payloadJSON: Data(JSONValue.serialize(object: claims).utf8), key: key, kid: "k1")
        let policy = IDTokenPolicy(issuer: "https://i.example", clientID: "c", allowedAlgorithms: ["RS256"], clockSkew: 60, nonce: nil)
        await #expect { try await IDTokenVerifier.verify(token, keys: DownKeySource(), policy: policy, now: now) } throws: {
            ($0 as? UpstreamError)?.kind == .unreachable
        }
    }
}
