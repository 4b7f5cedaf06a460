import Foundation
import Logging
import GatehouseJOSE
import Hummingbird
import HTTPTypes
import GatehouseCore
import GatehouseOIDC
import GatehouseMapping

extension Gatehouse {
    /// The browser-binding cookie. With Secure cookies it carries the `__Host-` prefix, so a sibling
    /// subdomain cannot plant a value (loopback http cannot use the prefix, which requires Secure).
    var browserCookieName: String { configuration.secureCookies ? "__Host-gatehouse_browser" : "gatehouse_browser" }

    /// Finds `uri` among registered URIs comparing bytes (not Unicode-canonical equality) and returns
    /// the registered string, which is what Gatehouse redirects to.
    static func registered(_ uri: String, in list: [String]) -> String? {
        list.first { $0.utf8.elementsEqual(uri.utf8) }
    }

    /// Errors after the redirect URI is known to be registered go back to the app (RFC 6749 §4.1.2.1)
    /// with `state` echoed and `iss` (RFC 9207); errors before that are a page.
    struct AppRedirectError: Error {
        let code: String
        let description: String
    }

    func errorRedirect(_ error: AppRedirectError, redirectURI: String, state: String?, issuer: String) -> Response {
        var params = [("error", error.code), ("error_description", error.description)]
        if let state { params.append(("state", state)) }
        params.append(("iss", issuer))
        return Responses.redirect(Responses.appending(params, to: redirectURI))
    }

    func authorize(_ request: Request, _ context: GatehouseRequestContext) async throws -> Response {
        let pool = try await pool(context)
        let q = try query(request)
        let issuer = configuration.issuer(for: pool.id)
        guard let clientID = q["client_id"], let client = try await directory.client(pool: pool.id, clientID: clientID) else {
            throw PageError(status: .badRequest, title: "Unknown application", message: "The application that sent you here is not registered.")
        }
        guard let requested = q["redirect_uri"], let redirectURI = Self.registered(requested, in: client.redirectURIs) else {
            throw PageError(status: .badRequest, title: "Unregistered redirect", message: "The application asked to return to an address it has not registered.")
        }
        let state = q["state"]
        do {
            return try await authorizeChecked(request: request, q: q, pool: pool, client: client, redirectURI: redirectURI, issuer: issuer)
        } catch let e as AppRedirectError {
            return errorRedirect(e, redirectURI: redirectURI, state: state, issuer: issuer)
        }
    }

    private func authorizeChecked(request: Request, q: [String: String], pool: Pool, client: AppClient, redirectURI: String, issuer: String) async throws -> Response {
        guard q["response_type"] == "code" else {
            throw AppRedirectError(code: "unsupported_response_type", description: "only response_type=code is supported")
        }
        if let s = q["state"], s.utf8.count > 2048 { throw AppRedirectError(code: "invalid_request", description: "state is too long") }
        if let n = q["nonce"], n.utf8.count > 512 { throw AppRedirectError(code: "invalid_request", description: "nonce is too long") }
        if q["request"] != nil || q["request_uri"] != nil {
            throw AppRedirectError(code: "request_not_supported", description: "request objects are not supported")
        }
        let scope = (q["scope"] ?? "").split(separator: " ").map(String.init)
        guard scope.contains("openid") else { throw AppRedirectError(code: "invalid_scope", description: "scope must include openid") }
        guard scope.allSatisfy(client.allowedScopes.contains) else {
            throw AppRedirectError(code: "invalid_scope", description: "a requested scope is not allowed for this client")
        }
        let challenge = q["code_challenge"]
        if let challenge {
            guard (q["code_challenge_method"] ?? "plain") == "S256" else {
                throw AppRedirectError(code: "invalid_request", description: "code_challenge_method must be S256")
            }
            guard challenge.utf8.count == 43, Base64URL.decode(challenge)?.count == 32 else {
                throw AppRedirectError(code: "invalid_request", description: "code_challenge is not an S256 challenge")
            }
        } else if client.isPublic {
            throw AppRedirectError(code: "invalid_request", description: "public clients must use PKCE with S256")
        }

        let providers = try await directory.listProviders(pool: pool.id).filter { client.allowedProviders.isEmpty || client.allowedProviders.contains($0.name) }
        let provider: IdentityProvider
        if let name = q["identity_provider"] {
            guard let p = providers.first(where: { $0.name == name }) else {
                throw AppRedirectError(code: "invalid_request", description: "identity_provider is not available to this client")
            }
            provider = p
        } else if let identifier = q["idp_identifier"] {
            let lowered = identifier.lowercased()
            let domain = lowered.split(separator: "@").last.map(String.init) ?? lowered
            guard let p = providers.first(where: { $0.idpIdentifiers.contains(lowered) || $0.idpIdentifiers.contains(domain) }) else {
                throw AppRedirectError(code: "invalid_request", description: "no identity provider matches idp_identifier")
            }
            provider = p
        } else {
            guard !providers.isEmpty else { throw AppRedirectError(code: "unauthorized_client", description: "no identity provider is available to this client") }
            let base = configuration.issuer(for: pool.id) + "/oauth2/authorize?" + (request.uri.query ?? "")
            let choices = providers.map { (name: $0.name, url: base + "&identity_provider=" + FormEncoding.escape($0.name)) }
            return Responses.html(Pages.chooser(poolName: pool.displayName, choices: choices))
        }

        let adapter: any FederationAdapter
        do { adapter = try adapters.adapter(for: provider) } catch {
            logger.error("provider cannot be used", metadata: ["provider": "\(provider.name)", "reason": "\(error)"])
            throw AppRedirectError(code: "server_error", description: "the identity provider is misconfigured")
        }

        // The browser binding: a random value in an HttpOnly cookie; the transaction stores its hash.
        let existing = request.cookies[browserCookieName]?.value
        let browserSecret = (existing.map { $0.utf8.count == 43 && Base64URL.decode($0) != nil } ?? false) ? existing! : Secrets.randomToken()
        let now = clock.now()
        let transaction = LoginTransaction(
            id: Secrets.randomToken(), poolID: pool.id, clientID: client.clientID, redirectURI: redirectURI,
            appState: q["state"], appNonce: q["nonce"], codeChallenge: challenge, scope: scope, providerName: provider.name,
            upstreamNonce: Secrets.randomToken(), upstreamCodeVerifier: Secrets.randomToken(),
            browserBindingHash: Secrets.hash(browserSecret), createdAt: now, expiresAt: now.addingTimeInterval(LoginTransaction.lifetime))
        let upstream: UpstreamRequest
        do {
            upstream = try await adapter.start(upstreamState(transaction, pool: pool.id))
        } catch {
            logger.warning("upstream login could not start", metadata: ["provider": "\(provider.name)", "reason": "\(error)"])
            countLogin(provider: provider.name, outcome: "upstream_unavailable")
            throw AppRedirectError(code: "temporarily_unavailable", description: "the identity provider cannot be reached")
        }
        try await directory.saveLoginTransaction(transaction)
        return upstreamResponse(upstream, cookies: [browserCookie(browserSecret)])
    }

    func upstreamState(_ t: LoginTransaction, pool: PoolID) -> UpstreamLoginState {
        UpstreamLoginState(state: t.id, nonce: t.upstreamNonce, pkceVerifier: t.upstreamCodeVerifier, callbackURL: configuration.issuer(for: pool) + "/oauth2/idpresponse")
    }

    /// The upstream's redirect back to the callback is a top-level cross-site GET, on which a
    /// SameSite=Lax cookie is sent: Lax is the narrowest setting this flow allows.
    func browserCookie(_ value: String) -> Cookie {
        Cookie(name: browserCookieName, value: value, maxAge: 86400, path: "/", secure: configuration.secureCookies, httpOnly: true, sameSite: .lax)
    }

    func callback(_ request: Request, _ context: GatehouseRequestContext) async throws -> Response {
        let pool = try await pool(context)
        let q = try query(request)
        return try await completeUpstreamLogin(request, transactionID: q["state"], pool: pool.id, parameters: q, expecting: nil, now: clock.now())
    }

    /// The shared end of the OIDC callback and the SAML ACS: consumes the login transaction
    /// `transactionID` together with this browser's binding (so another browser, or someone who
    /// learnt the id, can neither use nor cancel it), has the provider's adapter verify what came
    /// back, and finishes the login. `expecting` names the provider (and its adapter) when the route
    /// already did; the transaction must then belong to it.
    func completeUpstreamLogin(
        _ request: Request, transactionID: String?, pool: PoolID, parameters: [String: String],
        expecting: (provider: IdentityProvider, adapter: any FederationAdapter)?, now: Date
    ) async throws -> Response {
        guard let cookie = request.cookies[browserCookieName]?.value, cookie.utf8.count <= 64 else {
            countVerificationFailure("browser_binding")
            throw PageError(status: .badRequest, title: "Sign-in not recognised", message: "This sign-in was started in another browser, or cookies are blocked. Please start again from the application.")
        }
        guard let transactionID, transactionID.utf8.count <= 128,
            let transaction = try await directory.consumeLoginTransaction(id: transactionID, browserBindingHash: Secrets.hash(cookie), now: now),
            transaction.poolID == pool, expecting.map({ $0.provider.name == transaction.providerName }) ?? true
        else {
            countVerificationFailure("state")
            throw PageError(status: .badRequest, title: "Sign-in expired", message: "This sign-in has expired, was already completed, or was started in another browser. Please start again from the application.")
        }
        let back = backToApp(redirectURI: transaction.redirectURI, state: transaction.appState, pool: pool)
        guard let client = try await directory.client(pool: pool, clientID: transaction.clientID), Self.registered(transaction.redirectURI, in: client.redirectURIs) != nil else {
            throw PageError(status: .badRequest, title: "Unknown application", message: "The application is no longer registered.")
        }
        let provider: IdentityProvider
        if let expecting {
            provider = expecting.provider
        } else {
            guard let p = try await directory.provider(pool: pool, name: transaction.providerName) else {
                return back("server_error", "the identity provider was removed")
            }
            provider = p
        }
        let identity: VerifiedIdentity
        do {
            let adapter = try expecting?.adapter ?? adapters.adapter(for: provider)
            identity = try await adapter.complete(UpstreamCallback(parameters: parameters), state: upstreamState(transaction, pool: pool), now: now)
        } catch let e as UpstreamError {
            return upstreamFailure(e, provider: provider.name, back: back)
        }
        return try await finishLogin(pool: pool, client: client, provider: provider, identity: identity, request: AppRequest(transaction), now: now)
    }

    /// Sends an RFC 6749 error to the app's (registered) redirect URI, with its state and `iss`.
    func backToApp(redirectURI: String, state: String?, pool: PoolID) -> (String, String) -> Response {
        let issuer = configuration.issuer(for: pool)
        return { code, description in
            self.errorRedirect(AppRedirectError(code: code, description: description), redirectURI: redirectURI, state: state, issuer: issuer)
        }
    }

    /// Logs and counts a refused upstream login and sends the app the matching RFC 6749 error.
    func upstreamFailure(_ e: UpstreamError, provider: String, back: (String, String) -> Response) -> Response {
        logger.warning("upstream login rejected", metadata: ["provider": "\(provider)", "kind": "\(e.kind.rawValue)", "reason": "\(e)"])
        for f in e.failures { countVerificationFailure(f.check) }
        countLogin(provider: provider, outcome: e.kind.rawValue)
        switch e.kind {
        case .upstreamRefused: return back("access_denied", "the identity provider did not sign the user in")
        case .verification: return back("access_denied", "the identity provider's response failed verification")
        case .unreachable: return back("temporarily_unavailable", "the identity provider cannot be reached")
        case .misconfigured: return back("server_error", "the identity provider is misconfigured")
        }
    }

    /// What the app asked for, from its authorize request (or, for an IdP-initiated SAML login, from
    /// the RelayState naming the app).
    struct AppRequest {
        var redirectURI: String
        var appState: String?
        var scope: [String]
        var nonce: String?
        var codeChallenge: String?

        init(_ t: LoginTransaction) {
            self.init(redirectURI: t.redirectURI, appState: t.appState, scope: t.scope, nonce: t.appNonce, codeChallenge: t.codeChallenge)
        }

        init(redirectURI: String, appState: String?, scope: [String], nonce: String?, codeChallenge: String?) {
            self.redirectURI = redirectURI
            self.appState = appState
            self.scope = scope
            self.nonce = nonce
            self.codeChallenge = codeChallenge
        }
    }

    /// The common end of every upstream login: mapping, the user found or created, a code, and the
    /// redirect back to the app.
    func finishLogin(pool: PoolID, client: AppClient, provider: IdentityProvider, identity: VerifiedIdentity, request: AppRequest, now: Date) async throws -> Response {
        let issuer = configuration.issuer(for: pool)
        let back = backToApp(redirectURI: request.redirectURI, state: request.appState, pool: pool)
        guard let poolRecord = try await directory.pool(pool) else { return back("server_error", "the pool was removed") }
        let mapping: CompiledMapping
        do {
            mapping = try mappings.compiled(pool: poolRecord, provider: provider)
        } catch {
            logger.error("attribute mapping refused", metadata: ["provider": "\(provider.name)", "reason": "\(error)"])
            countLogin(provider: provider.name, outcome: "mapping_invalid")
            return back("server_error", "the identity provider's attribute mapping is invalid")
        }
        let mapped = mapping.apply(identity.attributes)
        for (target, reason) in mapped.failures {
            // The reason names limits and types, never the value.
            logger.warning("attribute mapping rule set nothing", metadata: ["provider": "\(provider.name)", "rule": "\(target)", "reason": "\(reason)"])
        }
        try await directory.recordLoginSample(
            LoginSample(poolID: pool, providerName: provider.name, id: LoginSample.newID(at: Date()), capturedAt: now, attributes: LoginSample.redact(identity.attributes)),
            keep: Gatehouse.loginSamplesKept)
        let link = LinkedIdentity(poolID: pool, providerName: provider.name, providerKind: identity.providerKind, upstreamIssuer: identity.upstreamIssuer, upstreamSubject: identity.upstreamSubject, userID: "", createdAt: now)
        let resolution = try await directory.resolveLogin(
            FederatedLogin(
                identity: link, username: AttributeMapper.username(for: identity), attributes: mapped.attributes,
                initialAttributes: mapped.initialAttributes, groups: mapped.groups, groupsOnCreationOnly: mapped.groupsUpdate == .firstLogin),
            now: now)
        guard resolution.user.enabled else {
            countLogin(provider: provider.name, outcome: "user_disabled")
            return back("access_denied", "the user is disabled")
        }
        let code = Secrets.randomToken()
        var grant = AuthorizationCode(
            codeHash: Secrets.hash(code), poolID: pool, clientID: client.clientID, userID: resolution.user.id,
            redirectURI: request.redirectURI, scope: request.scope, nonce: request.nonce,
            codeChallenge: request.codeChallenge, authTime: identity.authTime ?? now, providerName: provider.name,
            familyID: Secrets.randomToken(bytes: 16), createdAt: now, expiresAt: now.addingTimeInterval(AuthorizationCode.lifetime))
        grant.acr = identity.acr
        grant.amr = identity.amr.isEmpty ? nil : identity.amr
        grant.upstreamSessionIndex = identity.sessionIndex
        try await directory.saveAuthorizationCode(grant)
        countLogin(provider: provider.name, outcome: resolution.created ? "success_new_user" : "success")
        var params = [("code", code)]
        if let s = request.appState { params.append(("state", s)) }
        params.append(("iss", issuer))
        return Responses.redirect(Responses.appending(params, to: request.redirectURI))
    }
}
