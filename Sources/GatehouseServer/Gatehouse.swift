import Foundation
public import GatehouseCore
public import GatehouseIssuer
public import GatehouseOIDC
public import Logging
public import Hummingbird
import HTTPTypes
import Metrics
public import Prometheus

/// Everything a running bridge holds: the Directory, keys, adapters, metrics. Built once per process
/// (or per test) and shared by every request. Thread-safe.
public final class Gatehouse: Sendable {
    public let configuration: ServerConfiguration
    public let directory: any Directory
    public let keyRing: SigningKeyRing
    public let minter: TokenMinter
    public let clock: any GatehouseClock
    public let logger: Logger
    public let metrics: PrometheusCollectorRegistry
    let metricsFactory: PrometheusMetricsFactory
    let http: UpstreamHTTP
    let adapters: AdapterRegistry
    let accessTokens: LocalAccessTokenVerifier
    let mappings = MappingCache()
    let masterKey: MasterKey
    let loginSamples: LoginSampleRecorder
    /// How many recent verified logins per provider are kept (redacted) for mapping previews.
    public static let loginSamplesKept = 20

    public init(configuration: ServerConfiguration, directory: any Directory, masterKey: MasterKey, clock: any GatehouseClock = SystemClock(), http: UpstreamHTTP, logger: Logger) {
        self.configuration = configuration
        self.directory = directory
        self.clock = clock
        self.logger = logger
        self.http = http
        self.masterKey = masterKey
        self.keyRing = SigningKeyRing(store: directory, masterKey: masterKey, clock: clock)
        self.minter = TokenMinter(keyRing: keyRing)
        self.accessTokens = LocalAccessTokenVerifier(keyRing: keyRing)
        self.adapters = AdapterRegistry(http: http, masterKey: masterKey, replayCache: directory, clock: clock)
        self.metrics = PrometheusCollectorRegistry()
        self.metricsFactory = PrometheusMetricsFactory(registry: metrics)
        self.loginSamples = LoginSampleRecorder(directory: directory, keep: Self.loginSamplesKept, logger: logger)
    }

    /// Writes what is held in memory for a moment (recent login samples). Call it after the server
    /// has stopped, before the Directory closes.
    public func flushPendingWork() async {
        await loginSamples.flush()
    }

    // MARK: Metrics

    func countLogin(provider: String, outcome: String) {
        Counter(label: "gatehouse_logins_total", dimensions: [("provider", provider), ("outcome", outcome)], factory: metricsFactory).increment()
    }

    func countVerificationFailure(_ reason: String) {
        Counter(label: "gatehouse_verification_failures_total", dimensions: [("reason", reason)], factory: metricsFactory).increment()
    }

    func recordTokenLatency(_ seconds: Double, grant: String) {
        Recorder(label: "gatehouse_token_endpoint_duration_seconds", dimensions: [("grant", grant)], aggregate: true, factory: metricsFactory).record(seconds)
    }

    /// Makes sure every pool has a signing key that can sign now (first start, or after a long stop).
    public func prepareKeys() async throws {
        for pool in try await directory.listPools() {
            try await keyRing.ensureKey(pool: pool.id, algorithm: pool.signingAlgorithm)
        }
    }

    /// Fetches discovery and JWKS of every OIDC provider, so no login waits for them.
    public func warmAdapters() async {
        do {
            for pool in try await directory.listPools() {
                for provider in try await directory.listProviders(pool: pool.id) {
                    let adapter: OIDCAdapter
                    do {
                        guard let oidc = try adapters.adapter(for: provider) as? OIDCAdapter else { continue }
                        adapter = oidc
                    } catch {
                        // A provider whose secret does not open or whose settings are unusable is
                        // reported here, at start, rather than at the first login.
                        logger.error("provider cannot be used", metadata: ["pool": "\(pool.id)", "provider": "\(provider.name)", "reason": "\(error)"])
                        continue
                    }
                    do { try await adapter.warm() } catch {
                        logger.warning("provider warm-up failed", metadata: ["pool": "\(pool.id)", "provider": "\(provider.name)", "reason": "\(error)"])
                    }
                }
            }
        } catch {
            logger.warning("provider warm-up could not list providers", metadata: ["reason": "\(error)"])
        }
    }

    /// The HTTP router with every route.
    public func router() -> Router<GatehouseRequestContext> {
        let router = Router(context: GatehouseRequestContext.self)
        router.add(middleware: RequestLogMiddleware(trustedProxies: Set(configuration.trustedProxies)))
        router.get("/healthz") { _, _ in Responses.json(["status": .string("ok")]) }
        router.get("/readyz") { _, _ in
            do {
                try await self.directory.ping()
                return Responses.json(["status": .string("ready"), "directory": .string(self.directory.backendName)])
            } catch {
                return Responses.json(["status": .string("unavailable")], status: .serviceUnavailable)
            }
        }
        router.get("/metrics") { request, _ in
            if let token = self.configuration.metricsToken {
                let presented = request.bearerCredential(maximumLength: 256) ?? ""
                guard Secrets.constantTimeEquals(Secrets.hash(presented), Secrets.hash(token)) else {
                    return Response(status: .unauthorized, headers: [.wwwAuthenticate: "Bearer realm=\"metrics\""])
                }
            }
            var buffer: [UInt8] = []
            self.metrics.emit(into: &buffer)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
        }
        router.get("/{pool}/.well-known/openid-configuration") { req, ctx in try await self.handle { try await self.discovery(req, ctx) } }
        router.get("/{pool}/.well-known/jwks.json") { req, ctx in try await self.handle { try await self.jwks(req, ctx) } }
        router.get("/{pool}/oauth2/authorize") { req, ctx in try await self.handle { try await self.authorize(req, ctx) } }
        router.get("/{pool}/oauth2/idpresponse") { req, ctx in try await self.handle { try await self.callback(req, ctx) } }
        router.post("/{pool}/oauth2/idpresponse") { req, ctx in try await self.handle { try await self.callbackPost(req, ctx) } }
        router.get("/{pool}/providers/{provider}/jwks.json") { req, ctx in try await self.handle { try await self.providerClientJWKS(req, ctx) } }
        router.get("/{pool}/link/prove") { req, ctx in try await self.handle { try await self.proveLink(req, ctx) } }
        router.post("/{pool}/oauth2/links/intent") { req, ctx in try await self.handle(api: true) { try await self.linkIntent(req, ctx) } }
        router.get("/{pool}/oauth2/links") { req, ctx in try await self.handle(api: true) { try await self.listOwnLinks(req, ctx) } }
        router.delete("/{pool}/oauth2/links") { req, ctx in try await self.handle(api: true) { try await self.removeOwnLink(req, ctx) } }
        addAdminRoutes(to: router)
        router.post("/{pool}/oauth2/token") { req, ctx in try await self.handle(api: true) { try await self.token(req, ctx) } }
        router.get("/{pool}/oauth2/userInfo") { req, ctx in try await self.handle(api: true) { try await self.userInfo(req, ctx) } }
        router.post("/{pool}/oauth2/userInfo") { req, ctx in try await self.handle(api: true) { try await self.userInfo(req, ctx) } }
        router.post("/{pool}/oauth2/revoke") { req, ctx in try await self.handle(api: true) { try await self.revoke(req, ctx) } }
        router.get("/{pool}/logout") { req, ctx in try await self.handle { try await self.logout(req, ctx) } }
        router.get("/{pool}/saml2/metadata/{provider}") { req, ctx in try await self.handle { try await self.samlMetadata(req, ctx) } }
        router.post("/{pool}/saml2/acs/{provider}") { req, ctx in try await self.handle { try await self.assertionConsumer(req, ctx) } }
        router.get("/{pool}/saml2/slo/{provider}") { req, ctx in try await self.handle { try await self.singleLogout(req, ctx) } }
        router.post("/{pool}/saml2/slo/{provider}") { req, ctx in try await self.handle { try await self.singleLogout(req, ctx) } }
        return router
    }

    /// Renders the errors handlers throw; anything unexpected becomes a 503 (a plain page for people,
    /// an RFC 6749 `temporarily_unavailable` JSON error for the `api` endpoints), never a 500 with
    /// detail: the detail goes to the log.
    func handle(api: Bool = false, _ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch let e as OAuthError {
            return e.response()
        } catch let e as PageError {
            if api {
                return OAuthError(code: "invalid_request", description: e.message, status: e.status).response()
            }
            return e.response()
        } catch let e as HTTPError {
            if api { return OAuthError(code: "invalid_request", description: "the request could not be understood", status: e.status).response() }
            if e.status == .contentTooLarge { return PageError(status: .contentTooLarge, title: "Request too large", message: "The request body is too large.").response() }
            return PageError(status: e.status, title: "Bad request", message: "The request could not be understood.").response()
        } catch {
            logger.error("request failed", metadata: ["reason": "\(error)"])
            if api {
                return OAuthError(code: "temporarily_unavailable", description: "the service is temporarily unavailable", status: .serviceUnavailable).response()
            }
            return PageError(status: .serviceUnavailable, title: "Temporarily unavailable", message: "Sign-in is temporarily unavailable. Please try again shortly.").response()
        }
    }
}
