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
        var client = context.peerAddress?.ipAddress ?? "-"
        if trustedProxies.contains(client), let forwarded = request.headers[.xForwardedFor] {
            client = forwarded.split(separator: ",").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? client
        }
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
}
