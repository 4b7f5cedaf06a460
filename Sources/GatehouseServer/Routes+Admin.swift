import Foundation
public import GatehouseCore
import Logging
import GatehouseMapping
import Hummingbird
import HTTPTypes
import NIOCore

/// The admin HTTP API under `/admin/v1`: JSON in and out, every call authenticated with a bearer
/// credential the CLI made (`gatehouse admin-credential create`), every change recorded in the
/// audit log as `admin:{credential}`. A credential limited to a pool gets 403 elsewhere.
extension Gatehouse {
    /// A JSON error of the admin API: `{"error": code, "error_description": …}` plus details.
    struct AdminAPIError: Error {
        let status: HTTPResponse.Status
        let code: String
        let description: String
        var details: [String: JSONValue] = [:]

        func response() -> Response {
            var body = details
            body["error"] = .string(code)
            body["error_description"] = .string(description)
            var r = Responses.json(body, status: status)
            if status == .unauthorized { r.headers[.wwwAuthenticate] = "Bearer realm=\"gatehouse-admin\"" }
            return r
        }

        static func from(_ error: any Error) -> AdminAPIError? {
            switch error {
            case let e as AdminAPIError: return e
            case let e as DirectoryError:
                switch e.code {
                case .notFound: return AdminAPIError(status: .notFound, code: "not_found", description: e.reason)
                case .conflict: return AdminAPIError(status: .conflict, code: "conflict", description: e.reason)
                case .invalid: return AdminAPIError(status: .badRequest, code: "invalid_request", description: e.reason)
                default: return nil
                }
            case let e as MappingError:
                var details: [String: JSONValue] = [:]
                if let t = e.target { details["rule"] = .string(t) }
                if let p = e.position { details["position"] = .number(Double(p)) }
                details["reason"] = .string(e.reason)
                return AdminAPIError(status: .badRequest, code: "invalid_mapping", description: e.description, details: details)
            case let e as VerificationError:
                return AdminAPIError(status: .badRequest, code: "invalid_request", description: "the capture could not be read: \(e)")
            case let e as UpstreamError:
                return AdminAPIError(status: .badRequest, code: "invalid_request", description: "the capture could not be read: \(e.reason)")
            default: return nil
            }
        }
    }

    /// One authenticated admin call.
    struct AdminCall {
        let request: Request
        let context: GatehouseRequestContext
        let admin: Admin
        let credential: AdminCredential

        /// The `{pool}` of the path, which the credential must be allowed.
        func pool() throws -> String {
            guard let pool = context.parameters.get("pool") else { throw AdminAPIError(status: .notFound, code: "not_found", description: "no pool in the path") }
            if let only = credential.poolID, only.rawValue != pool {
                throw AdminAPIError(status: .forbidden, code: "forbidden", description: "this credential is limited to pool \(only)")
            }
            return pool
        }

        func parameter(_ name: String) throws -> String {
            guard let v = context.parameters.get(name) else { throw AdminAPIError(status: .notFound, code: "not_found", description: "no \(name) in the path") }
            return v
        }

        var query: [String: String] { FormEncoding.decode(request.uri.query ?? "") ?? [:] }

        /// The JSON object body (at most 1 MiB).
        func body() async throws -> [String: JSONValue] {
            let buffer: ByteBuffer
            do { buffer = try await request.body.collect(upTo: 1 << 20) } catch {
                throw AdminAPIError(status: .contentTooLarge, code: "invalid_request", description: "the body is larger than 1 MiB")
            }
            guard case .object(let o) = try? JSONValue.parse(Array(buffer.readableBytesView)) else {
                throw AdminAPIError(status: .badRequest, code: "invalid_request", description: "the body must be a JSON object")
            }
            return o
        }

        func string(_ body: [String: JSONValue], _ key: String) throws -> String {
            guard let v = body[key]?.stringValue else { throw AdminAPIError(status: .badRequest, code: "invalid_request", description: "\(key) is required (a string)") }
            return v
        }
    }

    static let adminEncoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .iso8601
        return e
    }()

    /// An OIDC provider's settings in the admin API: `preset` and the options of `OIDCProviderSpec`
    /// in snake case.
    static func oidcSpec(_ o: [String: JSONValue], call: AdminCall) throws -> OIDCProviderSpec {
        func bad(_ d: String) -> AdminAPIError { AdminAPIError(status: .badRequest, code: "invalid_request", description: d) }
        func strings(_ key: String) -> [String] {
            guard case .array(let a)? = o[key] else { return [] }
            return a.compactMap(\.stringValue)
        }
        guard let preset = ProviderPreset(rawValue: o["preset"]?.stringValue ?? "oidc") else {
            throw bad("preset is one of \(ProviderPreset.allCases.map(\.rawValue))")
        }
        var spec = OIDCProviderSpec(preset: preset, clientID: try call.string(o, "client_id"))
        spec.issuer = o["issuer"]?.stringValue
        spec.scopes = strings("scopes")
        spec.allowedAlgorithms = strings("allowed_algorithms")
        spec.clockSkewSeconds = o["clock_skew"]?.numberValue.map { Int($0) }
        spec.userinfo = o["userinfo"] == .bool(true)
        if let a = o["client_auth"]?.stringValue {
            guard let auth = OIDCProviderSettings.ClientAuthentication(rawValue: a) else { throw bad("client_auth is one of \(OIDCProviderSettings.ClientAuthentication.allCases.map(\.rawValue))") }
            spec.clientAuthentication = auth
        }
        if let m = o["response_mode"]?.stringValue {
            guard let mode = OIDCProviderSettings.ResponseMode(rawValue: m) else { throw bad("response_mode is query or form_post") }
            spec.responseMode = mode
        }
        spec.authorizationEndpoint = o["authorization_endpoint"]?.stringValue
        spec.tokenEndpoint = o["token_endpoint"]?.stringValue
        spec.userinfoEndpoint = o["userinfo_endpoint"]?.stringValue
        spec.emailsEndpoint = o["emails_endpoint"]?.stringValue
        spec.subjectClaim = o["subject_claim"]?.stringValue
        spec.claimsPath = o["claims_path"]?.stringValue
        spec.tenant = o["tenant"]?.stringValue
        spec.allowedTenants = strings("allowed_tenants")
        spec.hostedDomain = o["hosted_domain"]?.stringValue
        spec.appleTeamID = o["apple_team_id"]?.stringValue
        spec.appleKeyID = o["apple_key_id"]?.stringValue
        spec.upstreamRefresh = o["upstream_refresh"] == .bool(true)
        if case .object(let params)? = o["authorization_parameters"] {
            for (k, v) in params { if let v = v.stringValue { spec.authorizationParameters[k] = v } }
        }
        return spec
    }

    static func encoded(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try adminEncoder.encode(value)
        return Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Authenticates, runs, and renders errors as JSON; nothing unexpected leaks detail.
    func adminHandle(_ request: Request, _ context: GatehouseRequestContext, _ body: (AdminCall) async throws -> Response) async -> Response {
        do {
            guard let secret = request.bearerCredential(maximumLength: 256) else {
                throw AdminAPIError(status: .unauthorized, code: "unauthorized", description: "an admin credential is required (Authorization: Bearer …)")
            }
            guard let credential = try await directory.adminCredential(secretHash: Secrets.hash(secret)) else {
                throw AdminAPIError(status: .unauthorized, code: "unauthorized", description: "the admin credential is unknown or revoked")
            }
            let admin = Admin(gatehouse: self, masterKey: masterKey, actor: "admin:\(credential.name)")
            return try await body(AdminCall(request: request, context: context, admin: admin, credential: credential))
        } catch {
            if let e = AdminAPIError.from(error) { return e.response() }
            logger.error("admin call failed", metadata: ["path": "\(request.uri.path)", "reason": "\(error)"])
            return AdminAPIError(status: .serviceUnavailable, code: "temporarily_unavailable", description: "the service is temporarily unavailable").response()
        }
    }

    func addAdminRoutes(to router: Router<GatehouseRequestContext>) {
        func route(_ method: HTTPRequest.Method, _ path: String, _ handler: @escaping @Sendable (AdminCall) async throws -> Response) {
            router.on(RouterPath("/admin/v1" + path), method: method) { req, ctx in await self.adminHandle(req, ctx, handler) }
        }

        route(.get, "/pools") { call in
            let pools = try await self.directory.listPools().filter { call.credential.poolID == nil || call.credential.poolID == $0.id }
            return try Self.encoded(pools)
        }
        route(.post, "/pools") { call in
            guard call.credential.poolID == nil else { throw AdminAPIError(status: .forbidden, code: "forbidden", description: "a pool-limited credential cannot create pools") }
            let b = try await call.body()
            let alg = try b["algorithm"].map { v -> SigningAlgorithm in
                guard let a = v.stringValue.flatMap(SigningAlgorithm.init(rawValue:)) else { throw AdminAPIError(status: .badRequest, code: "invalid_request", description: "algorithm is ES256 or RS256") }
                return a
            } ?? .es256
            return try Self.encoded(try await call.admin.createPool(name: try call.string(b, "name"), displayName: b["display_name"]?.stringValue, algorithm: alg), status: .created)
        }
        route(.post, "/pools/{pool}/custom-attributes") { call in
            let b = try await call.body()
            guard let type = CustomAttribute.Kind(rawValue: b["type"]?.stringValue ?? "string") else {
                throw AdminAPIError(status: .badRequest, code: "invalid_request", description: "type is string, number or boolean")
            }
            let attribute = CustomAttribute(name: try call.string(b, "name"), type: type, maximumLength: Int(b["max_length"]?.numberValue ?? 2048))
            return try Self.encoded(try await call.admin.declareCustomAttribute(pool: try call.pool(), attribute))
        }

        // Clients.
        route(.get, "/pools/{pool}/clients") { call in try Self.encoded(try await self.directory.listClients(pool: try PoolID(try call.pool())).map(\.redactedForDisplay)) }
        route(.post, "/pools/{pool}/clients") { call in
            let b = try await call.body()
            func uris(_ key: String) -> [String] {
                guard case .array(let a)? = b[key] else { return [] }
                return a.compactMap(\.stringValue)
            }
            let (client, secret) = try await call.admin.createClient(
                pool: try call.pool(), name: try call.string(b, "name"), redirectURIs: uris("redirect_uris"), logoutURIs: uris("logout_uris"),
                confidential: b["public"] != .bool(true))
            struct Created: Encodable { let client: AppClient; let clientSecret: String? }
            return try Self.encoded(Created(client: client.redactedForDisplay, clientSecret: secret), status: .created)
        }

        // Providers, mappings, linking.
        route(.get, "/pools/{pool}/providers") { call in
            try Self.encoded(try await self.directory.listProviders(pool: try PoolID(try call.pool())).map(\.redactedForDisplay))
        }
        route(.delete, "/pools/{pool}/clients/{client}") { call in
            try await call.admin.deleteClient(pool: try call.pool(), clientID: try call.parameter("client"))
            return Response(status: .noContent)
        }
        route(.post, "/pools/{pool}/providers") { call in
            let b = try await call.body()
            let pool = try call.pool()
            let name = try call.string(b, "name")
            let mapping = try b["mapping"].map { try AttributeMapping(document: $0) }
            let identifiers: [String] = if case .array(let a)? = b["idp_identifiers"] { a.compactMap(\.stringValue) } else { [] }
            func strings(_ o: [String: JSONValue], _ key: String) -> [String]? {
                guard case .array(let a)? = o[key] else { return nil }
                return a.compactMap(\.stringValue)
            }
            let provider: IdentityProvider
            switch b["kind"]?.stringValue {
            case "oidc":
                guard case .object(let o)? = b["oidc"] else { throw AdminAPIError(status: .badRequest, code: "invalid_request", description: "oidc settings are required") }
                let spec = try Self.oidcSpec(o, call: call)
                provider = try await call.admin.createOIDCProvider(
                    pool: pool, name: name, spec: spec, clientSecret: b["client_secret"]?.stringValue, mapping: mapping, idpIdentifiers: identifiers)
            case "saml":
                guard case .object(let o)? = b["saml"] else { throw AdminAPIError(status: .badRequest, code: "invalid_request", description: "saml settings are required") }
                var options = Admin.SAMLOptions()
                options.metadataURL = o["metadata_url"]?.stringValue
                options.signatures = o["signatures"]?.stringValue ?? "assertion"
                options.nameIDFormat = o["name_id_format"]?.stringValue
                options.allowIdPInitiated = o["allow_idp_initiated"] == .bool(true)
                let xml: String
                if let inline = o["metadata_xml"]?.stringValue {
                    xml = inline
                } else if let url = options.metadataURL {
                    xml = try await SAMLMetadataFetch.fetch(url, http: self.http)
                } else {
                    throw AdminAPIError(status: .badRequest, code: "invalid_request", description: "metadata_xml or metadata_url is required")
                }
                provider = try await call.admin.createSAMLProvider(pool: pool, name: name, metadataXML: xml, options: options, mapping: mapping ?? AttributeMapping([:]), idpIdentifiers: identifiers)
            default:
                throw AdminAPIError(status: .badRequest, code: "invalid_request", description: "kind is oidc or saml")
            }
            return try Self.encoded(provider.redactedForDisplay, status: .created)
        }
        route(.delete, "/pools/{pool}/providers/{provider}") { call in
            try await call.admin.deleteProvider(pool: try call.pool(), name: try call.parameter("provider"))
            return Response(status: .noContent)
        }
        route(.get, "/pools/{pool}/providers/{provider}/mapping") { call in
            let (_, provider) = try await call.admin.existingProvider(pool: try call.pool(), name: try call.parameter("provider"))
            return try Self.encoded(provider.attributeMapping)
        }
        route(.put, "/pools/{pool}/providers/{provider}/mapping") { call in
            let b = try await call.body()
            guard let document = b["mapping"] else { throw AdminAPIError(status: .badRequest, code: "invalid_request", description: "mapping is required (the mapping document)") }
            let mapping = try AttributeMapping(document: document)
            return try Self.encoded(try await call.admin.setMapping(pool: try call.pool(), provider: try call.parameter("provider"), mapping: mapping, note: b["note"]?.stringValue))
        }
        route(.get, "/pools/{pool}/providers/{provider}/mapping/versions") { call in
            try Self.encoded(try await call.admin.mappingVersions(pool: try call.pool(), provider: try call.parameter("provider")))
        }
        route(.post, "/pools/{pool}/providers/{provider}/mapping/rollback") { call in
            guard let version = try await call.body()["version"]?.numberValue, version >= 1, version == version.rounded() else {
                throw AdminAPIError(status: .badRequest, code: "invalid_request", description: "version is required (a number)")
            }
            return try Self.encoded(try await call.admin.rollbackMapping(pool: try call.pool(), provider: try call.parameter("provider"), to: Int(version)))
        }
        route(.post, "/pools/{pool}/providers/{provider}/mapping/preview") { call in
            let b = try await call.body()
            let mapping = try b["mapping"].map { try AttributeMapping(document: $0) }
            let input: Admin.PreviewInput
            if case .object(let attributes)? = b["attributes"] {
                input = .attributes(JSONValue.flatten(attributes))
            } else if let saml = b["saml_response"]?.stringValue {
                input = .samlResponse(saml)
            } else if let token = b["id_token"]?.stringValue {
                input = .idToken(token)
            } else if let n = b["recent"]?.numberValue {
                input = .recentLogins(max(1, min(Int(n), 20)))
            } else {
                throw AdminAPIError(status: .badRequest, code: "invalid_request", description: "give one of attributes, saml_response, id_token, recent")
            }
            return try Self.encoded(try await call.admin.previewMapping(pool: try call.pool(), provider: try call.parameter("provider"), mapping: mapping, input: input))
        }
        route(.put, "/pools/{pool}/providers/{provider}/linking") { call in
            let b = try await call.body()
            guard let policy = b["policy"]?.stringValue.flatMap(LinkPolicy.init(rawValue:)) else {
                throw AdminAPIError(status: .badRequest, code: "invalid_request", description: "policy is one of \(LinkPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let settings = LinkSettings(policy: policy, trustEmail: b["trust_email"] == .bool(true))
            return try Self.encoded(try await call.admin.setLinkSettings(pool: try call.pool(), provider: try call.parameter("provider"), settings).redactedForDisplay)
        }

        // Users and links.
        route(.get, "/pools/{pool}/users") { call in
            let pool = try PoolID(try call.pool())
            let q = call.query
            let limit = max(1, min(Int(q["limit"] ?? "") ?? 50, 1000))
            if let email = q["email"] { return try Self.encoded(try await self.directory.users(pool: pool, email: email, limit: limit)) }
            if let name = q["provider"], let subject = q["subject"] {
                let found = try await call.admin.user(pool: pool.rawValue, provider: name, subject: subject, issuer: q["issuer"])
                return try Self.encoded(found.map { [$0] } ?? [])
            }
            return try Self.encoded(try await self.directory.listUsers(pool: pool, after: q["after"], limit: limit))
        }
        route(.post, "/pools/{pool}/users") { call in
            let b = try await call.body()
            var attributes: [String: String] = [:]
            if case .object(let o)? = b["attributes"] { for (k, v) in o { if let s = v.stringValue { attributes[k] = s } } }
            let user = try await call.admin.createUser(pool: try call.pool(), provider: try call.string(b, "provider"), subject: try call.string(b, "subject"), attributes: attributes, issuer: b["issuer"]?.stringValue)
            return try Self.encoded(user, status: .created)
        }
        route(.get, "/pools/{pool}/users/{user}") { call in
            let pool = try PoolID(try call.pool())
            let id = try call.parameter("user")
            guard let user = try await self.directory.user(pool: pool, id: id) else { throw DirectoryError(.notFound, "no user \(id)") }
            struct View: Encodable { let user: User; let identities: [LinkedIdentity]; let groups: [String] }
            return try Self.encoded(View(user: user, identities: try await self.directory.linkedIdentities(pool: pool, userID: id), groups: try await self.directory.groups(pool: pool, userID: id)))
        }
        route(.post, "/pools/{pool}/users/{user}/disable") { call in
            try await call.admin.setUserEnabled(pool: try call.pool(), userID: try call.parameter("user"), enabled: false)
            return Response(status: .noContent)
        }
        route(.post, "/pools/{pool}/users/{user}/enable") { call in
            try await call.admin.setUserEnabled(pool: try call.pool(), userID: try call.parameter("user"), enabled: true)
            return Response(status: .noContent)
        }
        route(.post, "/pools/{pool}/users/{user}/links") { call in
            let b = try await call.body()
            let merge = try await call.admin.link(pool: try call.pool(), userID: try call.parameter("user"), provider: try call.string(b, "provider"), subject: try call.string(b, "subject"), issuer: b["issuer"]?.stringValue)
            var out: [String: JSONValue] = ["linked": .bool(true), "merged_user_deleted": .bool(merge.fromUserDeleted)]
            if let from = merge.fromUserID { out["moved_from_user"] = .string(from) }
            return Responses.json(out)
        }
        route(.delete, "/pools/{pool}/links") { call in
            let q = call.query
            guard let provider = q["provider"], let subject = q["subject"] else {
                throw AdminAPIError(status: .badRequest, code: "invalid_request", description: "provider and subject are required")
            }
            try await call.admin.unlink(pool: try call.pool(), provider: provider, subject: subject, issuer: q["issuer"])
            return Response(status: .noContent)
        }

        // Groups.
        route(.get, "/pools/{pool}/groups") { call in try Self.encoded(try await self.directory.listGroups(pool: try PoolID(try call.pool()))) }
        route(.post, "/pools/{pool}/groups") { call in
            let b = try await call.body()
            try await call.admin.createGroup(pool: try call.pool(), name: try call.string(b, "name"), description: b["description"]?.stringValue ?? "")
            return Response(status: .created)
        }
        route(.post, "/pools/{pool}/groups/{group}/members") { call in
            try await call.admin.addUser(pool: try call.pool(), userID: try call.string(try await call.body(), "user"), toGroup: try call.parameter("group"))
            return Response(status: .noContent)
        }

        // The audit log: a page of JSON, or JSON lines with ?format=jsonl.
        route(.get, "/pools/{pool}/audit") { call in
            let q = call.query
            let entries = try await self.directory.auditEntries(pool: try PoolID(try call.pool()), after: q["after"], action: q["action"], limit: Int(q["limit"] ?? "") ?? 100)
            guard q["format"] == "jsonl" else { return try Self.encoded(entries) }
            var text = ""
            for e in entries { text += String(decoding: try Self.adminEncoder.encode(e), as: UTF8.self) + "\n" }
            return Response(status: .ok, headers: [.contentType: "application/x-ndjson", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: text)))
        }
    }
}

extension AppClient {
    /// The client as admins may see it: the secret's hash replaced by a marker.
    public var redactedForDisplay: AppClient {
        var c = self
        if c.secretHash != nil { c.secretHash = "(hashed)" }
        return c
    }
}

extension IdentityProvider {
    /// The provider as admins may see it: sealed secrets and keys replaced by a marker.
    public var redactedForDisplay: IdentityProvider {
        var p = self
        if p.sealedClientSecret != nil { p.sealedClientSecret = "(sealed)" }
        if p.saml != nil { p.saml!.sealedSPPrivateKey = "(sealed)" }
        return p
    }
}
