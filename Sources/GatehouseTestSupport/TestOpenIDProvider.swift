import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization
public import GatehouseCore
public import GatehouseJOSE
import GatehouseOIDC
import Crypto

/// A small but real OpenID (or OAuth 2.0) provider on 127.0.0.1 for end-to-end tests and
/// benchmarks: discovery, JWKS, authorize (signs the configured user in at once), token
/// (authorization code with PKCE, refresh) and userinfo. A `Flavor` makes it answer the way a
/// particular provider does, following that provider's public documentation:
///
/// - Google: both issuer spellings in ID tokens, `hd` for Workspace users
///   (developers.google.com/identity/openid-connect/openid-connect, "Validating an ID token").
/// - Microsoft: the multi-tenant endpoint's `{tenantid}` issuer and per-token `tid`
///   (learn.microsoft.com/entra/identity-platform/id-token-claims-reference, "Validate the issuer").
/// - Apple: `form_post` (required when name or email is asked for), an ES256 client-secret JWT,
///   the `user` form field with the name on the first authorization only, `email_verified` and
///   `is_private_email` as strings (developer.apple.com/documentation/sign_in_with_apple,
///   "Generate and validate tokens", "Incorporating Sign in with Apple into other platforms").
/// - Facebook: OAuth 2.0 only, Graph API `/me` demanding `appsecret_proof`, errors as objects
///   (developers.facebook.com/docs/facebook-login/guides/advanced/manual-flow, "Securing requests").
/// - GitHub: OAuth 2.0 only, errors answered with HTTP 200, `/user` demanding a User-Agent,
///   numeric IDs, the primary verified address only from `/user/emails`
///   (docs.github.com/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps,
///   docs.github.com/rest/users/emails).
///
/// Switches make it misbehave the ways tests need. Thread-safe. Stop it with `stop()`.
public final class TestOpenIDProvider: Sendable {
    public enum Flavor: String, Sendable {
        case generic, google, microsoft, apple, facebook, github
    }

    /// How the next ID tokens (or authorization responses) are to be wrong.
    public enum Misbehaviour: String, Sendable, CaseIterable {
        case none
        /// Signed by a key that is not in the JWKS, under the published kid.
        case badSignature
        case wrongAudience
        /// The nonce of the token is not the one of the request.
        case wrongNonce
        case missingNonce
        case wrongIssuer
        case expired
        /// `iat` an hour ahead.
        case futureIssuedAt
        case missingIssuedAt
        case missingSubject
        /// Two audiences and no `azp`.
        case extraAudienceNoAzp
        /// `azp` names another client.
        case wrongAzp
        /// No `kid` in the header (accepted when the JWKS holds exactly one key).
        case noKid
        /// `alg: none` with an empty signature.
        case algNone
        /// HS256 keyed with the client secret.
        case hmac
        /// A `jwk` header parameter carrying the forger's own key.
        case embeddedKey
        /// `jku`, `x5u` or `x5c` header parameters pointing at the forger's key.
        case jkuHeader, x5uHeader, x5cHeader
        /// A valid token whose `auth_time` is an hour old: the person did not sign in again.
        case staleAuthTime
        /// The authorization response names another issuer (an RFC 9207 mix-up).
        case wrongIssParameter
        /// The provider advertises `iss` in authorization responses but leaves it out.
        case missingIssParameter
        /// Microsoft: `iss` names another tenant than `tid`.
        case tenantMismatch
        /// Answers in the query even when `form_post` was asked for.
        case ignoresResponseMode
    }

    /// What the token endpoint demands of the client.
    public enum ClientAuth: Sendable, Equatable {
        case basic, post, none
        /// RFC 7523 assertions verified with the keys at this URL (the client's published JWKS).
        case privateKeyJWT(jwksURL: String)
        /// Apple's ES256 client-secret JWT, verified with the stand-in's Apple key.
        case appleSecret
    }

    public struct Settings: Sendable {
        public var subject = "upstream-user-1"
        public var claims: [String: JSONValue] = ["email": .string("ada@example.com"), "email_verified": .bool(true), "name": .string("Ada Lovelace"), "given_name": .string("Ada"), "family_name": .string("Lovelace")]
        public var misbehaviour = Misbehaviour.none
        /// Answer the authorization request with this OAuth error instead of a code.
        public var authorizeError: String? = nil
        public var userinfoSubject: String? = nil
        public var clientAuth = ClientAuth.basic
        /// The issuer the discovery document names (a mismatch test sets another).
        public var discoveryIssuer: String? = nil
        /// Issue refresh tokens with every code.
        public var issueRefreshTokens = false
        /// Microsoft: the user's tenant.
        public var tenantID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
        /// Google: sign tokens with the short issuer spelling (`host`, no scheme).
        public var shortIssuer = false
        /// GitHub: the `/user/emails` answer.
        public var githubEmails: [JSONValue] = [
            .object(["email": .string("ada@example.com"), "primary": .bool(true), "verified": .bool(true), "visibility": .string("private")]),
        ]
        /// Userinfo wraps the claims in an object under this member (as many OAuth 2.0 APIs do).
        public var userinfoEnvelope: String? = nil
        /// The token endpoint answers 503 with `temporarily_unavailable`.
        public var tokenOutage = false
        /// Refreshes answer no ID token (the claims then come from userinfo).
        public var refreshWithoutIDToken = false
        /// Cache-Control of discovery and JWKS answers.
        public var cacheControl: String? = nil
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
        let scope: String
    }

    public let clientID: String
    public let clientSecret: String
    public let port: Int
    public let flavor: Flavor
    public var issuer: String { "http://127.0.0.1:\(port)" }
    /// What Gatehouse is configured with: the issuer, or Microsoft's multi-tenant endpoint.
    public var configuredIssuer: String { flavor == .microsoft ? issuer + "/common/v2.0" : issuer }
    /// Microsoft's discovery names this template; tokens fill in their tenant.
    public var issuerTemplate: String { issuer + "/{tenantid}/v2.0" }
    private let keys: Mutex<[(kid: String, key: JWSSigningKey)]>
    private let forgerKey: JWSSigningKey
    /// Apple: the team's key (the `.p8` file), its team and key IDs.
    public let appleKey: JWSSigningKey
    public let appleTeamID = "TEAM123456"
    public let appleKeyID = "KEY1234567"
    private let settingsBox: Mutex<Settings>
    private let codes = Mutex<[String: IssuedCode]>([:])
    private let accessTokens = Mutex<[String: (subject: String, scope: String)]>([:])
    private let refreshTokens = Mutex<[String: IssuedCode]>([:])
    private let seenAssertions = Mutex<Set<String>>([])
    private let appleAuthorized = Mutex<Set<String>>([])
    private let runner = Mutex<GracefulServer?>(nil)
    private let counters = Mutex<[String: Int]>([:])
    private let http = UpstreamHTTP()

    /// The JWS algorithm of this provider's ID tokens (RS256 unless asked otherwise).
    public let algorithm: SigningAlgorithm

    public init(clientID: String = "gatehouse", clientSecret: String = "upstream-secret", algorithm: SigningAlgorithm = .rs256, flavor: Flavor = .generic) throws {
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.flavor = flavor
        self.algorithm = algorithm
        self.keys = Mutex([("test-key-1", try JWSSigningKey.generate(algorithm))])
        self.forgerKey = try JWSSigningKey.generate(.rs256)
        self.appleKey = try JWSSigningKey.generate(.es256)
        self.port = try LoopbackPort.pick()
        var s = Settings()
        switch flavor {
        case .generic, .google: s.clientAuth = .basic
        case .microsoft, .facebook, .github: s.clientAuth = .post
        case .apple:
            s.clientAuth = .appleSecret
            s.claims = ["email": .string("x7k2p9@privaterelay.appleid.com"), "email_verified": .string("true"), "is_private_email": .string("true")]
        }
        if flavor == .github {
            s.subject = "583231"
            s.claims = ["login": .string("ada"), "name": .string("Ada Lovelace"), "email": .null, "avatar_url": .string("https://avatars.example/583231"), "html_url": .string("https://github.example/ada")]
        }
        if flavor == .facebook {
            s.subject = "10158000000000001"
            s.claims = ["name": .string("Ada Lovelace"), "first_name": .string("Ada"), "last_name": .string("Lovelace"), "email": .string("ada@example.com"), "picture": .object(["data": .object(["url": .string("https://graph.example/pic.jpg")])])]
        }
        self.settingsBox = Mutex(s)
    }

    public func update(_ change: (inout Settings) -> Void) { settingsBox.withLock { change(&$0) } }
    public var settings: Settings { settingsBox.withLock { $0 } }
    public var tokenRequestCount: Int { count("token") }
    public var jwksFetchCount: Int { count("jwks") }
    public var discoveryFetchCount: Int { count("discovery") }
    public func count(_ name: String) -> Int { counters.withLock { $0[name] ?? 0 } }
    private func bump(_ name: String) { counters.withLock { $0[name, default: 0] += 1 } }

    /// The OAuth 2.0 endpoints of the Facebook and GitHub flavors.
    public var endpoints: OIDCProviderSettings.Endpoints {
        switch flavor {
        case .facebook: .init(authorization: issuer + "/dialog/oauth", token: issuer + "/oauth/access_token", userinfo: issuer + "/me?fields=id,name,email,first_name,last_name,picture")
        case .github: .init(authorization: issuer + "/login/oauth/authorize", token: issuer + "/login/oauth/access_token", userinfo: issuer + "/user", emails: issuer + "/user/emails")
        default: .init(authorization: issuer + "/authorize", token: issuer + "/token", userinfo: issuer + "/userinfo")
        }
    }

    /// Publishes a new signing key beside the old one and signs with it from now on.
    public func rotateKey() throws {
        let fresh = try JWSSigningKey.generate(algorithm)
        keys.withLock { $0.append(("test-key-\($0.count + 1)", fresh)) }
    }

    /// Revokes every refresh token of `subject` (the user was removed upstream).
    public func revokeRefreshTokens(subject: String) {
        refreshTokens.withLock { $0 = $0.filter { $0.value.subject != subject } }
    }

    private var current: (kid: String, key: JWSSigningKey) { keys.withLock { $0.last! } }

    public func start() async throws {
        let router = Router()
        let discoveryPaths = flavor == .microsoft
            ? ["/common/v2.0/.well-known/openid-configuration", "/organizations/v2.0/.well-known/openid-configuration"]
            : ["/.well-known/openid-configuration"]
        if flavor != .facebook && flavor != .github {
            for discoveryPath in discoveryPaths {
                router.get(RouterPath(discoveryPath)) { _, _ in
                    self.bump("discovery")
                    var doc: [String: JSONValue] = [
                        "issuer": .string(self.settings.discoveryIssuer ?? (self.flavor == .microsoft ? self.issuerTemplate : self.issuer)),
                        "authorization_endpoint": .string(self.issuer + "/authorize"),
                        "token_endpoint": .string(self.issuer + "/token"), "jwks_uri": .string(self.issuer + "/jwks"),
                        "response_types_supported": .array([.string("code")]), "subject_types_supported": .array([.string("public")]),
                        "id_token_signing_alg_values_supported": .array([.string(self.algorithm.rawValue)]),
                        "response_modes_supported": .array([.string("query"), .string("form_post")]),
                        "token_endpoint_auth_methods_supported": .array(["client_secret_basic", "client_secret_post", "private_key_jwt"].map(JSONValue.string)),
                    ]
                    if self.flavor != .apple { doc["userinfo_endpoint"] = .string(self.issuer + "/userinfo") }
                    if self.flavor == .generic {
                        doc["code_challenge_methods_supported"] = .array([.string("S256")])
                        doc["authorization_response_iss_parameter_supported"] = .bool(true)
                    }
                    return self.json(doc, cache: self.settings.cacheControl)
                }
            }
            router.get("/jwks") { _, _ in
                self.bump("jwks")
                let set = JWKSet(keys: try self.keys.withLock { try $0.map { try $0.key.publicJWK(kid: $0.kid) } })
                return self.json(try JSONValue.parseObject(JSONEncoder().encode(set)), cache: self.settings.cacheControl)
            }
        }
        let authorizePath = flavor == .facebook ? "/dialog/oauth" : flavor == .github ? "/login/oauth/authorize" : "/authorize"
        router.get(RouterPath(authorizePath)) { request, _ in try self.authorize(request) }
        let tokenPath = flavor == .facebook ? "/oauth/access_token" : flavor == .github ? "/login/oauth/access_token" : "/token"
        router.post(RouterPath(tokenPath)) { request, _ in try await self.token(request) }
        router.get("/userinfo") { request, _ in
            guard let (sub, _) = self.bearer(request) else { return Response(status: .unauthorized) }
            var claims = self.settings.claims
            claims["sub"] = .string(self.settings.userinfoSubject ?? sub)
            if let envelope = self.settings.userinfoEnvelope { return self.json([envelope: .object(claims)]) }
            return self.json(claims)
        }
        router.get("/me") { request, _ in
            guard let (_, _) = self.bearer(request) else { return Response(status: .unauthorized) }
            // Graph API: an app that requires it refuses calls without the proof of its secret.
            let token = String(request.headers[.authorization]!.dropFirst(7))
            let proof = HMAC<SHA256>.authenticationCode(for: Data(token.utf8), using: SymmetricKey(data: Data(self.clientSecret.utf8))).map { String(format: "%02x", $0) }.joined()
            let q = FormEncoding.decode(request.uri.query ?? "") ?? [:]
            guard q["appsecret_proof"] == proof, q["fields"] != nil else {
                return self.json(["error": .object(["message": .string("Invalid appsecret_proof provided in the API argument"), "type": .string("GraphMethodException"), "code": .number(100)])], status: .badRequest)
            }
            var profile = self.settings.claims
            profile["id"] = .string(self.settings.subject)
            return self.json(profile)
        }
        router.get("/user") { request, _ in
            guard request.headers[.userAgent] != nil else { return self.json(["message": .string("Request forbidden by administrative rules. Please make sure your request has a User-Agent header")], status: .forbidden) }
            guard let (sub, _) = self.bearer(request) else { return self.json(["message": .string("Requires authentication")], status: .unauthorized) }
            var profile = self.settings.claims
            profile["id"] = .number(Double(sub) ?? 0)
            return self.json(profile)
        }
        router.get("/user/emails") { request, _ in
            guard request.headers[.userAgent] != nil, let (_, scope) = self.bearer(request) else { return Response(status: .unauthorized) }
            guard scope.split(separator: " ").contains("user:email") else { return self.json(["message": .string("Not Found")], status: .notFound) }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: JSONValue.serialize(.array(self.settings.githubEmails)))))
        }
        var logger = Logger(label: "test-op")
        logger.logLevel = .critical
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)
        let server = GracefulServer(app, logger: logger)
        runner.withLock { $0 = server }
        try await LoopbackPort.waitUntilListening(port)
    }

    public func stop() async {
        let server = runner.withLock { $0 }
        await server?.stop()
        try? await http.shutdown()
    }

    private func bearer(_ request: Request) -> (String, String)? {
        guard let auth = request.headers[.authorization], auth.hasPrefix("Bearer ") else { return nil }
        return accessTokens.withLock { $0[String(auth.dropFirst(7))] }.map { ($0.subject, $0.scope) }
    }

    private func authorize(_ request: Request) throws -> Response {
        let q = FormEncoding.decode(request.uri.query ?? "") ?? [:]
        guard q["client_id"] == clientID, let redirect = q["redirect_uri"], q["response_type"] == "code" else {
            return Response(status: .badRequest)
        }
        let s = settings
        let scope = q["scope"] ?? ""
        var params: [(String, String)] = []
        if q["code_challenge_method"] != "S256" || (q["code_challenge"]?.utf8.count ?? 0) != 43 {
            // This provider, like a careful real one, requires PKCE S256.
            params.append(("error", "invalid_request"))
        } else if flavor == .apple, scope.split(separator: " ").contains(where: { $0 == "name" || $0 == "email" }), q["response_mode"] != "form_post" {
            // Apple: "response_mode must be form_post when name or email scope is requested".
            params.append(("error", "invalid_request"))
        } else if let error = s.authorizeError {
            params.append(("error", error))
        } else {
            let code = Secrets.randomToken()
            codes.withLock { $0[code] = IssuedCode(clientID: clientID, redirectURI: redirect, nonce: q["nonce"], challenge: q["code_challenge"], subject: s.subject, claims: s.claims, misbehaviour: s.misbehaviour, scope: scope) }
            params.append(("code", code))
        }
        if let state = q["state"] { params.append(("state", state)) }
        if flavor == .generic {
            switch s.misbehaviour {
            case .missingIssParameter: break
            case .wrongIssParameter: params.append(("iss", "http://127.0.0.1:1/evil"))
            default: params.append(("iss", issuer))
            }
        }
        if flavor == .apple, params.contains(where: { $0.0 == "code" }), appleAuthorized.withLock({ $0.insert(s.subject).inserted }) {
            // Apple sends the name once, on the first authorization of the app by this user.
            params.append(("user", #"{"name":{"firstName":"Ada","lastName":"Lovelace"},"email":"x7k2p9@privaterelay.appleid.com"}"#))
        }
        if q["response_mode"] == "form_post", s.misbehaviour != .ignoresResponseMode {
            let inputs = params.map { "<input type=\"hidden\" name=\"\(Markup.escape($0.0))\" value=\"\(Markup.escape($0.1))\">" }.joined()
            let page = "<html><body onload=\"document.forms[0].submit()\"><form method=\"post\" action=\"\(Markup.escape(redirect))\">\(inputs)</form></body></html>"
            return Response(status: .ok, headers: [.contentType: "text/html"], body: .init(byteBuffer: ByteBuffer(string: page)))
        }
        return Response(status: .found, headers: [.location: redirect + "?" + FormEncoding.encode(params)])
    }

    private func token(_ request: Request) async throws -> Response {
        bump("token")
        let body = try await request.body.collect(upTo: 65536)
        let form = FormEncoding.decode(String(buffer: body)) ?? [:]
        let tokenURL = issuer + request.uri.path
        func oauthError(_ code: String, _ status: HTTPResponse.Status = .badRequest) -> Response {
            switch flavor {
            case .github: json(["error": .string(code), "error_description": .string("The code passed is incorrect or expired.")])  // GitHub: HTTP 200
            case .facebook: json(["error": .object(["message": .string(code), "type": .string("OAuthException"), "code": .number(100)])], status: status)
            default: json(["error": .string(code)], status: status)
            }
        }
        if settings.tokenOutage { return json(["error": .string("temporarily_unavailable")], status: .serviceUnavailable) }
        guard await clientAuthenticated(request, form: form, tokenURL: tokenURL) else {
            return flavor == .github ? json(["error": .string("incorrect_client_credentials")]) : oauthError("invalid_client", .unauthorized)
        }
        let issued: IssuedCode
        switch form["grant_type"] {
        case "authorization_code":
            guard let code = form["code"], let found = codes.withLock({ $0.removeValue(forKey: code) }), found.redirectURI == form["redirect_uri"] else {
                return oauthError(flavor == .github ? "bad_verification_code" : "invalid_grant")
            }
            guard let challenge = found.challenge, let verifier = form["code_verifier"], Secrets.pkceChallenge(verifier: verifier) == challenge else {
                return oauthError("invalid_grant")
            }
            issued = found
        case "refresh_token":
            guard let presented = form["refresh_token"], let found = refreshTokens.withLock({ $0.removeValue(forKey: presented) }) else {
                return oauthError("invalid_grant")
            }
            // A refresh re-reads the user as the provider knows them now, without a nonce.
            let s = settings
            issued = IssuedCode(clientID: found.clientID, redirectURI: found.redirectURI, nonce: nil, challenge: nil, subject: found.subject, claims: s.claims, misbehaviour: s.misbehaviour, scope: found.scope)
        default:
            return oauthError("unsupported_grant_type")
        }
        let accessToken = Secrets.randomToken()
        accessTokens.withLock { $0[accessToken] = (issued.subject, issued.scope) }
        var answer: [String: JSONValue] = ["access_token": .string(accessToken), "token_type": .string(flavor == .generic ? "Bearer" : "bearer"), "expires_in": .number(3600)]
        switch flavor {
        case .facebook: break
        case .github: answer["scope"] = .string(issued.scope.replacingOccurrences(of: " ", with: ",")); answer["expires_in"] = nil
        default:
            if !(form["grant_type"] == "refresh_token" && settings.refreshWithoutIDToken) { answer["id_token"] = .string(try idToken(for: issued)) }
        }
        if settings.issueRefreshTokens || issued.scope.split(separator: " ").contains("offline_access") {
            let refresh = Secrets.randomToken()
            refreshTokens.withLock { $0[refresh] = issued }
            answer["refresh_token"] = .string(refresh)
        }
        return json(answer)
    }

    private func clientAuthenticated(_ request: Request, form: [String: String], tokenURL: String) async -> Bool {
        switch settings.clientAuth {
        case .basic:
            let expected = "Basic " + Data("\(FormEncoding.escape(clientID)):\(FormEncoding.escape(clientSecret))".utf8).base64EncodedString()
            return request.headers[.authorization] == expected && form["client_secret"] == nil
        case .post:
            return request.headers[.authorization] == nil && form["client_id"] == clientID && form["client_secret"] == clientSecret
        case .none:
            return form["client_id"] == clientID && form["client_secret"] == nil && request.headers[.authorization] == nil
        case .privateKeyJWT(let jwksURL):
            guard form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", let assertion = form["client_assertion"],
                let jws = try? UnverifiedJWS(compact: assertion), jws.algorithm == "RS256",
                let response = try? await http.get(jwksURL), let set = try? JSONDecoder().decode(JWKSet.self, from: response.body),
                let jwk = set.keys.first(where: { $0.kid == jws.keyID }), let key = try? JWSVerificationKey(jwk: jwk),
                JWSAlgorithm.rs256.verify(signature: jws.signature, input: jws.signingInput, key: key)
            else { return false }
            let c = jws.claims
            let now = Date().timeIntervalSince1970
            guard c["iss"]?.stringValue == clientID, c["sub"]?.stringValue == clientID, c["aud"]?.stringValue == tokenURL,
                let exp = c["exp"]?.numberValue, exp > now, exp < now + 600, let jti = c["jti"]?.stringValue,
                seenAssertions.withLock({ $0.insert(jti).inserted })
            else { return false }
            return true
        case .appleSecret:
            guard form["client_id"] == clientID, let secret = form["client_secret"], let jws = try? UnverifiedJWS(compact: secret),
                jws.algorithm == "ES256", jws.keyID == appleKeyID,
                let key = try? JWSVerificationKey(jwk: appleKey.publicJWK(kid: appleKeyID)),
                JWSAlgorithm.es256.verify(signature: jws.signature, input: jws.signingInput, key: key)
            else { return false }
            let c = jws.claims
            let now = Date().timeIntervalSince1970
            return c["iss"]?.stringValue == appleTeamID && c["sub"]?.stringValue == clientID && c["aud"]?.stringValue == issuer
                && (c["exp"]?.numberValue ?? 0) > now && (c["exp"]?.numberValue ?? .infinity) <= now + 15_777_000
        }
    }

    /// Signs an ID token the way this provider (or a forger) would.
    func idToken(for issued: IssuedCode) throws -> String {
        let now = Date().timeIntervalSince1970
        let s = settings
        var claims = issued.claims
        let m = issued.misbehaviour
        switch flavor {
        case .microsoft:
            claims["tid"] = .string(s.tenantID)
            let tenant = m == .tenantMismatch ? "11111111-2222-3333-4444-555555555555" : s.tenantID
            claims["iss"] = .string(issuer + "/\(tenant)/v2.0")
        case .google:
            claims["iss"] = .string(s.shortIssuer ? "127.0.0.1" : issuer)
        default:
            claims["iss"] = .string(issuer)
        }
        if m == .wrongIssuer { claims["iss"] = .string("http://127.0.0.1:1/evil") }
        if m != .missingSubject { claims["sub"] = .string(issued.subject) }
        switch m {
        case .wrongAudience: claims["aud"] = .string("some-other-client")
        case .extraAudienceNoAzp: claims["aud"] = .array([.string(issued.clientID), .string("another-client")])
        case .wrongAzp: claims["aud"] = .string(issued.clientID); claims["azp"] = .string("another-client")
        default: claims["aud"] = .string(issued.clientID)
        }
        claims["iat"] = .number(m == .expired ? now - 7200 : m == .futureIssuedAt ? now + 3600 : now)
        if m == .missingIssuedAt { claims["iat"] = nil }
        claims["exp"] = .number(m == .expired ? now - 3600 : now + 300)
        claims["auth_time"] = .number(m == .staleAuthTime ? now - 3600 : now)
        if let nonce = issued.nonce, m != .missingNonce { claims["nonce"] = .string(m == .wrongNonce ? "not-the-nonce" : nonce) }
        let payload = Data(JSONValue.serialize(object: claims).utf8)
        let (kid, key) = current
        func signed(header: [String: JSONValue], with signer: JWSSigningKey) throws -> String {
            let input = Base64URL.encode(Data(JSONValue.serialize(object: header).utf8)) + "." + Base64URL.encode(payload)
            return input + "." + Base64URL.encode(try signer.sign(Data(input.utf8)))
        }
        let forgerJWK = try forgerKey.publicJWK(kid: kid)
        switch m {
        case .algNone:
            return Base64URL.encode(Data("{\"alg\":\"none\",\"typ\":\"JWT\"}".utf8)) + "." + Base64URL.encode(payload) + "."
        case .hmac:
            let input = Base64URL.encode(Data("{\"alg\":\"HS256\",\"kid\":\"\(kid)\"}".utf8)) + "." + Base64URL.encode(payload)
            let mac = HMAC<SHA256>.authenticationCode(for: Data(input.utf8), using: SymmetricKey(data: Data(clientSecret.utf8)))
            return input + "." + Base64URL.encode(Data(mac))
        case .badSignature:
            return try JWSEncoder.sign(payloadJSON: payload, key: forgerKey, kid: kid)
        case .embeddedKey:
            return try signed(header: ["alg": .string("RS256"), "kid": .string(kid), "jwk": .object(["kty": .string("RSA"), "n": .string(forgerJWK.n!), "e": .string(forgerJWK.e!)])], with: forgerKey)
        case .jkuHeader:
            return try signed(header: ["alg": .string("RS256"), "kid": .string(kid), "jku": .string("http://127.0.0.1:1/forger-jwks")], with: forgerKey)
        case .x5uHeader:
            return try signed(header: ["alg": .string("RS256"), "kid": .string(kid), "x5u": .string("http://127.0.0.1:1/forger.pem")], with: forgerKey)
        case .x5cHeader:
            return try signed(header: ["alg": .string("RS256"), "kid": .string(kid), "x5c": .array([.string("MIIBforgedcertificate")])], with: forgerKey)
        case .noKid:
            return try signed(header: ["alg": .string(key.algorithm.rawValue), "typ": .string("JWT")], with: key)
        default:
            return try JWSEncoder.sign(payloadJSON: payload, key: key, kid: kid)
        }
    }

    /// An ID token signed by this provider's real key with the given claims (for verifier tests and benchmarks).
    public func sign(claims: [String: JSONValue]) throws -> String {
        let (kid, key) = current
        return try JWSEncoder.sign(payloadJSON: Data(JSONValue.serialize(object: claims).utf8), key: key, kid: kid)
    }

    public func jwks() throws -> JWKSet { JWKSet(keys: try keys.withLock { try $0.map { try $0.key.publicJWK(kid: $0.kid) } }) }

    func json(_ object: [String: JSONValue], status: HTTPResponse.Status = .ok, cache: String? = nil) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let cache { headers[.cacheControl] = cache }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: JSONValue.serialize(object: object))))
    }
}
