public import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization
public import GatehouseCore
public import GatehouseJOSE
import GatehouseOIDC
import Crypto

/// A small but real OpenID provider on 127.0.0.1 for end-to-end tests and benchmarks: discovery,
/// JWKS, authorize (signs the configured user in at once), token (authorization code with PKCE and
/// client_secret_basic) and userinfo. Switches make it misbehave the ways tests need.
///
/// Thread-safe. Stop it with `stop()`.
public final class TestOpenIDProvider: Sendable {
    /// How the next ID tokens are to be wrong.
    public enum Misbehaviour: String, Sendable, CaseIterable {
        case none
        /// Signed by a key that is not in the JWKS, under the published kid.
        case badSignature
        case wrongAudience
        /// The nonce of the token is not the one of the request.
        case wrongNonce
        case wrongIssuer
        case expired
        /// `alg: none` with an empty signature.
        case algNone
        /// A `jwk` header parameter carrying the forger's own key.
        case embeddedKey
        /// A valid token whose `auth_time` is an hour old: the person did not sign in again.
        case staleAuthTime
        /// The authorization response names another issuer (an RFC 9207 mix-up).
        case wrongIssParameter
        /// The provider advertises `iss` in authorization responses but leaves it out.
        case missingIssParameter
    }

    public struct Settings: Sendable {
        public var subject = "upstream-user-1"
        public var claims: [String: JSONValue] = ["email": .string("ada@example.com"), "email_verified": .bool(true), "name": .string("Ada Lovelace"), "given_name": .string("Ada"), "family_name": .string("Lovelace")]
        public var misbehaviour = Misbehaviour.none
        /// Answer the authorization request with this OAuth error instead of a code.
        public var authorizeError: String? = nil
        public var userinfoSubject: String? = nil
        public init() {}
    }

    struct IssuedCode: Sendable {
        let clientID: String
        let redirectURI: String
        let nonce: String?
        let challenge: String?
        let subject: String
        let claims: [String: JSONValue]
        let misbehaviour: Misbehaviour
    }

    public let clientID: String
    public let clientSecret: String
    public let port: Int
    public var issuer: String { "http://127.0.0.1:\(port)" }
    private let key: JWSSigningKey
    private let forgerKey: JWSSigningKey
    private let kid = "test-key-1"
    private let settingsBox = Mutex(Settings())
    private let codes = Mutex<[String: IssuedCode]>([:])
    private let accessTokens = Mutex<[String: String]>([:])
    private let runner = Mutex<Task<Void, any Error>?>(nil)
    private let tokenRequests = Mutex(0)

    /// The JWS algorithm of this provider's ID tokens (RS256 unless asked otherwise).
    public var algorithm: SigningAlgorithm { key.algorithm }

    public init(clientID: String = "gatehouse", clientSecret: String = "upstream-secret", algorithm: SigningAlgorithm = .rs256) throws {
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.key = try JWSSigningKey.generate(algorithm)
        self.forgerKey = try JWSSigningKey.generate(.rs256)
        self.port = try LoopbackPort.pick()
    }

    public func update(_ change: (inout Settings) -> Void) { settingsBox.withLock { change(&$0) } }
    public var settings: Settings { settingsBox.withLock { $0 } }
    public var tokenRequestCount: Int { tokenRequests.withLock { $0 } }

    public func start() async throws {
        let router = Router()
        router.get("/.well-known/openid-configuration") { _, _ in
            Self.json([
                "issuer": .string(self.issuer), "authorization_endpoint": .string(self.issuer + "/authorize"),
                "token_endpoint": .string(self.issuer + "/token"), "jwks_uri": .string(self.issuer + "/jwks"),
                "userinfo_endpoint": .string(self.issuer + "/userinfo"), "response_types_supported": .array([.string("code")]),
                "subject_types_supported": .array([.string("public")]), "id_token_signing_alg_values_supported": .array([.string(self.algorithm.rawValue)]),
                "code_challenge_methods_supported": .array([.string("S256")]), "authorization_response_iss_parameter_supported": .bool(true),
            ])
        }
        router.get("/jwks") { _, _ in
            let set = JWKSet(keys: [try self.key.publicJWK(kid: self.kid)])
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(set))))
        }
        router.get("/authorize") { request, _ in
            let q = FormEncoding.decode(request.uri.query ?? "") ?? [:]
            guard q["client_id"] == self.clientID, let redirect = q["redirect_uri"], q["response_type"] == "code" else {
                return Response(status: .badRequest)
            }
            let s = self.settings
            var params: [(String, String)] = []
            if q["code_challenge_method"] != "S256" || (q["code_challenge"]?.utf8.count ?? 0) != 43 {
                // This provider, like a careful real one, requires PKCE S256.
                params.append(("error", "invalid_request"))
            } else if let error = s.authorizeError {
                params.append(("error", error))
            } else {
                let code = Secrets.randomToken()
                self.codes.withLock { $0[code] = IssuedCode(clientID: self.clientID, redirectURI: redirect, nonce: q["nonce"], challenge: q["code_challenge"], subject: s.subject, claims: s.claims, misbehaviour: s.misbehaviour) }
                params.append(("code", code))
            }
            if let state = q["state"] { params.append(("state", state)) }
            switch s.misbehaviour {
            case .missingIssParameter: break
            case .wrongIssParameter: params.append(("iss", "http://127.0.0.1:1/evil"))
            default: params.append(("iss", self.issuer))
            }
            return Response(status: .found, headers: [.location: redirect + "?" + FormEncoding.encode(params)])
        }
        router.post("/token") { request, _ in
            self.tokenRequests.withLock { $0 += 1 }
            let body = try await request.body.collect(upTo: 65536)
            let form = FormEncoding.decode(String(buffer: body)) ?? [:]
            let expected = "Basic " + Data("\(FormEncoding.escape(self.clientID)):\(FormEncoding.escape(self.clientSecret))".utf8).base64EncodedString()
            guard request.headers[.authorization] == expected else { return Self.json(["error": .string("invalid_client")], status: .unauthorized) }
            guard form["grant_type"] == "authorization_code", let code = form["code"],
                let issued = self.codes.withLock({ $0.removeValue(forKey: code) }), issued.redirectURI == form["redirect_uri"]
            else { return Self.json(["error": .string("invalid_grant")], status: .badRequest) }
            guard let challenge = issued.challenge, let verifier = form["code_verifier"], Secrets.pkceChallenge(verifier: verifier) == challenge else {
                return Self.json(["error": .string("invalid_grant")], status: .badRequest)
            }
            let accessToken = Secrets.randomToken()
            self.accessTokens.withLock { $0[accessToken] = issued.subject }
            return Self.json(["access_token": .string(accessToken), "token_type": .string("Bearer"), "expires_in": .number(3600), "id_token": .string(try self.idToken(for: issued))])
        }
        router.get("/userinfo") { request, _ in
            guard let auth = request.headers[.authorization], auth.hasPrefix("Bearer "),
                let sub = self.accessTokens.withLock({ $0[String(auth.dropFirst(7))] })
            else { return Response(status: .unauthorized) }
            var claims = self.settings.claims
            claims["sub"] = .string(self.settings.userinfoSubject ?? sub)
            return Self.json(claims)
        }
        var logger = Logger(label: "test-op")
        logger.logLevel = .critical
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)
        let task = Task { try await app.run() }
        runner.withLock { $0 = task }
        try await LoopbackPort.waitUntilListening(port)
    }

    public func stop() async {
        let task = runner.withLock { $0 }
        task?.cancel()
        _ = await task?.result
    }

    /// Signs an ID token the way this provider (or a forger) would.
    func idToken(for issued: IssuedCode) throws -> String {
        let now = Date().timeIntervalSince1970
        var claims = issued.claims
        claims["iss"] = .string(issued.misbehaviour == .wrongIssuer ? "http://127.0.0.1:1/evil" : issuer)
        claims["sub"] = .string(issued.subject)
        claims["aud"] = .string(issued.misbehaviour == .wrongAudience ? "some-other-client" : issued.clientID)
        claims["iat"] = .number(issued.misbehaviour == .expired ? now - 7200 : now)
        claims["exp"] = .number(issued.misbehaviour == .expired ? now - 3600 : now + 300)
        claims["auth_time"] = .number(issued.misbehaviour == .staleAuthTime ? now - 3600 : now)
        if let nonce = issued.nonce { claims["nonce"] = .string(issued.misbehaviour == .wrongNonce ? "not-the-nonce" : nonce) }
        let payload = Data(JSONValue.serialize(object: claims).utf8)
        switch issued.misbehaviour {
        case .algNone:
            return Base64URL.encode(Data("{\"alg\":\"none\",\"typ\":\"JWT\"}".utf8)) + "." + Base64URL.encode(payload) + "."
        case .badSignature:
            return try JWSEncoder.sign(payloadJSON: payload, key: forgerKey, kid: kid)
        case .embeddedKey:
            let jwk = try forgerKey.publicJWK(kid: kid)
            let header = "{\"alg\":\"RS256\",\"kid\":\"\(kid)\",\"jwk\":{\"kty\":\"RSA\",\"n\":\"\(jwk.n!)\",\"e\":\"\(jwk.e!)\"}}"
            let input = Base64URL.encode(Data(header.utf8)) + "." + Base64URL.encode(payload)
            return input + "." + Base64URL.encode(try forgerKey.sign(Data(input.utf8)))
        default:
            return try JWSEncoder.sign(payloadJSON: payload, key: key, kid: kid)
        }
    }

    /// An ID token signed by this provider's real key with the given claims (for verifier tests and benchmarks).
    public func sign(claims: [String: JSONValue]) throws -> String {
        try JWSEncoder.sign(payloadJSON: Data(JSONValue.serialize(object: claims).utf8), key: key, kid: kid)
    }

    public func jwks() throws -> JWKSet { JWKSet(keys: [try key.publicJWK(kid: kid)]) }

    static func json(_ object: [String: JSONValue], status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: JSONValue.serialize(object: object))))
    }
}
