import Foundation
import GatehouseCore
import GatehouseIssuer
import GatehouseJOSE
import Hummingbird
import HTTPTypes

/// A signed-in user's own links, with an access token carrying the `gatehouse.links` scope: ask to
/// link another provider (a single-use `link_intent` for `/oauth2/authorize`), list links, remove one
/// (never the last). Adding and removing also need a sign-in of the last ten minutes.
extension Gatehouse {
    /// The user behind a Bearer access token of this pool whose refresh family is live.
    func bearerUser(_ request: Request, pool: PoolID) async throws -> (user: User, token: LocalAccessTokenVerifier.Verified) {
        let (user, token, _) = try await bearerSession(request, pool: pool)
        return (user, token)
    }

    /// `bearerUser` with the token's live refresh family, for checks about how the user signed in.
    func bearerSession(_ request: Request, pool: PoolID) async throws -> (user: User, token: LocalAccessTokenVerifier.Verified, family: RefreshTokenFamily) {
        let invalid = OAuthError(code: "invalid_token", description: "the access token is invalid", status: .unauthorized, wwwAuthenticate: "Bearer error=\"invalid_token\"")
        guard let token = request.bearerCredential(maximumLength: UnverifiedJWS.maximumSize) else {
            throw OAuthError(code: "invalid_request", description: "a Bearer access token is required", status: .unauthorized, wwwAuthenticate: "Bearer")
        }
        guard let verified = try? await accessTokens.verify(token, pool: pool, issuer: configuration.issuer(for: pool), now: clock.now()) else { throw invalid }
        guard let family = try await directory.family(id: verified.familyID), family.revokedAt == nil,
            let user = try await directory.user(pool: pool, id: verified.subject), user.enabled
        else { throw invalid }
        return (user, verified, family)
    }

    /// Changing an account's sign-ins is sensitive: the token must carry the `gatehouse.links` scope
    /// and come from a sign-in of the last ten minutes.
    func linkManager(_ request: Request, pool: PoolID) async throws -> (user: User, token: LocalAccessTokenVerifier.Verified) {
        let (user, token, family) = try await bearerSession(request, pool: pool)
        guard token.scope.contains(LinkIntent.scope) else {
            throw OAuthError(code: "insufficient_scope", description: "the access token lacks the \(LinkIntent.scope) scope", status: .forbidden, wwwAuthenticate: "Bearer error=\"insufficient_scope\", scope=\"\(LinkIntent.scope)\"")
        }
        // The sign-in's time must be the upstream's word: a provider that states none (GitHub,
        // Facebook) may have signed the person in from a session of last year.
        guard family.authTimeStated == true, let authTime = token.authTime, clock.now().timeIntervalSince(authTime) <= LinkIntent.maximumAuthenticationAge else {
            throw OAuthError(code: "insufficient_user_authentication", description: "sign in again to change this account's sign-ins", status: .unauthorized, wwwAuthenticate: "Bearer error=\"insufficient_user_authentication\", max_age=\"\(Int(LinkIntent.maximumAuthenticationAge))\"")
        }
        return (user, token)
    }

    /// `POST /{pool}/oauth2/links/intent` (form `provider`, `code_challenge`): a ticket valid five
    /// minutes, once, for `/oauth2/authorize?…&link_intent=…&code_challenge=…` by the same client.
    func linkIntent(_ request: Request, _ context: GatehouseRequestContext) async throws -> Response {
        let pool = try await pool(context)
        let (user, token) = try await linkManager(request, pool: pool.id)
        let clientID = token.clientID
        let form = try await form(request)
        guard let name = form["provider"], let provider = try await directory.provider(pool: pool.id, name: name),
            let client = try await directory.client(pool: pool.id, clientID: clientID),
            client.allowedProviders.isEmpty || client.allowedProviders.contains(provider.name)
        else { throw OAuthError.invalidRequest("provider is not an identity provider this client may use") }
        guard let challenge = form["code_challenge"], challenge.utf8.count == 43, Base64URL.decode(challenge)?.count == 32 else {
            throw OAuthError.invalidRequest("code_challenge (S256) is required: the link is made when the code is redeemed with its verifier")
        }
        let ticket = Secrets.randomToken()
        let now = clock.now()
        try await directory.saveLinkIntent(LinkIntent(
            ticketHash: Secrets.hash(ticket), poolID: pool.id, userID: user.id, clientID: clientID, providerName: provider.name,
            familyID: token.familyID, codeChallenge: challenge, createdAt: now, expiresAt: now.addingTimeInterval(LinkIntent.lifetime)))
        return Responses.json(["link_intent": .string(ticket), "expires_in": .number(LinkIntent.lifetime)])
    }

    /// `GET /{pool}/oauth2/links`: the user's linked identities, in Cognito's `identities` shape.
    func listOwnLinks(_ request: Request, _ context: GatehouseRequestContext) async throws -> Response {
        let pool = try await pool(context)
        let (user, token) = try await bearerUser(request, pool: pool.id)
        guard token.scope.contains(LinkIntent.scope) else {
            throw OAuthError(code: "insufficient_scope", description: "the access token lacks the \(LinkIntent.scope) scope", status: .forbidden, wwwAuthenticate: "Bearer error=\"insufficient_scope\", scope=\"\(LinkIntent.scope)\"")
        }
        return Responses.json(["identities": TokenMinter.identitiesClaim(try await directory.linkedIdentities(pool: pool.id, userID: user.id))])
    }

    /// `DELETE /{pool}/oauth2/links?provider=…&subject=…[&issuer=…]`: removes one of the user's own
    /// links; the last one stays (409).
    func removeOwnLink(_ request: Request, _ context: GatehouseRequestContext) async throws -> Response {
        let pool = try await pool(context)
        let (user, _) = try await linkManager(request, pool: pool.id)
        let q = try query(request)
        guard let name = q["provider"], let subject = q["subject"] else { throw OAuthError.invalidRequest("provider and subject are required") }
        let mine = try await directory.linkedIdentities(pool: pool.id, userID: user.id)
        let issuer = q["issuer"]
        guard let link = mine.first(where: { l in l.providerName == name && l.upstreamSubject == subject && (issuer == nil || issuer == l.upstreamIssuer) }) else {
            throw OAuthError(code: "invalid_request", description: "no such link on this account", status: .notFound)
        }
        do {
            try await directory.unlinkIdentity(pool: pool.id, providerName: link.providerName, upstreamIssuer: link.upstreamIssuer, upstreamSubject: link.upstreamSubject, owner: user.id, actor: "user:\(user.id)", now: clock.now())
        } catch let e as DirectoryError where e.code == .conflict {
            throw OAuthError(code: "invalid_request", description: "the last sign-in of an account cannot be removed", status: .conflict)
        } catch let e as DirectoryError where e.code == .notFound {
            throw OAuthError(code: "invalid_request", description: "no such link on this account", status: .notFound)
        }
        return Response(status: .noContent)
    }
}
