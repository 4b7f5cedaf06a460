public import Foundation
public import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import GatehouseCore

/// Back-channel HTTP to upstream providers: no redirects followed, bounded response sizes, timeouts.
///
/// Thread-safe; one instance is shared by every adapter and owns its `HTTPClient` only if it made it.
public final class UpstreamHTTP: Sendable {
    public let client: HTTPClient
    private let ownsClient: Bool
    public static let maximumResponseBytes = 512 * 1024
    let timeout: TimeAmount

    public init(timeoutSeconds: Int64 = 10) {
        var config = HTTPClient.Configuration()
        config.redirectConfiguration = .disallow
        config.timeout = .init(connect: .seconds(5), read: .seconds(timeoutSeconds))
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
        self.ownsClient = true
        self.timeout = .seconds(timeoutSeconds)
    }

    public func shutdown() async throws {
        if ownsClient { try await client.shutdown() }
    }

    public struct Response: Sendable {
        public let status: Int
        public let headers: [(String, String)]
        public let body: Data
        public func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    }

    public func get(_ url: String, bearer: String? = nil) async throws -> Response {
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        request.headers.add(name: "Accept", value: "application/json")
        if let bearer { request.headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        return try await send(request)
    }

    public func postForm(_ url: String, form: [(String, String)], basicAuth: (String, String)? = nil) async throws -> Response {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        if let (user, password) = basicAuth {
            // RFC 6749 §2.3.1: each part form-urlencoded before base64.
            let raw = "\(FormEncoding.escape(user)):\(FormEncoding.escape(password))"
            request.headers.add(name: "Authorization", value: "Basic " + Data(raw.utf8).base64EncodedString())
        }
        request.body = .bytes(ByteBuffer(string: FormEncoding.encode(form)))
        return try await send(request)
    }

    private func send(_ request: HTTPClientRequest) async throws -> Response {
        var request = request
        // GitHub's API refuses requests without a User-Agent.
        request.headers.add(name: "User-Agent", value: "Gatehouse")
        do {
            let response = try await client.execute(request, timeout: timeout)
            let body = try await response.body.collect(upTo: Self.maximumResponseBytes)
            return Response(status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) }, body: Data(body.readableBytesView))
        } catch {
            // The query is left out: Graph API calls carry appsecret_proof there.
            let url = request.url.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.url
            throw UpstreamError(.unreachable, "request to \(url) failed: \(type(of: error))")
        }
    }
}
