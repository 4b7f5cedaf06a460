import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import GatehouseCore
import GatehouseOIDC

/// An RFC 6749 error as the token, revocation and userInfo endpoints return it: JSON with `error`
/// and `error_description`. The description is for developers and never holds a secret.
struct OAuthError: Error {
    let code: String
    let description: String
    var status: HTTPResponse.Status = .badRequest
    var wwwAuthenticate: String? = nil

    static func invalidRequest(_ d: String) -> OAuthError { OAuthError(code: "invalid_request", description: d) }
    static func invalidGrant(_ d: String) -> OAuthError { OAuthError(code: "invalid_grant", description: d) }
    static func invalidClient(_ d: String, basic: Bool) -> OAuthError {
        OAuthError(code: "invalid_client", description: d, status: .unauthorized, wwwAuthenticate: basic ? "Basic realm=\"gatehouse\"" : nil)
    }

    func response() -> Response {
        var headers: HTTPFields = [.contentType: "application/json", .cacheControl: "no-store", .pragma: "no-cache"]
        if let wwwAuthenticate { headers[.wwwAuthenticate] = wwwAuthenticate }
        let body = JSONValue.serialize(object: ["error": .string(code), "error_description": .string(description)])
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

/// A page for a person, with a status and no redirect.
struct PageError: Error {
    let status: HTTPResponse.Status
    let title: String
    let message: String

    func response() -> Response {
        Responses.html(Pages.error(title: title, message: message), status: status)
    }
}

enum Responses {
    static let securityHeaders: HTTPFields = [
        .cacheControl: "no-store", .pragma: "no-cache", .xContentTypeOptions: "nosniff",
        .xFrameOptions: "DENY", .referrerPolicy: "no-referrer",
        .contentSecurityPolicy: "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
    ]

    static func html(_ page: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = securityHeaders
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: page)))
    }

    static func json(_ object: [String: JSONValue], status: HTTPResponse.Status = .ok, cache: String = "no-store") -> Response {
        var headers: HTTPFields = [.contentType: "application/json", .cacheControl: cache]
        if cache == "no-store" { headers[.pragma] = "no-cache" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: JSONValue.serialize(object: object))))
    }

    static func redirect(_ location: String, cookies: [Cookie] = []) -> Response {
        var headers = securityHeaders
        headers[.location] = location
        var response = Response(status: .found, headers: headers)
        for c in cookies { response.setCookie(c) }
        return response
    }

    /// A page that posts `fields` to `action` at once (SAML's HTTP-POST binding), with a button for
    /// browsers without script. The one inline script is allowed by its hash, and the form only to
    /// the action's origin.
    static func autoPost(action: URL, fields: [UpstreamRequest.FormField]) -> Response {
        var headers = securityHeaders
        headers[.contentType] = "text/html; charset=utf-8"
        let origin = action.scheme.map { "\($0)://" + (action.host ?? "") + (action.port.map { ":\($0)" } ?? "") } ?? "'self'"
        headers[.contentSecurityPolicy] = "default-src 'none'; style-src 'unsafe-inline'; script-src '\(Pages.autoPostScriptHash)'; frame-ancestors 'none'; form-action \(origin)"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: Pages.autoPost(action: action.absoluteString, fields: fields))))
    }

    /// Appends parameters to a registered redirect URI, keeping its own query.
    static func appending(_ params: [(String, String)], to uri: String) -> String {
        let encoded = FormEncoding.encode(params)
        return uri + (uri.contains("?") ? "&" : "?") + encoded
    }
}

extension HTTPField.Name {
    static let pragma = HTTPField.Name("Pragma")!
    static let xContentTypeOptions = HTTPField.Name("X-Content-Type-Options")!
    static let xFrameOptions = HTTPField.Name("X-Frame-Options")!
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
    static let xRequestID = HTTPField.Name("X-Request-ID")!
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
}
