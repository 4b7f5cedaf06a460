import Foundation
import Logging
import GatehouseJOSE
import Hummingbird
import HTTPTypes
import NIOCore
import GatehouseCore
import GatehouseIssuer
import GatehouseOIDC

extension Gatehouse {
    /// The pool named in the path, or a 404 page.
    func pool(_ context: GatehouseRequestContext) async throws -> Pool {
        guard let name = context.parameters.get("pool"), let id = try? PoolID(name), let pool = try await directory.pool(id) else {
            throw PageError(status: .notFound, title: "Not found", message: "There is no such user pool.")
        }
        return pool
    }

    /// Query parameters; a parameter given twice is refused (RFC 6749 §3.1).
    func query(_ request: Request) throws -> [String: String] {
        guard let q = FormEncoding.decode(request.uri.query ?? "") else {
            throw PageError(status: .badRequest, title: "Bad request", message: "The request has a repeated or malformed parameter.")
        }
        return q
    }

    func discovery(_ request: Request, _ context: GatehouseRequestContext) async throws -> Response {
        let pool = try await pool(context)
        return Responses.json(ProviderMetadata.document(issuer: configuration.issuer(for: pool.id), algorithm: pool.signingAlgorithm), cache: "public, max-age=3600")
    }

    func jwks(_ request: Request, _ context: GatehouseRequestContext) async throws -> Response {
        let pool = try await pool(context)
        let set = try await keyRing.jwks(pool: pool.id)
        // Short caching: a key published ahead of rotation must reach relying parties before it signs.
        return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "public, max-age=300"],
                        body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(set))))
    }

    /// GET /{pool}/providers/{provider}/jwks.json: the public key Gatehouse signs its
    /// `private_key_jwt` client assertions to that provider with, for the provider to fetch.
    func providerClientJWKS(_ request: Request, _ context: GatehouseRequestContext) async throws -> Response {
        let pool = try await pool(context)
        guard let name = context.parameters.get("provider"), let provider = try await directory.provider(pool: pool.id, name: name),
            let adapter = try? adapters.adapter(for: provider),
            let set = ((adapter as? OIDCAdapter)?.credential ?? (adapter as? OAuth2Adapter)?.credential)?.publicJWKS
        else { throw PageError(status: .notFound, title: "Not found", message: "This provider has no client key.") }
        return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "public, max-age=300"],
                        body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(set))))
    }
}
