import Foundation
import Logging
import GatehouseJOSE
package import Hummingbird
import HTTPTypes
import NIOCore
package import GatehouseCore
import GatehouseIssuer
import GatehouseOIDC
import GatehouseJOSE

extension Gatehouse {
    /// The form body of a POST; anything but `application/x-www-form-urlencoded`, a repeated
    /// parameter or malformed encoding is `invalid_request`.
    func form(_ request: Request) async throws -> [String: String] {
        guard request.hasMediaType("application/x-www-form-urlencoded") else {
            throw OAuthError.invalidRequest("the body must be application/x-www-form-urlencoded")
        }
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: 64 * 1024) } catch {
            throw OAuthError(code: "invalid_request", description: "the body is too large", status: .contentTooLarge)
        }
        guard let form = buffer.withUnsafeReadableBytes({ FormEncoding.decode(bytes: $0.bindMemory(to: UInt8.self)) }) else {
            throw OAuthError.invalidRequest("a parameter is repeated or malformed")
        }
        return form
    }

    /// Authenticates the client (RFC 6749 §2.3): HTTP Basic, or `client_id` + `client_secret` in the
    /// body, or `client_id` alone for a public client. Exactly one method may be used.
    func authenticateClient(_ request: Request, form: [String: String], pool: PoolID) async throws -> AppClient {
        var id: String?
        var secret: String?
        // Read as bytes: the header is the client's to fill, and a Unicode comparison of hostile
        // text can take time growing with the square of its length (see `StreamSafeText`).
        let basic = request.credentials(scheme: "basic ").map { encoded -> (String, String) in
            guard let raw = Data(base64Encoded: encoded) else { return ("", "") }
            return [UInt8](raw).withUnsafeBufferPointer { bytes in
                guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")),
                    let user = FormEncoding.decodeComponent(bytes: UnsafeBufferPointer(rebasing: bytes[..<colon])),
                    let pass = FormEncoding.decodeComponent(bytes: UnsafeBufferPointer(rebasing: bytes[(colon + 1)...]))
                else { return ("", "") }
                return (user, pass)
            }
        }
        if let (u, p) = basic {
            if form["client_secret"] != nil { throw OAuthError.invalidRequest("use one client authentication method") }
            if let formID = form["client_id"], formID != u { throw OAuthError.invalidClient("client_id differs from the authenticated client", basic: true) }
            id = u
            secret = p
        } else {
            id = form["client_id"]
            secret = form["client_secret"]
        }
        guard let clientID = id, !clientID.isEmpty, clientID.utf8.count <= 128,
            let client = try await directory.client(pool: pool, clientID: clientID)
        else { throw OAuthError.invalidClient("client authentication failed", basic: basic != nil) }
        if let hash = client.secretHash {
            guard let secret, Secrets.constantTimeEquals(Secrets.hash(secret), hash) else {
                throw OAuthError.invalidClient("client authentication failed", basic: basic != nil)
            }
        } else if secret != nil {
            throw OAuthError.invalidClient("this client is public and has no secret", basic: basic != nil)
        }
        return client
    }

    func token(_ request: Request, _ context: GatehouseRequestContext) async throws -> Response {
        let started = ContinuousClock.now
        let pool = try await pool(context)
        let form = try await form(request)
        let client = try await authenticateClient(request, form: form, pool: pool.id)
        let grant = form["grant_type"] ?? ""
        let response: Response
        switch grant {
        case "authorization_code": response = try await exchangeCode(form: form, pool: pool, client: client)
        case "refresh_token": response = try await refresh(form: form, pool: pool, client: client)
        case "": throw OAuthError.invalidRequest("grant_type is required")
        default: throw OAuthError(code: "unsupported_grant_type", description: "grant_type must be authorization_code or refresh_token")
        }
        let elapsed = ContinuousClock.now - started
        recordTokenLatency(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18, grant: grant)
        return response
    }

    package func exchangeCode(form: [String: String], pool: Pool, client: AppClient) async throws -> Response {
        guard let code = form["code"], !code.isEmpty, code.utf8.count <= 256 else { throw OAuthError.invalidRequest("code is required") }
        guard let redirectURI = form["redirect_uri"] else { throw OAuthError.invalidRequest("redirect_uri is required") }
        let now = clock.now()
        let hash = Secrets.hash(code)
        // Check the binding first: a presentation by the wrong client, with the wrong redirect URI
        // or PKCE verifier, is refused without burning the code of the rightful client.
        guard let stored = try await directory.authorizationCode(hash: hash) else {
            throw OAuthError.invalidGrant("the authorization code is invalid or expired")
        }
        guard stored.poolID == pool.id, stored.clientID == client.clientID else { throw OAuthError.invalidGrant("the code was issued to another client") }
        guard stored.redirectURI.utf8.elementsEqual(redirectURI.utf8) else { throw OAuthError.invalidGrant("redirect_uri does not match the authorization request") }
        if let challenge = stored.codeChallenge {
            guard let verifier = form["code_verifier"], Secrets.isWellFormedPKCEVerifier(verifier),
                Secrets.constantTimeEquals(Secrets.pkceChallenge(verifier: verifier), challenge)
            else { throw OAuthError.invalidGrant("PKCE verification failed") }
        } else if form["code_verifier"] != nil {
            throw OAuthError.invalidGrant("a code_verifier was sent for a request without code_challenge")
        }
        let grant: AuthorizationCode
        switch try await directory.redeemAuthorizationCode(hash: hash, now: now) {
        case .redeemed(let c): grant = c
        case .replayed:
            countVerificationFailure("code_replay")
            throw OAuthError.invalidGrant("the authorization code was already used; tokens issued from it are revoked")
        case .invalid: throw OAuthError.invalidGrant("the authorization code is invalid or expired")
        }
        guard let user = try await directory.user(pool: pool.id, id: grant.userID), user.enabled else {
            throw OAuthError.invalidGrant("the user is unavailable")
        }
        if let link = grant.pendingSelfLink {
            // The signed-in user's link, now that the app proved with its verifier that it asked for it.
            guard link.userID == user.id, link.poolID == pool.id, try await directory.claimIdentity(link, actor: "user:\(user.id)", now: now) else {
                throw OAuthError.invalidGrant("this sign-in already belongs to another account; nothing was linked")
            }
        }
        let refreshToken = Secrets.randomToken()
        var family = RefreshTokenFamily(id: grant.familyID, poolID: pool.id, clientID: client.clientID, userID: user.id, scope: grant.scope, authTime: grant.authTime, providerName: grant.providerName, createdAt: now, expiresAt: now.addingTimeInterval(TimeInterval(client.refreshTokenTTL)))
        family.acr = grant.acr
        family.amr = grant.amr
        family.upstreamSessionIndex = grant.upstreamSessionIndex
        family.authTimeStated = grant.authTimeStated
        if let upstream = grant.upstream {
            // Sealed for the code's family id, which the family keeps.
            family.upstream = upstream
        }
        do {
            try await directory.createFamily(family, firstTokenHash: Secrets.hash(refreshToken))
        } catch let e as DirectoryError where e.code == .conflict {
            throw OAuthError.invalidGrant("the authorization code was already used")
        }
        let tokens = try await mint(pool: pool, client: client, user: user, family: family, nonce: grant.nonce, now: now)
        return tokenResponse(tokens, refreshToken: refreshToken)
    }

    private func refresh(form: [String: String], pool: Pool, client: AppClient) async throws -> Response {
        guard let presented = form["refresh_token"], !presented.isEmpty, presented.utf8.count <= 256 else {
            throw OAuthError.invalidRequest("refresh_token is required")
        }
        let now = clock.now()
        let next = Secrets.randomToken()
        let requested = form["scope"].map { $0.split(separator: " ").map(String.init) }
        // A family that keeps its upstream login renews it first, before anything is spent: if the
        // upstream cannot be reached the app may retry with the same token; if it refuses, the
        // family is revoked.
        let presentedHash = Secrets.hash(presented)
        var renewed: UpstreamGrant? = nil
        if let live = try await directory.liveFamily(tokenHash: presentedHash, clientID: client.clientID, pool: pool.id, now: now), live.upstream != nil {
            // What rotation would refuse is refused before the upstream spends its token.
            if let requested, !requested.allSatisfy(live.scope.contains) {
                throw OAuthError(code: "invalid_scope", description: "a refresh cannot widen the scope")
            }
            renewed = try await renewUpstream(family: live, pool: pool, now: now)
        }
        var family: RefreshTokenFamily
        // The renewed upstream grant is stored in the rotation's transaction: both or neither.
        switch try await directory.rotate(presentedHash: presentedHash, clientID: client.clientID, pool: pool.id, requestedScope: requested, newTokenHash: Secrets.hash(next), upstream: renewed, now: now) {
        case .rotated(let f): family = f
        case .reuseDetected:
            countVerificationFailure("refresh_reuse")
            throw OAuthError.invalidGrant("the refresh token was already used; its family is revoked")
        case .invalid: throw OAuthError.invalidGrant("the refresh token is invalid, expired or revoked")
        case .scopeWidened: throw OAuthError(code: "invalid_scope", description: "a refresh cannot widen the scope")
        }
        // RFC 6749 §6: the new tokens carry the narrower scope if one was asked for; the refresh
        // token keeps the family's.
        if let requested, !requested.isEmpty { family.scope = requested }
        guard let user = try await directory.user(pool: pool.id, id: family.userID), user.enabled else {
            try await directory.revokeFamily(id: family.id, now: now)
            throw OAuthError.invalidGrant("the user is unavailable")
        }
        let tokens = try await mint(pool: pool, client: client, user: user, family: family, nonce: nil, now: now)
        return tokenResponse(tokens, refreshToken: next)
    }

    func mint(pool: Pool, client: AppClient, user: User, family: RefreshTokenFamily, nonce: String?, now: Date) async throws -> MintedTokens {
        async let groups = directory.groups(pool: pool.id, userID: user.id)
        async let identities = directory.linkedIdentities(pool: pool.id, userID: user.id)
        var request = TokenRequest(
            issuer: configuration.issuer(for: pool.id), pool: pool.id, client: client, user: user, groups: try await groups,
            identities: try await identities, scope: family.scope, nonce: nonce, authTime: family.authTime, familyID: family.id, now: now)
        request.acr = family.acr
        request.amr = family.amr ?? []
        return try await minter.mint(request)
    }

    func tokenResponse(_ tokens: MintedTokens, refreshToken: String) -> Response {
        Responses.json([
            "id_token": .string(tokens.idToken), "access_token": .string(tokens.accessToken),
            "refresh_token": .string(refreshToken), "token_type": .string("Bearer"),
            "expires_in": .number(Double(tokens.accessTokenExpiresIn)),
        ])
    }

    // MARK: userInfo, revoke, logout

    func userInfo(_ request: Request, _ context: GatehouseRequestContext) async throws -> Response {
        let pool = try await pool(context)
        let (user, token) = try await bearerUser(request, pool: pool.id)
        let scope = token.scope
        var claims = TokenMinter.userClaims(user: user, scope: scope)
        claims["sub"] = .string(user.id)
        claims["username"] = .string(user.username)
        return Responses.json(claims)
    }

    /// RFC 7009: the client authenticates; an unknown or foreign token is answered 200 all the same.
    func revoke(_ request: Request, _ context: GatehouseRequestContext) async throws -> Response {
        let pool = try await pool(context)
        let form = try await form(request)
        let client = try await authenticateClient(request, form: form, pool: pool.id)
        guard let token = form["token"], !token.isEmpty else { throw OAuthError.invalidRequest("token is required") }
        let now = clock.now()
        if token.utf8.count <= 256 {
            try await directory.revokeFamily(containing: Secrets.hash(token), clientID: client.clientID, now: now)
        }
        if token.contains("."), let verified = try? await accessTokens.verify(token, pool: pool.id, issuer: configuration.issuer(for: pool.id), now: now),
            verified.clientID == client.clientID
        {
            try await directory.revokeFamily(id: verified.familyID, now: now)
        }
        return Response(status: .ok, headers: [.cacheControl: "no-store"])
    }

    /// Logout: `client_id` with `logout_uri` (Cognito) or `post_logout_redirect_uri` (OIDC), which must be
    /// registered exactly. An `id_token_hint` Gatehouse signed revokes that login's refresh tokens.
    func logout(_ request: Request, _ context: GatehouseRequestContext) async throws -> Response {
        let pool = try await pool(context)
        let q = try query(request)
        guard let clientID = q["client_id"], let client = try await directory.client(pool: pool.id, clientID: clientID) else {
            throw PageError(status: .badRequest, title: "Unknown application", message: "The application that sent you here is not registered.")
        }
        guard let asked = q["logout_uri"] ?? q["post_logout_redirect_uri"], let target = Self.registered(asked, in: client.logoutURIs) else {
            throw PageError(status: .badRequest, title: "Unregistered address", message: "The application asked to return to an address it has not registered for sign-out.")
        }
        var params: [(String, String)] = []
        if let s = q["state"] { params.append(("state", s)) }
        let location = params.isEmpty ? target : Responses.appending(params, to: target)
        let expired = Cookie(name: browserCookieName, value: "", maxAge: 0, path: "/", secure: configuration.secureCookies, httpOnly: true, sameSite: .lax)
        if let hint = q["id_token_hint"], let familyID = try await idTokenHintFamily(hint, pool: pool.id, clientID: client.clientID) {
            let now = clock.now()
            try await directory.revokeFamily(id: familyID, now: now)
            // A SAML login also ends at the IdP (SP-initiated single logout), then comes back here.
            do {
                if let family = try await directory.family(id: familyID),
                    let upstream = try await samlLogoutRedirect(pool: pool.id, family: family, clientID: client.clientID, returnTo: location, now: now) {
                    return upstreamResponse(upstream, cookies: [expired])
                }
            } catch {
                // Gatehouse's side is done; the IdP's cannot be reached from here.
                logger.warning("SAML logout at the IdP cannot start", metadata: ["reason": "\(error)"])
            }
        }
        return Responses.redirect(location, cookies: [expired])
    }

    /// The family of an ID token this pool signed for this client (expiry not required: a hint may be old).
    func idTokenHintFamily(_ token: String, pool: PoolID, clientID: String) async throws -> String? {
        guard let jws = try? UnverifiedJWS(compact: token), let kid = jws.keyID,
            let (key, alg) = try await keyRing.verificationKey(pool: pool, kid: kid), jws.algorithm == alg.rawValue,
            let jwsAlg = JWSAlgorithm(rawValue: alg.rawValue), jwsAlg.verify(signature: jws.signature, input: jws.signingInput, key: key),
            jws.claims["iss"]?.stringValue == configuration.issuer(for: pool), jws.claims["aud"]?.stringValue == clientID
        else { return nil }
        return jws.claims["origin_jti"]?.stringValue
    }
}
