import Foundation
import Testing
import GatehouseCore
import GatehouseJOSE
import GatehouseTestSupport
@testable import GatehouseIssuer

@Suite struct IssuerTests {
    let pool = try! PoolID("acme")
    let t0 = Date(epochSeconds: 1_800_000_000)

    func ring(_ clock: ManualClock, store: MemorySigningKeyStore = MemorySigningKeyStore()) throws -> SigningKeyRing {
        SigningKeyRing(store: store, masterKey: try MasterKey(base64: MasterKey.generateBase64()), clock: clock, reloadInterval: 0)
    }

    @Test func rotationPublishesBeforeSigningAndKeepsTheOldKeyUntilItsTokensExpire() async throws {
        let clock = ManualClock(t0)
        let ring = try ring(clock)
        try await ring.ensureKey(pool: pool, algorithm: .es256)
        try await ring.ensureKey(pool: pool, algorithm: .es256)
        let first = try await ring.currentSigner(pool: pool).kid
        #expect(try await ring.jwks(pool: pool).keys.map(\.kid) == [first])

        let next = try await ring.rotate(pool: pool, algorithm: .es256, activationDelay: 3600)
        // Published at once, but the old key still signs.
        #expect(Set(try await ring.jwks(pool: pool).keys.compactMap(\.kid)) == [first, next.kid])
        #expect(try await ring.currentSigner(pool: pool).kid == first)

        clock.advance(by: 3600)
        #expect(try await ring.currentSigner(pool: pool).kid == next.kid)
        #expect(try await ring.jwks(pool: pool).keys.count == 2, "the retired key stays published")

        clock.advance(by: SigningKeyRing.retentionAfterRetirement + 1)
        #expect(try await ring.jwks(pool: pool).keys.compactMap(\.kid) == [next.kid])
        #expect(try await ring.verificationKey(pool: pool, kid: first) == nil)
    }

    @Test func sealedKeysOpenOnlyWithTheirMasterKey() async throws {
        let clock = ManualClock(t0)
        let store = MemorySigningKeyStore()
        try await ring(clock, store: store).ensureKey(pool: pool, algorithm: .rs256)
        let stored = await store.keys
        #expect(stored.count == 1)
        #expect(!stored[0].sealedPrivateKey.contains("PRIVATE KEY"))
        let stranger = try ring(clock, store: store)
        await #expect(throws: ConfigurationError.self) { try await stranger.currentSigner(pool: pool) }
    }

    @Test(arguments: [SigningAlgorithm.es256, .rs256])
    func mintedTokensVerifyAndCarryCognitoStyleClaims(_ alg: SigningAlgorithm) async throws {
        let clock = ManualClock(t0)
        let ring = try ring(clock)
        try await ring.ensureKey(pool: pool, algorithm: alg)
        let client = AppClient(poolID: pool, clientID: "web", name: "Web", secretHash: nil, redirectURIs: ["https://a.example/cb"], idTokenTTL: 600, createdAt: t0)
        let user = User(poolID: pool, id: "u-1", username: "Okta_1", attributes: ["email": "a@x.com", "email_verified": "true", "name": "Ada", "phone_number": "+1", "custom:tier": "gold"], createdAt: t0, updatedAt: t0)
        let link = LinkedIdentity(poolID: pool, providerName: "Okta", providerKind: .oidc, upstreamIssuer: "https://okta.example", upstreamSubject: "1", userID: "u-1", createdAt: t0)
        let minted = try await TokenMinter(keyRing: ring).mint(TokenRequest(
            issuer: "https://gh.example/acme", pool: pool, client: client, user: user, groups: ["admins"], identities: [link],
            scope: ["openid", "email"], nonce: "n-1", authTime: t0, familyID: "fam", now: t0))

        let id = try UnverifiedJWS(compact: minted.idToken)
        #expect(id.algorithm == alg.rawValue)
        let kid = try #require(id.keyID)
        let found = try await ring.verificationKey(pool: pool, kid: kid)
        let (key, _) = try #require(found)
        #expect(JWSAlgorithm(rawValue: alg.rawValue)!.verify(signature: id.signature, input: id.signingInput, key: key))
        #expect(id.claims["aud"]?.stringValue == "web")
        #expect(id.claims["nonce"]?.stringValue == "n-1")
        #expect(id.claims["exp"]?.numberValue == Double(t0.epochSeconds + 600))
        #expect(id.claims["email_verified"] == .bool(true))
        #expect(id.claims["name"] == nil, "profile claims need the profile scope")
        #expect(id.claims["phone_number"] == nil)
        #expect(id.claims["custom:tier"]?.stringValue == "gold")
        #expect(id.claims["groups"] == .array([.string("admins")]))

        let verified = try await LocalAccessTokenVerifier(keyRing: ring).verify(minted.accessToken, pool: pool, issuer: "https://gh.example/acme", now: t0)
        #expect(verified.subject == "u-1")
        #expect(verified.familyID == "fam")
        await #expect(throws: VerificationError.self) {
            try await LocalAccessTokenVerifier(keyRing: ring).verify(minted.idToken, pool: pool, issuer: "https://gh.example/acme", now: t0)
        }
        await #expect(throws: VerificationError.self) {
            try await LocalAccessTokenVerifier(keyRing: ring).verify(minted.accessToken, pool: pool, issuer: "https://gh.example/acme", now: t0.addingTimeInterval(3601))
        }
    }
}
