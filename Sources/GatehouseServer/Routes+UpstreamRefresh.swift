import Foundation
import Logging
import HTTPTypes
import GatehouseCore
import GatehouseMapping

extension Gatehouse {
    /// Renews the upstream login a refresh token family keeps: the upstream's refresh token is
    /// spent at the upstream, its answer verified as at login, mapped, and the user updated (so a
    /// group removed upstream is removed here). When the upstream refuses, or the identity no longer
    /// belongs to the family's user, the family is revoked and the refresh fails with
    /// `invalid_grant`; when it cannot be reached, the refresh fails with nothing spent.
    /// Returns the family's next upstream grant, for the rotation to store; `nil` when the provider
    /// no longer keeps upstream logins.
    func renewUpstream(family: RefreshTokenFamily, pool: Pool, now: Date) async throws -> UpstreamGrant? {
        guard let upstream = family.upstream else { return nil }
        func revoke(_ reason: String, outcome: String) async throws -> OAuthError {
            logger.warning("upstream refresh refused; family revoked", metadata: ["provider": "\(family.providerName)", "reason": "\(reason)"])
            countLogin(provider: family.providerName, outcome: outcome)
            try await directory.revokeFamily(id: family.id, now: now)
            return OAuthError.invalidGrant("the identity provider no longer accepts this sign-in; sign in again")
        }
        guard let provider = try await directory.provider(pool: pool.id, name: family.providerName) else {
            throw try await revoke("the provider was removed", outcome: "refresh_provider_removed")
        }
        guard provider.oidc?.keepsUpstreamRefreshToken == true else { return nil }
        let adapter = try adapters.adapter(for: provider)
        guard let refreshing = adapter as? any UpstreamRefreshing,
            let opened = try? masterKey.open(upstream.sealedRefreshToken, purpose: UpstreamGrant.purpose(pool: pool.id, familyID: family.id))
        else { throw try await revoke("the kept upstream login cannot be used", outcome: "refresh_unusable") }
        let kept = RedactedSecret(String(decoding: opened, as: UTF8.self))
        let identity: VerifiedIdentity
        do {
            identity = try await refreshing.refresh(token: kept, issuer: upstream.issuer, subject: upstream.subject, now: now)
        } catch let e as UpstreamError {
            for f in e.failures { countVerificationFailure(f.check) }
            switch e.kind {
            case .upstreamRefused, .verification:
                throw try await revoke("\(e)", outcome: "refresh_upstream_refused")
            case .unreachable, .misconfigured:
                logger.warning("upstream refresh failed; nothing spent", metadata: ["provider": "\(provider.name)", "reason": "\(e)"])
                throw OAuthError(code: "temporarily_unavailable", description: "the identity provider cannot be reached; try again later", status: .serviceUnavailable)
            }
        }
        let mapping: CompiledMapping
        do { mapping = try mappings.compiled(pool: pool, provider: provider) } catch {
            logger.error("attribute mapping refused", metadata: ["provider": "\(provider.name)", "reason": "\(error)"])
            throw OAuthError(code: "temporarily_unavailable", description: "the identity provider's attribute mapping is invalid", status: .serviceUnavailable)
        }
        let mapped = mapping.apply(identity.attributes)
        logMappingFailures(mapped, provider: provider.name)
        let link = LinkedIdentity(poolID: pool.id, providerName: provider.name, providerKind: identity.providerKind, upstreamIssuer: identity.upstreamIssuer, upstreamSubject: identity.upstreamSubject, userID: "", createdAt: now)
        // Only the identity the family signed in with, still on the family's user, is updated;
        // a refresh never creates or links anything.
        let login = FederatedLogin(
            identity: link, username: AttributeMapper.username(for: identity), attributes: mapped.attributes,
            groups: mapped.groupsUpdate == .firstLogin ? nil : mapped.groups, newIdentity: .refuse,
            trustedEmail: Self.trustedEmail(provider.linkSettings, mapped))
        guard identity.upstreamIssuer == upstream.issuer, identity.upstreamSubject == upstream.subject,
            case .user(let user, _) = try await directory.resolveLogin(login, now: now), user.id == family.userID
        else { throw try await revoke("the upstream identity is no longer this user's", outcome: "refresh_identity_moved") }
        let next = identity.upstreamRefreshToken ?? kept
        let sealed = try masterKey.seal(Data(next.value.utf8), purpose: UpstreamGrant.purpose(pool: pool.id, familyID: family.id))
        countLogin(provider: provider.name, outcome: "refresh_upstream_renewed")
        return UpstreamGrant(sealedRefreshToken: sealed, issuer: upstream.issuer, subject: upstream.subject)
    }
}
