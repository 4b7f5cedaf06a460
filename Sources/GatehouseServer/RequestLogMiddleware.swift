import Foundation
import Hummingbird
import HTTPTypes
import Logging
import NIOCore

/// One structured log line per request: method, path (never the query, which carries codes and
/// state), status, duration, request ID and client address. `X-Forwarded-For` is believed only
/// when the peer is a configured proxy.
struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = GatehouseRequestContext
    let trustedProxies: Set<String>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let client = Self.clientAddress(peer: context.peerAddress?.ipAddress, forwardedFor: request.headers[.xForwardedFor], trustedProxies: trustedProxies)
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        }
        let elapsed = ContinuousClock.now - start
        response.headers[.xRequestID] = context.id
        context.logger.info("request", metadata: [
            "method": "\(request.method.rawValue)", "path": "\(request.uri.path)", "status": "\(response.status.code)",
            "ms": "\(Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)", "client": "\(client)",
        ])
        return response
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy, in which case the last
    /// address that proxy appended to `X-Forwarded-For` (earlier entries are the client's to forge).
    static func clientAddress(peer: String?, forwardedFor: String?, trustedProxies: Set<String>) -> String {
        guard let peer else { return "-" }
        guard trustedProxies.contains(peer), var forwardedFor else { return peer }
        // The last entry (empty ones at the end passed over), read as bytes (`HeaderBytes`): the
        // proxy passes on what the client wrote.
        return forwardedFor.withUTF8 { bytes in
            var end = bytes.count
            while end > 0 && bytes[end - 1] == UInt8(ascii: ",") { end -= 1 }
            let start = (bytes[..<end].lastIndex(of: UInt8(ascii: ",")) ?? -1) + 1
            let entry = HeaderBytes.trimmed(bytes, start..<end)
            return entry.isEmpty ? peer : HeaderBytes.string(bytes, entry)
        }
    }
}
