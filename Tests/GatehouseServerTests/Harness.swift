import Foundation
import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import GatehouseCore
import GatehouseJOSE
import GatehouseOIDC
import GatehouseDirectory
import GatehouseServer
import GatehouseTestSupport

/// A browser for tests: real HTTP over 127.0.0.1, no redirects followed, cookies kept by name.
final class TestBrowser: @unchecked Sendable {
    let client: HTTPClient
    var cookies: [String: String] = [:]

    init() {
        var config = HTTPClient.Configuration()
        config.redirectConfiguration = .disallow
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    func shutdown() async { try? await client.shutdown() }

    struct Reply {
        let status: Int
        let headers: HTTPHeaders
        let body: String
        /// The Location header; on Gatehouse's page for a refused upstream login, where its
        /// "Return to the application" button goes (the app's redirect URI with the error).
        var location: String? { headers.first(name: "Location") ?? returnLink }
        var returnLink: String? {
            guard let r = body.range(of: #"<a class="button" href="[^"]*">Return to the application</a>"#, options: .regularExpression) else { return nil }
            return HTMLForm.attribute("href", in: String(body[r])).map(HTMLForm.unescape)
        }
        var json: [String: JSONValue] { (try? JSONDecoder().decode([String: JSONValue].self, from: Data(body.utf8))) ?? [:] }
        /// The query of the Location header, decoded.
        var locationQuery: [String: String] {
            guard let l = location, let q = URLComponents(string: l)?.percentEncodedQuery else { return [:] }
            return FormEncoding.decode(q) ?? [:]
        }
    }

    func send(_ url: String, method: HTTPMethod = .GET, headers: [(String, String)] = [], body: String? = nil, withCookies: Bool = true) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (k, v) in headers { request.headers.add(name: k, value: v) }
        if withCookies, !cookies.isEmpty { request.headers.add(name: "Cookie", value: cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await client.execute(request, timeout: .seconds(30))
        let buffer = try await response.body.collect(upTo: 4 * 1024 * 1024)
        for header in response.headers[canonicalForm: "Set-Cookie"] {
            let pair = header.split(separator: ";")[0].split(separator: "=", maxSplits: 1)
            if pair.count == 2 { cookies[String(pair[0])] = String(pair[1]) } else if pair.count == 1 { cookies[String(pair[0])] = "" }
        }
        return Reply(status: Int(response.status.code), headers: response.headers, body: String(buffer: buffer))
    }

    func postForm(_ url: String, _ form: [(String, String)], basic: (String, String)? = nil) async throws -> Reply {
        var headers = [("Content-Type", "application/x-www-form-urlencoded")]
        if let (u, p) = basic { headers.append(("Authorization", "Basic " + Data("\(FormEncoding.escape(u)):\(FormEncoding.escape(p))".utf8).base64EncodedString())) }
        return try await send(url, method: .POST, headers: headers, body: FormEncoding.encode(form), withCookies: false)
    }
}

/// An HTML form as a browser would submit it: the action resolved against the page's URL, and
/// every named input with its (unescaped) value.
struct HTMLForm {
    let action: String
    var fields: [(String, String)]

    static func first(in html: String, pageURL: String) -> HTMLForm? {
        guard let formTag = html.range(of: #"<form[^>]*>"#, options: [.regularExpression, .caseInsensitive]) else { return nil }
        let tag = String(html[formTag])
        let rawAction = attribute("action", in: tag) ?? ""
        let action = URL(string: unescape(rawAction), relativeTo: URL(string: pageURL))?.absoluteString ?? pageURL
        var fields: [(String, String)] = []
        let rest = html[formTag.upperBound...]
        let end = rest.range(of: "</form>", options: .caseInsensitive)?.lowerBound ?? rest.endIndex
        let body = String(rest[..<end])
        var search = body.startIndex
        while let input = body.range(of: #"<input[^>]*>"#, options: [.regularExpression, .caseInsensitive], range: search..<body.endIndex) {
            let inputTag = String(body[input])
            if let name = attribute("name", in: inputTag) {
                fields.append((unescape(name), unescape(attribute("value", in: inputTag) ?? "")))
            }
            search = input.upperBound
        }
        return HTMLForm(action: action, fields: fields)
    }

    static func attribute(_ name: String, in tag: String) -> String? {
        for quote in ["\"", "'"] {
            if let r = tag.range(of: " \(name)=\(quote)") {
                let after = tag[r.upperBound...]
                if let close = after.firstIndex(of: Character(quote)) { return String(after[..<close]) }
            }
        }
        return nil
    }

    static func unescape(_ s: String) -> String {
        var out = s.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
            .replacingOccurrences(of: "&#039;", with: "'").replacingOccurrences(of: "&lt;", with: "<")
            .replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&#x2F;", with: "/")
        out = out.replacingOccurrences(of: "&amp;", with: "&")
        return out
    }

    subscript(name: String) -> String? { fields.first { $0.0 == name }?.1 }
}

/// A Gatehouse with a pool, an app client and a provider backed by a loopback test OpenID provider.
struct Federation {
    let gatehouse: RunningGatehouse
    let upstream: TestOpenIDProvider
    let directory: SQLDirectory
    let pool = "acme"
    let providerName = "TestOP"
    let redirectURI = "http://127.0.0.1:9/app/callback"
    let clientID: String
    let clientSecret: String
    let publicClientID: String

    var issuer: String { "\(gatehouse.baseURL)/\(pool)" }

    /// `provider` makes the provider's spec and secret from the stand-in (default: a generic OpenID
    /// provider with client_secret_basic).
    static func start(
        _ backend: TestDatabases.Backend, logSink: CapturingLogHandler.Sink? = nil, flavor: TestOpenIDProvider.Flavor = .generic,
        provider: (@Sendable (TestOpenIDProvider) throws -> (OIDCProviderSpec, String?))? = nil
    ) async throws -> Federation {
        let directory = try await TestDatabases.make(backend)
        var upstream: TestOpenIDProvider?
        var gatehouse: RunningGatehouse?
        do {
            let op = try TestOpenIDProvider(flavor: flavor)
            upstream = op
            try await op.start()
            let running = try await RunningGatehouse.start(
                directory: directory, logLevel: logSink == nil ? .critical : .info, logHandler: logSink.map { CapturingLogHandler(sink: $0) })
            gatehouse = running
            try await running.admin.createPool(name: "acme", displayName: "Acme Corp")
            let (client, secret) = try await running.admin.createClient(pool: "acme", name: "web", redirectURIs: ["http://127.0.0.1:9/app/callback"], logoutURIs: ["http://127.0.0.1:9/app/bye"], confidential: true)
            let (publicClient, _) = try await running.admin.createClient(pool: "acme", name: "spa", redirectURIs: ["http://127.0.0.1:9/app/callback"], confidential: false)
            if let provider {
                let (spec, secret) = try provider(op)
                try await running.admin.createOIDCProvider(pool: "acme", name: "TestOP", spec: spec, clientSecret: secret, idpIdentifiers: ["example.com"])
            } else {
                try await running.admin.createOIDCProvider(
                    pool: "acme", name: "TestOP", settings: OIDCProviderSettings(issuer: op.issuer, clientID: op.clientID),
                    clientSecret: op.clientSecret, idpIdentifiers: ["example.com"])
            }
            return Federation(gatehouse: running, upstream: op, directory: directory, clientID: client.clientID, clientSecret: secret ?? "", publicClientID: publicClient.clientID)
        } catch {
            await gatehouse?.stop()
            await upstream?.stop()
            await TestDatabases.discard(directory)
            throw error
        }
    }

    func stop() async {
        await gatehouse.stop()
        await upstream.stop()
        await TestDatabases.discard(directory)
    }

    func authorizeURL(clientID: String? = nil, state: String = "app-state", nonce: String? = "app-nonce", challenge: String? = nil, redirectURI: String? = nil, scope: String = "openid email profile", extra: [(String, String)] = [("identity_provider", "TestOP")]) -> String {
        var q: [(String, String)] = [("response_type", "code"), ("client_id", clientID ?? self.clientID), ("redirect_uri", redirectURI ?? self.redirectURI), ("scope", scope), ("state", state)]
        if let nonce { q.append(("nonce", nonce)) }
        if let challenge { q += [("code_challenge", challenge), ("code_challenge_method", "S256")] }
        return "\(issuer)/oauth2/authorize?" + FormEncoding.encode(q + extra)
    }

    /// Walks app -> Gatehouse -> upstream -> callback and returns Gatehouse's redirect to the app.
    func login(_ browser: TestBrowser, url: String? = nil) async throws -> (appRedirect: TestBrowser.Reply, callbackURL: String) {
        let start = try await browser.send(url ?? authorizeURL())
        guard start.status == 302, let upstreamURL = start.location, upstreamURL.hasPrefix(upstream.issuer) else {
            throw HarnessError("authorize did not redirect upstream: \(start.status) \(start.body)")
        }
        let atUpstream = try await browser.send(upstreamURL, withCookies: false)
        if atUpstream.status == 200, let form = HTMLForm.first(in: atUpstream.body, pageURL: upstreamURL) {
            return (try await postBack(form, browser), form.action)
        }
        guard atUpstream.status == 302, let callback = atUpstream.location else { throw HarnessError("upstream did not redirect back: \(atUpstream.status) \(atUpstream.body)") }
        let back = try await browser.send(callback)
        return (back, callback)
    }

    /// A `form_post` authorization response as a browser delivers it: a cross-site POST without the
    /// SameSite=Lax cookie, answered by Gatehouse with a page that posts the fields again from its
    /// own origin, which carries the cookie.
    func postBack(_ form: HTMLForm, _ browser: TestBrowser) async throws -> TestBrowser.Reply {
        let crossSite = try await browser.postForm(form.action, form.fields)
        guard crossSite.status == 200, let again = HTMLForm.first(in: crossSite.body, pageURL: form.action), again.action == form.action else {
            throw HarnessError("the cross-site post was not re-posted: \(crossSite.status) \(crossSite.body)")
        }
        return try await browser.send(again.action, method: .POST, headers: [("Content-Type", "application/x-www-form-urlencoded")], body: FormEncoding.encode(again.fields))
    }

    func redeem(_ browser: TestBrowser, code: String, verifier: String? = nil) async throws -> TestBrowser.Reply {
        var form = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI)]
        if let verifier { form.append(("code_verifier", verifier)) }
        return try await browser.postForm("\(issuer)/oauth2/token", form, basic: (clientID, clientSecret))
    }

    /// Gatehouse's published keys, fetched over HTTP.
    func publishedKeys(_ browser: TestBrowser) async throws -> StaticKeySource {
        let reply = try await browser.send("\(issuer)/.well-known/jwks.json")
        return StaticKeySource(try JSONDecoder().decode(JWKSet.self, from: Data(reply.body.utf8)))
    }
}

/// Runs `body` with a federation (of `flavor`, its provider made by `provider`) and a browser, and
/// always stops both.
func withFederation(
    _ backend: TestDatabases.Backend = .sqlite, flavor: TestOpenIDProvider.Flavor = .generic, logSink: CapturingLogHandler.Sink? = nil,
    provider: (@Sendable (TestOpenIDProvider) throws -> (OIDCProviderSpec, String?))? = nil,
    _ body: (Federation, TestBrowser) async throws -> Void
) async throws {
    let f = try await Federation.start(backend, logSink: logSink, flavor: flavor, provider: provider)
    let browser = TestBrowser()
    do { try await body(f, browser) } catch {
        await browser.shutdown()
        await f.stop()
        throw error
    }
    await browser.shutdown()
    await f.stop()
}

extension Federation {
    /// Signs in through the provider and redeems the code: the claims of Gatehouse's ID token and
    /// the token response. Throws if the app got no code.
    func signIn(_ browser: TestBrowser) async throws -> (claims: [String: JSONValue], tokens: [String: JSONValue]) {
        let (back, _) = try await login(browser)
        guard let code = back.locationQuery["code"] else {
            throw HarnessError("no code: \(back.status) \(back.locationQuery) \(back.body.prefix(400))")
        }
        let tokens = try await redeem(browser, code: code).json
        guard let idToken = tokens["id_token"]?.stringValue else { throw HarnessError("no ID token: \(tokens)") }
        return (try UnverifiedJWS(compact: idToken).claims, tokens)
    }

    /// The app's error after a refused sign-in (from the failure page's button).
    func refusedSignIn(_ browser: TestBrowser) async throws -> String? {
        let (back, _) = try await login(browser)
        return back.locationQuery["code"] == nil ? back.locationQuery["error"] : nil
    }

    func refresh(_ browser: TestBrowser, _ token: String) async throws -> TestBrowser.Reply {
        try await browser.postForm("\(issuer)/oauth2/token", [("grant_type", "refresh_token"), ("refresh_token", token)], basic: (clientID, clientSecret))
    }
}

/// Runs `body` with fresh test browsers and always shuts them down (an HTTP client freed while open
/// aborts the test process).
func withBrowsers<R>(_ count: Int, _ body: ([TestBrowser]) async throws -> R) async throws -> R {
    let browsers = (0..<count).map { _ in TestBrowser() }
    do {
        let result = try await body(browsers)
        for b in browsers { await b.shutdown() }
        return result
    } catch {
        for b in browsers { await b.shutdown() }
        throw error
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
