public import Foundation
public import GatehouseCore
import GatehouseJOSE

/// How long a fetched document stays fresh, from its HTTP cache headers (RFC 9111): `max-age`
/// first, then `Expires` against `Date`, else the default. `no-store` and `no-cache` mean the
/// shortest lifetime allowed, never zero: a provider cannot make every login refetch. Every value
/// is held between `minimum` and `maximum`.
public struct CachePolicy: Sendable, Equatable {
    public var defaultLifetime: TimeInterval = 3600
    public var minimumLifetime: TimeInterval = 60
    public var maximumLifetime: TimeInterval = 86400
    /// At this fraction of its lifetime a document is refreshed in the background while the
    /// current copy keeps being served.
    public var refreshAt: Double = 0.75
    /// Forced refetches (an unknown `kid`) are at most one per this interval.
    public var minimumForcedInterval: TimeInterval = 30
    /// After a failed fetch, the last good copy is served and the next attempt waits this long.
    public var retryAfterFailure: TimeInterval = 30

    public init() {}

    public func lifetime(headers: [(String, String)]) -> TimeInterval {
        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name }?.1 }
        var chosen: TimeInterval? = nil
        if let cc = header("cache-control")?.lowercased() {
            let directives = cc.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            if directives.contains("no-store") || directives.contains("no-cache") {
                chosen = minimumLifetime
            } else if let maxAge = directives.first(where: { $0.hasPrefix("max-age=") }) {
                // Delta-seconds (RFC 9111 §1.2.2): digits only, so no NaN or infinity gets in.
                chosen = UInt32(maxAge.dropFirst(8).trimmingCharacters(in: CharacterSet(charactersIn: "\""))).map(TimeInterval.init)
            }
        }
        if chosen == nil, let expires = header("expires").flatMap(Self.httpDate) {
            let base = header("date").flatMap(Self.httpDate) ?? Date()
            let delta = expires.timeIntervalSince(base)
            chosen = delta.isFinite ? delta : nil
        }
        return min(max(chosen ?? defaultLifetime, minimumLifetime), maximumLifetime)
    }

    /// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only form RFC 9110 requires senders to use.
    static func httpDate(_ text: String) -> Date? {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return f.date(from: text)
    }
}

/// One document fetched over HTTP and cached by its headers; shared by every concurrent login.
///
/// Concurrent callers share one fetch in flight. A document past `refreshAt` of its lifetime is
/// served while a background fetch renews it; one past its lifetime is fetched before serving, and
/// when that fails the last good copy is served (retrying after `retryAfterFailure`). Only when
/// there has never been a good copy does a failure reach the caller.
actor CachedDocument<Value: Sendable> {
    typealias Loader = @Sendable () async throws -> (Value, [(String, String)])
    private let load: Loader
    private let clock: any GatehouseClock
    let policy: CachePolicy
    private var value: Value?
    private var fetchedAt = Date.distantPast
    private var lifetime: TimeInterval = 0
    private var failedAt: Date?
    private var lastForced: Date?
    private var inFlight: Task<Value, any Error>?
    private(set) var fetchCount = 0

    init(policy: CachePolicy, clock: any GatehouseClock, load: @escaping Loader) {
        self.policy = policy
        self.clock = clock
        self.load = load
    }

    func current() async throws -> Value {
        let now = clock.now()
        let age = now.timeIntervalSince(fetchedAt)
        if let value {
            if age < lifetime * policy.refreshAt { return value }
            let retrying = failedAt.map { now.timeIntervalSince($0) < policy.retryAfterFailure } ?? false
            if age < lifetime || retrying {
                if !retrying { startFetch() }
                return value
            }
        }
        return try await fetch()
    }

    /// A refetch the caller needs (an unknown key ID): at most one per `minimumForcedInterval`;
    /// within it, the current copy.
    func forced() async throws -> Value {
        // A fetch already under way is the refetch this caller needs.
        if inFlight != nil { return try await fetch() }
        let now = clock.now()
        if let value, let lastForced, now.timeIntervalSince(lastForced) < policy.minimumForcedInterval { return value }
        lastForced = now
        return try await fetch()
    }

    /// How long the current copy is fresh for (for tests and `oidc verify`).
    var currentLifetime: TimeInterval { lifetime }

    private func startFetch() {
        if inFlight != nil { return }
        let load = self.load
        inFlight = Task {
            do {
                let (fresh, headers) = try await load()
                return self.store(fresh, headers: headers)
            } catch {
                self.failed()
                throw error
            }
        }
    }

    private func fetch() async throws -> Value {
        startFetch()
        guard let task = inFlight else { throw CancellationError() }
        do {
            return try await task.value
        } catch {
            if let value { return value }
            throw error
        }
    }

    private func store(_ fresh: Value, headers: [(String, String)]) -> Value {
        inFlight = nil
        value = fresh
        fetchedAt = clock.now()
        lifetime = policy.lifetime(headers: headers)
        failedAt = nil
        fetchCount += 1
        return fresh
    }

    private func failed() {
        inFlight = nil
        failedAt = clock.now()
    }
}

/// A provider's JWKS, cached by its HTTP headers. An unknown `kid` triggers at most one refetch per
/// `minimumForcedInterval` (a hostile or broken upstream cannot make Gatehouse hammer it); keys
/// are never substituted. At most `maximumKeys` keys of a set are used.
public final class JWKSCache: VerificationKeySource {
    public static let maximumKeys = 32
    private let document: CachedDocument<[PreparedKey]>

    public init(jwksURI: String, http: UpstreamHTTP, clock: any GatehouseClock, policy: CachePolicy = CachePolicy()) {
        document = CachedDocument(policy: policy, clock: clock) {
            let response = try await http.get(jwksURI)
            guard response.status == 200, let set = try? JSONDecoder().decode(JWKSet.self, from: response.body) else {
                throw UpstreamError(.unreachable, "JWKS at \(jwksURI) answered HTTP \(response.status) or invalid JSON")
            }
            return (Array(PreparedKey.prepare(set).prefix(Self.maximumKeys)), response.headers)
        }
    }

    public func keys(refreshingFor unknownKid: String?) async throws -> [PreparedKey] {
        let keys = try await document.current()
        guard let unknownKid, !keys.contains(where: { $0.jwk.kid == unknownKid }) else { return keys }
        return try await document.forced()
    }

    public var fetchCount: Int { get async { await document.fetchCount } }
    public var lifetime: TimeInterval { get async { await document.currentLifetime } }
}

/// The discovery document of one provider, cached by its HTTP headers and refreshed in the background.
public final class DiscoveryCache: Sendable {
    private let document: CachedDocument<DiscoveryDocument>

    public init(settings: OIDCProviderSettings, http: UpstreamHTTP, clock: any GatehouseClock, policy: CachePolicy = CachePolicy()) {
        document = CachedDocument(policy: policy, clock: clock) {
            try await DiscoveryDocument.fetchWithHeaders(settings: settings, http: http)
        }
    }

    public func current() async throws -> DiscoveryDocument { try await document.current() }
    public var fetchCount: Int { get async { await document.fetchCount } }
    public var lifetime: TimeInterval { get async { await document.currentLifetime } }
}
