import Foundation
import Testing
import GatehouseCore
import GatehouseJOSE
import GatehouseOIDC
import GatehouseTestSupport

/// Runs `body` against a live test provider and always stops both it and the HTTP client.
func withProvider(_ body: (TestOpenIDProvider, UpstreamHTTP) async throws -> Void) async throws {
    let op = try TestOpenIDProvider()
    let http = UpstreamHTTP()
    do {
        try await op.start()
        try await body(op, http)
    } catch {
        try? await http.shutdown()
        await op.stop()
        throw error
    }
    try await http.shutdown()
    await op.stop()
}

/// Discovery and JWKS caches: lifetimes from HTTP cache headers within bounds, background refresh,
/// one fetch shared by concurrent callers, the last good copy kept when the provider fails.
@Suite struct ProviderCaches {
    @Test(arguments: [
        ([("Cache-Control", "public, max-age=120")], 120.0),
        ([("cache-control", "max-age=5")], 60),
        ([("Cache-Control", "no-store")], 60),
        ([("Cache-Control", "no-cache, max-age=900")], 60),
        ([("Cache-Control", "max-age=9999999")], 86400),
        ([("Expires", "Sun, 22 Nov 2026 11:00:00 GMT"), ("Date", "Sun, 22 Nov 2026 10:00:00 GMT")], 3600),
        ([("Cache-Control", "max-age=300"), ("Expires", "Sun, 22 Nov 2026 11:00:00 GMT"), ("Date", "Sun, 22 Nov 2026 10:00:00 GMT")], 300),
        ([("Expires", "0")], 3600),
        ([("Cache-Control", "max-age=nan")], 3600),
        ([("Cache-Control", "max-age=-5")], 3600),
        ([], 3600),
    ] as [([(String, String)], TimeInterval)])
    func lifetimesComeFromCacheHeadersWithinBounds(_ headers: [(String, String)], _ expected: TimeInterval) {
        #expect(CachePolicy().lifetime(headers: headers) == expected)
    }

    /// Waits (briefly, bounded) for a background fetch to land.
    func eventually(_ condition: () async -> Bool) async throws -> Bool {
        for _ in 0..<100 {
            if await condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    @Test func theJWKSFollowsMaxAgeAndRefreshesInTheBackground() async throws {
        try await withProvider { op, http in
            op.update { $0.cacheControl = "public, max-age=600" }
            let clock = ManualClock(Date())
            let cache = JWKSCache(jwksURI: op.issuer + "/jwks", http: http, clock: clock)
            _ = try await cache.keys(refreshingFor: nil)
            #expect(await cache.lifetime == 600)
            clock.advance(by: 400)
            _ = try await cache.keys(refreshingFor: nil)
            #expect(op.jwksFetchCount == 1, "fresh: served from the cache")
            clock.advance(by: 60)
            // Past three quarters of its life: served at once, renewed behind.
            #expect(try await cache.keys(refreshingFor: nil).count == 1)
            #expect(try await eventually { op.jwksFetchCount == 2 })
            #expect(try await eventually { await cache.fetchCount == 2 })
            clock.advance(by: 100)
            _ = try await cache.keys(refreshingFor: nil)
            #expect(op.jwksFetchCount == 2, "the renewed copy counts from its own fetch")
        }
    }

    @Test func aHugeKeySetIsCutToItsFirstKeys() async throws {
        let op = try TestOpenIDProvider(algorithm: .es256)
        for _ in 0..<40 { try op.rotateKey() }
        let http = UpstreamHTTP()
        try await op.start()
        let cache = JWKSCache(jwksURI: op.issuer + "/jwks", http: http, clock: SystemClock())
        let keys = try? await cache.keys(refreshingFor: nil)
        try await http.shutdown()
        await op.stop()
        #expect(try op.jwks().keys.count == 41)
        #expect(keys?.count == JWKSCache.maximumKeys)
    }

    @Test func concurrentLoginsShareOneFetch() async throws {
        try await withProvider { op, http in
            let cache = JWKSCache(jwksURI: op.issuer + "/jwks", http: http, clock: SystemClock())
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<25 { group.addTask { try await cache.keys(refreshingFor: nil).count } }
                for try await n in group { #expect(n == 1) }
            }
            #expect(op.jwksFetchCount == 1)
        }
    }

    @Test func theLastGoodCopyIsKeptWhenTheProviderFails() async throws {
        let op = try TestOpenIDProvider()
        let http = UpstreamHTTP()
        try await op.start()
        let clock = ManualClock(Date())
        let jwks = JWKSCache(jwksURI: op.issuer + "/jwks", http: http, clock: clock)
        let discovery = DiscoveryCache(settings: OIDCProviderSettings(issuer: op.issuer, clientID: op.clientID), http: http, clock: clock)
        let keys = try await jwks.keys(refreshingFor: nil)
        let doc = try await discovery.current()
        await op.stop()
        clock.advance(by: 7200)
        let staleKeys = try? await jwks.keys(refreshingFor: nil)
        let staleDoc = try? await discovery.current()
        try await http.shutdown()
        #expect(staleKeys?.map(\.jwk) == keys.map(\.jwk))
        #expect(staleDoc == doc)
    }

    @Test func aNeverFetchedDocumentFailsClosed() async throws {
        let http = UpstreamHTTP()
        let port = try LoopbackPort.pick()
        let cache = JWKSCache(jwksURI: "http://127.0.0.1:\(port)/jwks", http: http, clock: SystemClock())
        await #expect(throws: UpstreamError.self) { try await cache.keys(refreshingFor: nil) }
        try await http.shutdown()
    }

    @Test func discoveryFollowsItsHeadersToo() async throws {
        try await withProvider { op, http in
            op.update { $0.cacheControl = "max-age=120" }
            let clock = ManualClock(Date())
            let discovery = DiscoveryCache(settings: OIDCProviderSettings(issuer: op.issuer, clientID: op.clientID), http: http, clock: clock)
            _ = try await discovery.current()
            #expect(await discovery.lifetime == 120)
            clock.advance(by: 121)
            _ = try await discovery.current()
            #expect(op.discoveryFetchCount == 2)
        }
    }
}
