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
        var linkIntent: LinkIntent? = nil
        if let ticket = q["link_intent"] {
            // A signed-in user linking another provider: the single-use ticket names the user and the provider.
            guard ticket.utf8.count <= 128, let intent = try await directory.consumeLinkIntent(ticketHash: Secrets.hash(ticket), now: clock.now()),
                intent.poolID == pool.id, intent.clientID == client.clientID, q["identity_provider"].map({ $0 == intent.providerName }) ?? true,
                let p = providers.first(where: { $0.name == intent.providerName }),
                let family = try await directory.family(id: intent.familyID), family.revokedAt == nil, family.userID == intent.userID,
                q["code_challenge"] == intent.codeChallenge
            else { throw AppRedirectError(code: "invalid_request", description: "link_intent is unknown, expired, used, or for another client or provider") }
            linkIntent = intent
            provider = p
        } else if let name = q["identity_provider"] {
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
        let existing = request.cookie(named: browserCookieName)
        let browserSecret = (existing.map { $0.utf8.count == 43 && Base64URL.decode($0) != nil } ?? false) ? existing! : Secrets.randomToken()
        let now = clock.now()
        var transaction = LoginTransaction(
            id: Secrets.randomToken(), poolID: pool.id, clientID: client.clientID, redirectURI: redirectURI,
            appState: q["state"], appNonce: q["nonce"], codeChallenge: challenge, scope: scope, providerName: provider.name,
            upstreamNonce: Secrets.randomToken(), upstreamCodeVerifier: Secrets.randomToken(),
            browserBindingHash: Secrets.hash(browserSecret), createdAt: now, expiresAt: now.addingTimeInterval(LoginTransaction.lifetime))
        transaction.linkToUserID = linkIntent?.userID
        return try await startUpstream(transaction, provider: provider, adapter: adapter, browserSecret: browserSecret)
    }

    /// Sends the browser upstream for `transaction`, saved first, with the browser-binding cookie.
    func startUpstream(_ transaction: LoginTransaction, provider: IdentityProvider, adapter: any FederationAdapter, browserSecret: String) async throws -> Response {
        let upstream: UpstreamRequest
        do {
            upstream = try await adapter.start(upstreamState(transaction, pool: transaction.poolID))
        } catch let e as UpstreamError {
            // A discovery document that names another issuer, an unreachable provider: the person
            // gets the page, the app its error, the admin the cause in the log.
            return upstreamFailure(e, provider: provider.name, redirectURI: transaction.redirectURI, state: transaction.appState, pool: transaction.poolID)
        } catch {
            logger.warning("upstream login could not start", metadata: ["provider": "\(provider.name)", "reason": "\(error)"])
            countLogin(provider: provider.name, outcome: "upstream_unavailable")
            throw AppRedirectError(code: "temporarily_unavailable", description: "the identity provider cannot be reached")
        }
        try await directory.saveLoginTransaction(transaction)
        return upstreamResponse(upstream, cookies: [browserCookie(browserSecret)])
    }

    func upstreamState(_ t: LoginTransaction, pool: PoolID) -> UpstreamLoginState {
        UpstreamLoginState(
            state: t.id, nonce: t.upstreamNonce, pkceVerifier: t.upstreamCodeVerifier, callbackURL: configuration.issuer(for: pool) + "/oauth2/idpresponse",
            forceFreshLogin: t.linkToUserID != nil)
    }

    /// The upstream's redirect back to the callback is a top-level cross-site GET, on which a
    /// SameSite=Lax cookie is sent: Lax is the narrowest setting this flow allows.
    func browserCookie(_ value: String) -> Cookie {
        Cookie(name: browserCookieName, value: value, maxAge: 86400, path: "/", secure: configuration.secureCookies, httpOnly: true, sameSite: .lax)
    }

    func callback(_ request: Request, _ context: GatehouseRequestContext) async throws -> Response {
        let pool = try await pool(context)
        let q = try query(request)
        return try await completeUpstreamLogin(request, transactionID: q["state"], pool: pool, parameters: q, viaPost: false, expecting: nil, now: clock.now())
    }

    /// POST /{pool}/oauth2/idpresponse: the authorization response as a form post (`form_post`,
    /// Apple's only way). Like the SAML ACS, a cross-site POST carries no SameSite=Lax cookie: a
    /// cookie-less POST is answered with a page that posts the same fields again from Gatehouse's
    /// own origin, which is same-site and carries it. Nothing is checked or consumed before that.
    func callbackPost(_ request: Request, _ context: GatehouseRequestContext) async throws -> Response {
        let pool = try await pool(context)
        var form = try await postedForm(request)
        let resent = form.removeValue(forKey: Self.resentField) != nil
        if request.cookie(named: browserCookieName) == nil, !resent {
            guard form.count <= 16, let url = URL(string: configuration.issuer(for: pool.id) + "/oauth2/idpresponse") else {
                throw PageError(status: .badRequest, title: "Sign-in failed", message: "The identity provider's answer is malformed.")
            }
            let fields = form.sorted { $0.key < $1.key }.map { UpstreamRequest.FormField($0.key, $0.value) }
            return Responses.autoPost(action: url, fields: fields + [.init(Self.resentField, "1")])
        }
        return try await completeUpstreamLogin(request, transactionID: form["state"], pool: pool, parameters: form, viaPost: true, expecting: nil, now: clock.now())
    }

    /// Marks a form Gatehouse posted to itself again (so a missing cookie then is final).
    static let resentField = "gatehouse_resent"

    /// The shared end of the OIDC callback and the SAML ACS: consumes the login transaction
    /// `transactionID` together with this browser's binding (so another browser, or someone who
    /// learnt the id, can neither use nor cancel it), has the provider's adapter verify what came
    /// back, and finishes the login. `expecting` names the provider (and its adapter) when the route
    /// already did; the transaction must then belong to it.
    func completeUpstreamLogin(
        _ request: Request, transactionID: String?, pool poolRecord: Pool, parameters: [String: String], viaPost: Bool,
        expecting: (provider: IdentityProvider, adapter: any FederationAdapter)?, now: Date
    ) async throws -> Response {
        let pool = poolRecord.id
        guard let cookie = request.cookie(named: browserCookieName), cookie.utf8.count <= 64 else {
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
            identity = try await adapter.complete(UpstreamCallback(parameters: parameters, viaPost: viaPost), state: upstreamState(transaction, pool: pool), now: now)
        } catch let e as UpstreamError {
            return upstreamFailure(e, provider: provider.name, redirectURI: transaction.redirectURI, state: transaction.appState, pool: pool)
        }
        return try await finishLogin(pool: poolRecord, client: client, provider: provider, identity: identity, request: AppRequest(transaction), now: now)
    }

    /// Sends an RFC 6749 error to the app's (registered) redirect URI, with its state and `iss`.
    func backToApp(redirectURI: String, state: String?, pool: PoolID) -> (String, String) -> Response {
        let issuer = configuration.issuer(for: pool)
        return { code, description in
            self.errorRedirect(AppRedirectError(code: code, description: description), redirectURI: redirectURI, state: state, issuer: issuer)
        }
    }

    /// A refused upstream login: logged and counted with its exact cause for the admin; the person
    /// gets a plain page saying what happened and what to do, whose button takes them back to the
    /// app's (registered) redirect URI with the matching RFC 6749 / OpenID Connect error.
    func upstreamFailure(_ e: UpstreamError, provider: String, redirectURI: String, state: String?, pool: PoolID) -> Response {
        let level: Logger.Level = e.kind == .misconfigured ? .error : .warning
        logger.log(level: level, "upstream login rejected", metadata: ["provider": "\(provider)", "kind": "\(e.kind.rawValue)", "reason": "\(e)"])
        for f in e.failures { countVerificationFailure(f.check) }
        countLogin(provider: provider, outcome: e.kind.rawValue)
        let explained = UpstreamFailureExplanation(e, provider: provider)
        var params = [("error", explained.appCode), ("error_description", explained.appDescription)]
        if let state { params.append(("state", state)) }
        params.append(("iss", configuration.issuer(for: pool)))
        let page = Pages.upstreamFailure(title: explained.title, message: explained.message, continueURL: Responses.appending(params, to: redirectURI))
        return Responses.html(page, status: explained.status)
    }

    /// What the app asked for, from its authorize request (or, for an IdP-initiated SAML login, from
    /// the RelayState naming the app).
    struct AppRequest {
        var redirectURI: String
        var appState: String?
        var scope: [String]
        var nonce: String?
        var codeChallenge: String?
        /// The browser's binding, when the login came through a transaction (not IdP-initiated).
        var browserBindingHash: String? = nil
        /// The pending link this login proves an account for.
        var pendingLinkID: String? = nil
        /// The signed-in user this login links a provider to, and when it started.
        var linkToUserID: String? = nil
        var startedAt: Date? = nil

        init(_ t: LoginTransaction) {
            self.init(redirectURI: t.redirectURI, appState: t.appState, scope: t.scope, nonce: t.appNonce, codeChallenge: t.codeChallenge)
            browserBindingHash = t.browserBindingHash
            linkToUserID = t.linkToUserID
            startedAt = t.createdAt
            pendingLinkID = t.pendingLinkID
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
    func finishLogin(pool poolRecord: Pool, client: AppClient, provider: IdentityProvider, identity: VerifiedIdentity, request: AppRequest, now: Date) async throws -> Response {
        let pool = poolRecord.id
        let issuer = configuration.issuer(for: pool)
        let back = backToApp(redirectURI: request.redirectURI, state: request.appState, pool: pool)
        let mapping: CompiledMapping
        do {
            mapping = try mappings.compiled(pool: poolRecord, provider: provider)
        } catch {
            logger.error("attribute mapping refused", metadata: ["provider": "\(provider.name)", "reason": "\(error)"])
            countLogin(provider: provider.name, outcome: "mapping_invalid")
            return back("server_error", "the identity provider's attribute mapping is invalid")
        }
        let mapped = mapping.apply(identity.attributes)
        logMappingFailures(mapped, provider: provider.name)
        await loginSamples.record(pool: pool, provider: provider.name, attributes: identity.attributes, capturedAt: now)
        let link = LinkedIdentity(poolID: pool, providerName: provider.name, providerKind: identity.providerKind, upstreamIssuer: identity.upstreamIssuer, upstreamSubject: identity.upstreamSubject, userID: "", createdAt: now)
        let login = FederatedLogin(
            identity: link, username: AttributeMapper.username(for: identity), attributes: mapped.attributes,
            initialAttributes: mapped.initialAttributes, groups: mapped.groups, groupsOnCreationOnly: mapped.groupsUpdate == .firstLogin,
            newIdentity: request.pendingLinkID == nil ? Self.newIdentityRule(provider.linkSettings, mapped) : .refuse,
            trustedEmail: Self.trustedEmail(provider.linkSettings, mapped))
        let user: User
        let outcome: String
        var selfLink: LinkedIdentity? = nil
        do {
        if let owner = request.linkToUserID {
            switch try await linkToSignedInUser(owner, link: link, identity: identity, request: request, now: now) {
            case .success(let (u, owned)):
                user = u
                selfLink = owned
            case .failure(let refusal):
                countLogin(provider: provider.name, outcome: "self_link_refused")
                return back("access_denied", refusal.reason)
            }
            outcome = "success_self_link_pending"
        } else {
        switch try await directory.resolveLogin(login, now: now) {
        case .refused(let reason):
            if request.pendingLinkID != nil {
                return back("access_denied", "this sign-in is not linked to any account, so it cannot prove one; nothing was linked")
            }
            logger.info("first login refused by the link policy", metadata: ["provider": "\(provider.name)", "reason": "\(reason)"])
            countLogin(provider: provider.name, outcome: "link_refused")
            return back("access_denied", reason)
        case .needsProof(let candidates):
            return try await askForProof(pool: poolRecord, client: client, provider: provider, link: link, attributes: mapped.attributes, candidates: candidates, request: request, back: back, now: now)
        case .user(let found, let how):
            if let pendingID = request.pendingLinkID {
                guard let binding = request.browserBindingHash,
                    let pending = try await directory.consumePendingLink(id: pendingID, browserBindingHash: binding, now: now), pending.poolID == pool
                else { return back("access_denied", "the account link expired or was already used; nothing was linked") }
                guard found.enabled else { return back("access_denied", "the user is disabled") }
                guard pending.candidateUserIDs.contains(found.id) else {
                    logger.warning("account link refused: the proof signed in to another account", metadata: ["provider": "\(provider.name)", "linking": "\(pending.identity.providerName)"])
                    countLogin(provider: pending.identity.providerName, outcome: "link_proof_mismatch")
                    return back("access_denied", "the account you signed in to is not the one that uses this email address; nothing was linked")
                }
                user = try await directory.completePendingLink(pending, userID: found.id, now: now)
                outcome = "success_linked_by_proof"
            } else {
                user = found
                outcome = switch how {
                case .created: "success_new_user"
                case .linkedByVerifiedEmail: "success_linked_by_email"
                case .existing: "success"
                }
            }
        }
        }
        } catch let e as DirectoryError where e.code != .unavailable {
            // A link that changed under this login (or a user that went away): the app hears of it,
            // the person can start again, and nothing was half made.
            logger.warning("login could not settle its user", metadata: ["provider": "\(provider.name)", "reason": "\(e)"])
            countLogin(provider: provider.name, outcome: "link_conflict")
            return back("access_denied", "the account changed during this sign-in; please sign in again")
        }
        guard user.enabled else {
            countLogin(provider: provider.name, outcome: "user_disabled")
            return back("access_denied", "the user is disabled")
        }
        let code = Secrets.randomToken()
        var grant = AuthorizationCode(
            codeHash: Secrets.hash(code), poolID: pool, clientID: client.clientID, userID: user.id,
            redirectURI: request.redirectURI, scope: request.scope, nonce: request.nonce,
            codeChallenge: request.codeChallenge, authTime: identity.authTime ?? now, providerName: provider.name,
            familyID: Secrets.randomToken(bytes: 16), createdAt: now, expiresAt: now.addingTimeInterval(AuthorizationCode.lifetime))
        grant.acr = identity.acr
        grant.amr = identity.amr.isEmpty ? nil : identity.amr
        grant.upstreamSessionIndex = identity.sessionIndex
        grant.authTimeStated = identity.authTime != nil
        grant.pendingSelfLink = selfLink
        if let token = identity.upstreamRefreshToken {
            let sealed = try masterKey.seal(Data(token.value.utf8), purpose: UpstreamGrant.purpose(pool: pool, familyID: grant.familyID))
            grant.upstream = UpstreamGrant(sealedRefreshToken: sealed, issuer: identity.upstreamIssuer, subject: identity.upstreamSubject)
        }
        try await directory.saveAuthorizationCode(grant)
        countLogin(provider: provider.name, outcome: outcome)
        var params = [("code", code)]
        if let s = request.appState { params.append(("state", s)) }
        params.append(("iss", issuer))
        return Responses.redirect(Responses.appending(params, to: request.redirectURI))
    }

    func logMappingFailures(_ mapped: CompiledMapping.Result, provider: String) {
        for (target, reason) in mapped.failures {
            // The reason names limits and types, never the value.
            logger.warning("attribute mapping rule set nothing", metadata: ["provider": "\(provider)", "rule": "\(target)", "reason": "\(reason)"])
        }
    }

    /// What the provider's link policy makes of a first login, given what its mapping produced.
    /// Email is believed only from a provider the admin marked as trusted to assert it, and only
    /// when the mapped `email_verified` is true.
    static func newIdentityRule(_ settings: LinkSettings, _ mapped: CompiledMapping.Result) -> NewIdentityRule {
        switch settings.policy {
        case .createUser: return .createUser
        case .refuse: return .refuse
        case .verifiedEmail:
            guard let email = trustedEmail(settings, mapped) else { return .createUser }
            return .linkVerifiedEmail(email)
        case .proveExisting:
            // Only a verified address is looked up, so nobody learns which accounts use an address
            // they merely typed in.
            guard let email = verifiedEmail(mapped) else { return .createUser }
            return .proveExisting(email: email)
        }
    }

    /// The mapped email when the mapped `email_verified` is true.
    static func verifiedEmail(_ mapped: CompiledMapping.Result) -> String? {
        let email = (mapped.attributes["email"] ?? mapped.initialAttributes["email"]).flatMap { $0.isEmpty ? nil : $0.lowercased() }
        let verified = (mapped.attributes["email_verified"] ?? mapped.initialAttributes["email_verified"]) == "true"
        return verified ? email : nil
    }

    /// The verified email, when the provider is trusted to assert email.
    static func trustedEmail(_ settings: LinkSettings, _ mapped: CompiledMapping.Result) -> String? {
        settings.trustEmail ? verifiedEmail(mapped) : nil
    }

    /// Keeps the new identity as a pending link bound to this browser and shows the person the
    /// providers of the existing account(s) to sign in with first.
    func askForProof(
        pool poolRecord: Pool, client: AppClient, provider: IdentityProvider, link: LinkedIdentity, attributes: [String: String], candidates: [String],
        request: AppRequest, back: (String, String) -> Response, now: Date
    ) async throws -> Response {
        let pool = poolRecord.id
        guard let binding = request.browserBindingHash else {
            return back("access_denied", "an account already uses this email address; sign in to it from the application first")
        }
        var names: [String] = []
        for id in candidates {
            for l in try await directory.linkedIdentities(pool: pool, userID: id)
            where !names.contains(l.providerName) && l.providerName != provider.name && (client.allowedProviders.isEmpty || client.allowedProviders.contains(l.providerName)) {
                names.append(l.providerName)
            }
        }
        guard !names.isEmpty else { return back("access_denied", "an account already uses this email address; ask an administrator to link this sign-in") }
        let pending = PendingLink(
            id: Secrets.randomToken(), poolID: pool, identity: link, attributes: attributes, candidateUserIDs: candidates, clientID: client.clientID,
            redirectURI: request.redirectURI, appState: request.appState, appNonce: request.nonce, codeChallenge: request.codeChallenge,
            scope: request.scope, browserBindingHash: binding, createdAt: now, expiresAt: now.addingTimeInterval(PendingLink.lifetime))
        try await directory.savePendingLink(pending)
        countLogin(provider: provider.name, outcome: "link_proof_requested")
        let issuer = configuration.issuer(for: pool)
        let choices = names.map { (name: $0, url: "\(issuer)/link/prove?" + FormEncoding.encode([("pending", pending.id), ("provider", $0)])) }
        var cancel = [("error", "access_denied"), ("error_description", "the person did not link the account")]
        if let s = request.appState { cancel.append(("state", s)) }
        cancel.append(("iss", issuer))
        return Responses.html(Pages.linkProof(poolName: poolRecord.displayName, newProvider: provider.name, choices: choices, cancelURL: Responses.appending(cancel, to: request.redirectURI)))
    }

    /// `GET /{pool}/link/prove?pending=…&provider=…`: starts the sign-in with a provider of the
    /// existing account; its completion makes the pending link.
    func proveLink(_ request: Request, _ context: GatehouseRequestContext) async throws -> Response {
        let pool = try await pool(context)
        let q = try query(request)
        let now = clock.now()
        guard let secret = request.cookie(named: browserCookieName), secret.utf8.count <= 64, let id = q["pending"], id.utf8.count <= 128,
            let pending = try await directory.pendingLink(id: id, browserBindingHash: Secrets.hash(secret), now: now), pending.poolID == pool.id
        else {
            throw PageError(status: .badRequest, title: "Link expired", message: "This account link has expired or was started in another browser. Please sign in again from the application.")
        }
        guard let client = try await directory.client(pool: pool.id, clientID: pending.clientID), Self.registered(pending.redirectURI, in: client.redirectURIs) != nil else {
            throw PageError(status: .badRequest, title: "Unknown application", message: "The application is no longer registered.")
        }
        var allowed: [String] = []
        for user in pending.candidateUserIDs { allowed += try await directory.linkedIdentities(pool: pool.id, userID: user).map(\.providerName) }
        allowed = allowed.filter { client.allowedProviders.isEmpty || client.allowedProviders.contains($0) }
        guard let name = q["provider"], allowed.contains(name), let provider = try await directory.provider(pool: pool.id, name: name) else {
            throw PageError(status: .badRequest, title: "Unknown sign-in", message: "That sign-in is not one of the existing account's.")
        }
        let adapter: any FederationAdapter
        do { adapter = try adapters.adapter(for: provider) } catch {
            throw PageError(status: .badRequest, title: "Sign-in unavailable", message: "That sign-in cannot be used right now.")
        }
        var transaction = LoginTransaction(
            id: Secrets.randomToken(), poolID: pool.id, clientID: pending.clientID, redirectURI: pending.redirectURI,
            appState: pending.appState, appNonce: pending.appNonce, codeChallenge: pending.codeChallenge, scope: pending.scope, providerName: provider.name,
            upstreamNonce: Secrets.randomToken(), upstreamCodeVerifier: Secrets.randomToken(),
            browserBindingHash: pending.browserBindingHash, createdAt: now, expiresAt: now.addingTimeInterval(LoginTransaction.lifetime))
        transaction.pendingLinkID = pending.id
        do {
            return try await startUpstream(transaction, provider: provider, adapter: adapter, browserSecret: secret)
        } catch let e as AppRedirectError {
            return errorRedirect(e, redirectURI: pending.redirectURI, state: pending.appState, issuer: configuration.issuer(for: pool.id))
        }
    }

    struct LinkRefusal: Error {
        let reason: String
    }

    /// Checks a fresh upstream login made for a signed-in user's link intent: the upstream must have
    /// authenticated the person after the request began, and the identity must not be another
    /// account's. The link itself is made when the code is redeemed (`exchangeCode`), with the app's
    /// PKCE verifier. An identity of another account is refused, never moved (only admins move them).
    func linkToSignedInUser(_ owner: String, link: LinkedIdentity, identity: VerifiedIdentity, request: AppRequest, now: Date) async throws -> Result<(User, LinkedIdentity), LinkRefusal> {
        let skew: TimeInterval = 60
        guard let authTime = identity.authTime, let started = request.startedAt, authTime >= started.addingTimeInterval(-skew) else {
            return .failure(LinkRefusal(reason: "linking needs a fresh sign-in at the identity provider, and it did not confirm one"))
        }
        guard let user = try await directory.user(pool: link.poolID, id: owner), user.enabled else {
            return .failure(LinkRefusal(reason: "the account to link to no longer exists or is disabled"))
        }
        var owned = link
        owned.userID = owner
        if let existing = try await directory.userID(pool: link.poolID, providerName: link.providerName, upstreamIssuer: link.upstreamIssuer, upstreamSubject: link.upstreamSubject),
            existing != owner
        {
            return .failure(LinkRefusal(reason: "this sign-in already belongs to another account; nothing was linked"))
        }
        return .success((user, owned))
    }
}
