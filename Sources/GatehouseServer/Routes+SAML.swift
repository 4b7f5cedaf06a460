import Foundation
import Hummingbird
import Logging
import HTTPTypes
import GatehouseCore
import GatehouseSAML

extension Gatehouse {
    /// The pool and SAML provider a `/{pool}/saml2/…/{provider}` path names, and its adapter.
    func samlProvider(_ context: GatehouseRequestContext) async throws -> (Pool, IdentityProvider, SAMLAdapter) {
        let pool = try await pool(context)
        guard let name = context.parameters.get("provider"), let provider = try await directory.provider(pool: pool.id, name: name),
            provider.kind == .saml
        else {
            throw PageError(status: .notFound, title: "Unknown identity provider", message: "This address does not belong to a SAML identity provider of this pool.")
        }
        do {
            guard let adapter = try adapters.adapter(for: provider) as? SAMLAdapter else { throw ConfigurationError("not a SAML adapter") }
            return (pool, provider, adapter)
        } catch {
            logger.error("provider cannot be used", metadata: ["provider": "\(provider.name)", "reason": "\(error)"])
            throw PageError(status: .serviceUnavailable, title: "Sign-in unavailable", message: "This identity provider is misconfigured. Please tell the site's administrator.")
        }
    }

    /// GET /{pool}/saml2/metadata/{provider}: Gatehouse's SP metadata for that provider, signed.
    func samlMetadata(_ request: Request, _ context: GatehouseRequestContext) async throws -> Response {
        let (_, _, adapter) = try await samlProvider(context)
        let xml = try adapter.serviceProviderMetadata()
        return Response(status: .ok, headers: [.contentType: "application/samlmetadata+xml", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(string: xml)))
    }

    /// A provider's posted form (SAML ACS and SLO, OIDC `form_post`): `application/x-www-form-urlencoded`,
    /// at most 512 KB, no repeated field.
    func postedForm(_ request: Request) async throws -> [String: String] {
        guard request.hasMediaType("application/x-www-form-urlencoded") else {
            throw PageError(status: .badRequest, title: "Sign-in failed", message: "The identity provider's answer was not a form.")
        }
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: 512 * 1024) } catch {
            throw PageError(status: .contentTooLarge, title: "Sign-in failed", message: "The identity provider's answer is too large.")
        }
        guard let form = buffer.withUnsafeReadableBytes({ FormEncoding.decode(bytes: $0.bindMemory(to: UInt8.self)) }) else {
            throw PageError(status: .badRequest, title: "Sign-in failed", message: "The identity provider's answer is malformed.")
        }
        return form
    }

    /// POST /{pool}/saml2/acs/{provider}: the Assertion Consumer Service (HTTP-POST binding).
    ///
    /// The IdP's POST is cross-site, so the SameSite=Lax browser cookie is not sent with it. Rather
    /// than weaken the cookie, the ACS answers a cookie-less POST with a page that posts the same
    /// form again, from Gatehouse's own origin: that request is same-site and carries the cookie.
    /// Nothing is verified or consumed before the cookie is there, and the transaction is consumed
    /// only together with it, exactly as on the OIDC callback.
    func assertionConsumer(_ request: Request, _ context: GatehouseRequestContext) async throws -> Response {
        let (pool, provider, adapter) = try await samlProvider(context)
        let form = try await postedForm(request)
        guard form["SAMLResponse"] != nil else {
            throw PageError(status: .badRequest, title: "Sign-in failed", message: "The identity provider sent no SAML response.")
        }
        let now = clock.now()
        let relayState = form["RelayState"]
        let pending = relayState.map { $0.utf8.count == 43 && Base64URL.decode($0) != nil } ?? false
        guard pending, let relayState else {
            return try await unsolicitedLogin(pool: pool, provider: provider, adapter: adapter, form: form, now: now)
        }
        if request.cookie(named: browserCookieName) == nil, form[Self.resentField] == nil {
            let acs = configuration.issuer(for: pool.id) + "/saml2/acs/" + provider.name
            guard let url = URL(string: acs) else { throw PageError(status: .internalServerError, title: "Sign-in failed", message: "Bad ACS address.") }
            return Responses.autoPost(action: url, fields: [
                .init("SAMLResponse", form["SAMLResponse"]!), .init("RelayState", relayState), .init(Self.resentField, "1"),
            ])
        }
        return try await completeUpstreamLogin(request, transactionID: relayState, pool: pool, parameters: form, viaPost: true, expecting: (provider, adapter), now: now)
    }

    /// An IdP-initiated login: allowed only when the provider enables it. The RelayState names the
    /// app as a query string (`client_id`, `redirect_uri`, optional `scope`), as Cognito's does; the
    /// client must be confidential (there is no PKCE without an authorize request), must be allowed
    /// to use this provider, and the redirect URI must be registered.
    func unsolicitedLogin(pool: Pool, provider: IdentityProvider, adapter: SAMLAdapter, form: [String: String], now: Date) async throws -> Response {
        guard adapter.allowsUnsolicited else {
            countVerificationFailure("unsolicited")
            throw PageError(status: .badRequest, title: "Sign-in not recognised", message: "This sign-in was not started here, or it has expired. Please start again from the application.")
        }
        guard let relay = form["RelayState"], relay.utf8.count <= 2048, let app = FormEncoding.decode(relay),
            let clientID = app["client_id"], let requested = app["redirect_uri"],
            let client = try await directory.client(pool: pool.id, clientID: clientID),
            let redirectURI = Self.registered(requested, in: client.redirectURIs)
        else {
            throw PageError(status: .badRequest, title: "Unknown application", message: "The identity provider did not name an application registered here.")
        }
        let back = backToApp(redirectURI: redirectURI, state: nil, pool: pool.id)
        guard !client.isPublic else { return back("unauthorized_client", "IdP-initiated login needs a confidential client") }
        guard client.allowedProviders.isEmpty || client.allowedProviders.contains(provider.name) else {
            return back("unauthorized_client", "this identity provider is not available to the client")
        }
        let scope = (app["scope"] ?? "openid").split(separator: " ").map(String.init)
        guard scope.contains("openid"), scope.allSatisfy(client.allowedScopes.contains) else {
            return back("invalid_scope", "a requested scope is not allowed for this client")
        }
        let identity: VerifiedIdentity
        do {
            identity = try await adapter.completeUnsolicited(UpstreamCallback(parameters: form), now: now)
        } catch let e as UpstreamError {
            return upstreamFailure(e, provider: provider.name, redirectURI: redirectURI, state: nil, pool: pool.id)
        }
        return try await finishLogin(
            pool: pool, client: client, provider: provider, identity: identity,
            request: AppRequest(redirectURI: redirectURI, appState: nil, scope: scope, nonce: nil, codeChallenge: nil), now: now)
    }
}

extension Gatehouse {
    /// Where to send the browser to end a SAML login at its IdP, or nil (not a SAML login, or the IdP
    /// has no single logout). The pending logout is kept as a short login-state record whose id is
    /// the RelayState and whose nonce is the LogoutRequest's ID; the IdP's signed LogoutResponse
    /// must answer exactly that request before the browser is sent on to `returnTo` (a registered
    /// logout URI).
    func samlLogoutRedirect(pool: PoolID, family: RefreshTokenFamily, clientID: String, returnTo: String, now: Date) async throws -> UpstreamRequest? {
        guard let provider = try await directory.provider(pool: pool, name: family.providerName), provider.kind == .saml,
            let adapter = try? adapters.adapter(for: provider) as? SAMLAdapter,
            let link = try await directory.linkedIdentities(pool: pool, userID: family.userID).first(where: { $0.providerName == provider.name })
        else { return nil }
        let relayState = Secrets.randomToken()
        guard let (outgoing, requestID) = try adapter.logoutRequest(nameID: link.upstreamSubject, sessionIndex: family.upstreamSessionIndex, relayState: relayState, now: now) else {
            return nil
        }
        try await directory.saveLoginTransaction(LoginTransaction(
            id: relayState, poolID: pool, clientID: clientID, redirectURI: returnTo, appState: nil, appNonce: nil, codeChallenge: nil,
            scope: ["logout"], providerName: provider.name, upstreamNonce: requestID, upstreamCodeVerifier: "",
            browserBindingHash: Secrets.hash("logout:" + relayState), createdAt: now, expiresAt: now.addingTimeInterval(LoginTransaction.lifetime)))
        return outgoing
    }

    /// Sends the browser upstream: a redirect, or the self-posting form of the HTTP-POST binding.
    func upstreamResponse(_ outgoing: UpstreamRequest, cookies: [Cookie]) -> Response {
        switch outgoing {
        case .redirect(let url):
            return Responses.redirect(url.absoluteString, cookies: cookies)
        case .formPost(let action, let fields):
            var response = Responses.autoPost(action: action, fields: fields)
            for c in cookies { response.setCookie(c) }
            return response
        }
    }

    /// GET or POST /{pool}/saml2/slo/{provider}: single logout. An IdP's LogoutRequest revokes the
    /// refresh tokens of the sessions it names (all of the user's sessions from this provider when it
    /// names none) and is answered with a signed LogoutResponse; an IdP's LogoutResponse completes a
    /// logout Gatehouse started.
    func singleLogout(_ request: Request, _ context: GatehouseRequestContext) async throws -> Response {
        let (pool, provider, adapter) = try await samlProvider(context)
        let message: SAMLIncomingMessage = request.method == .post ? .post(form: try await postedForm(request)) : .redirect(rawQuery: request.uri.query ?? "")
        let now = clock.now()
        let verified: SAMLLogoutMessage
        do { verified = try await adapter.verifyLogoutMessage(message, now: now) } catch {
            let failures = (error as? VerificationError)?.failures ?? [.init(check: "format", reason: "\(error)")]
            for f in failures { countVerificationFailure(f.check) }
            logger.warning("SAML logout message refused", metadata: ["provider": "\(provider.name)", "reason": "\(failures.map(\.description).joined(separator: "; "))"])
            throw PageError(status: .badRequest, title: "Sign-out failed", message: "The identity provider's sign-out message could not be verified.")
        }
        let expired = Cookie(name: browserCookieName, value: "", maxAge: 0, path: "/", secure: configuration.secureCookies, httpOnly: true, sameSite: .lax)
        switch verified {
        case .request(let id, let nameID, let sessions, let relayState):
            var revoked = 0
            if let userID = try await directory.userID(pool: pool.id, providerName: provider.name, upstreamIssuer: adapter.metadata.entityID, upstreamSubject: nameID) {
                for family in try await directory.activeFamilies(pool: pool.id, userID: userID, now: now)
                where family.providerName == provider.name && (sessions.isEmpty || sessions.contains(family.upstreamSessionIndex ?? "")) {
                    try await directory.revokeFamily(id: family.id, now: now)
                    revoked += 1
                }
            }
            logger.info("SAML single logout from the IdP", metadata: ["provider": "\(provider.name)", "revoked_families": "\(revoked)"])
            do {
                return upstreamResponse(try adapter.logoutResponse(inResponseTo: id, relayState: relayState, now: now), cookies: [expired])
            } catch {
                // The sessions are ended; only the answer cannot be sent.
                logger.warning("SAML LogoutResponse cannot be sent", metadata: ["provider": "\(provider.name)", "reason": "\(error)"])
                return Responses.html(Pages.error(title: "Signed out", message: "You are signed out of this site's applications."))
            }
        case .response(let inResponseTo, let success, let relayState):
            guard let relayState, relayState.utf8.count <= 128,
                let pending = try await directory.consumeLoginTransaction(id: relayState, browserBindingHash: Secrets.hash("logout:" + relayState), now: now),
                pending.poolID == pool.id, pending.providerName == provider.name, pending.scope == ["logout"], pending.upstreamNonce == inResponseTo
            else {
                throw PageError(status: .badRequest, title: "Sign-out expired", message: "This sign-out has expired or was already completed.")
            }
            if !success { logger.warning("the IdP reported a partial logout", metadata: ["provider": "\(provider.name)"]) }
            return Responses.redirect(pending.redirectURI, cookies: [expired])
        }
    }
}
