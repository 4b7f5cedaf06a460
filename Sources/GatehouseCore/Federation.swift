public import Foundation

/// An identity an upstream provider vouched for, after every check of its adapter passed.
///
/// Only adapter modules construct one (the initialiser is `package`): code outside the package cannot
/// forge a verified identity.
public struct VerifiedIdentity: Sendable, Equatable {
    public let providerName: String
    public let providerKind: ProviderKind
    public let upstreamIssuer: String
    public let upstreamSubject: String
    /// Every attribute or claim, flattened: nested objects by dotted path, arrays as several values.
    public let attributes: [String: [String]]
    public let authTime: Date?
    public let acr: String?
    public let amr: [String]
    public let sessionIndex: String?
    /// The upstream's refresh token, when the provider is set to keep it for upstream refresh.
    public let upstreamRefreshToken: RedactedSecret?

    package init(
        providerName: String, providerKind: ProviderKind, upstreamIssuer: String, upstreamSubject: String,
        attributes: [String: [String]], authTime: Date?, acr: String?, amr: [String], sessionIndex: String?,
        upstreamRefreshToken: RedactedSecret? = nil
    ) {
        self.upstreamRefreshToken = upstreamRefreshToken
        self.providerName = providerName
        self.providerKind = providerKind
        self.upstreamIssuer = upstreamIssuer
        self.upstreamSubject = upstreamSubject
        self.attributes = attributes
        self.authTime = authTime
        self.acr = acr
        self.amr = amr
        self.sessionIndex = sessionIndex
    }
}

/// The login state the server owns and hands to an adapter: it is never the adapter's to invent.
public struct UpstreamLoginState: Sendable {
    /// The `state` sent upstream (the login transaction's id).
    public let state: String
    public let nonce: String
    public let pkceVerifier: String
    /// Where the upstream sends the browser back (Gatehouse's callback for this pool).
    public let callbackURL: String
    /// The person must authenticate again at the upstream, even with a session there (OIDC
    /// `prompt=login` and `max_age=0`, SAML `ForceAuthn`): a link to an account asks for it.
    public let forceFreshLogin: Bool

    public init(state: String, nonce: String, pkceVerifier: String, callbackURL: String, forceFreshLogin: Bool = false) {
        self.state = state
        self.nonce = nonce
        self.pkceVerifier = pkceVerifier
        self.callbackURL = callbackURL
        self.forceFreshLogin = forceFreshLogin
    }
}

/// What the upstream sent back to the callback: the query (or form) parameters, and whether they
/// came as a form POST (`response_mode=form_post`, the SAML POST binding) or in a GET's query.
public struct UpstreamCallback: Sendable {
    public let parameters: [String: String]
    public let viaPost: Bool
    public init(parameters: [String: String], viaPost: Bool = false) {
        self.parameters = parameters
        self.viaPost = viaPost
    }
}

/// A secret that prints as `<redacted>`, so no log line or error description can carry it.
public struct RedactedSecret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public let value: String
    public init(_ value: String) { self.value = value }
    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}

/// An adapter that can renew a login with the upstream's refresh token and re-read its claims.
public protocol UpstreamRefreshing: FederationAdapter {
    /// Renews the upstream login for `subject` (at `issuer`), verifying what comes back exactly as
    /// at login (except the nonce); the identity carries the upstream's next refresh token, or the
    /// same one if it did not rotate. Throws `UpstreamError` (`.upstreamRefused` when the upstream
    /// refused the token).
    func refresh(token: RedactedSecret, issuer: String, subject: String, now: Date) async throws -> VerifiedIdentity
}

/// One upstream identity provider, as Gatehouse's server sees it.
///
/// `begin` builds the URL the browser goes to; `complete` verifies what came back and returns a
/// `VerifiedIdentity`, or throws. Implementations are thread-safe and hold their caches.
public protocol FederationAdapter: Sendable {
    var providerName: String { get }
    func begin(_ state: UpstreamLoginState) async throws -> URL
    /// How the browser goes upstream: a redirect (the default, `begin`'s URL) or a form it posts.
    func start(_ state: UpstreamLoginState) async throws -> UpstreamRequest
    func complete(_ callback: UpstreamCallback, state: UpstreamLoginState, now: Date) async throws -> VerifiedIdentity
}

extension FederationAdapter {
    public func start(_ state: UpstreamLoginState) async throws -> UpstreamRequest { .redirect(try await begin(state)) }
}

/// Where the browser goes to sign in upstream.
public enum UpstreamRequest: Sendable, Equatable {
    case redirect(URL)
    /// An auto-submitting form (SAML's HTTP-POST binding): the fields, in order, to `action`.
    case formPost(action: URL, fields: [FormField])

    public struct FormField: Sendable, Equatable {
        public let name: String
        public let value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }
}

/// An adapter that can accept a login nobody asked for (SAML IdP-initiated SSO), when its provider
/// allows it.
public protocol UnsolicitedLoginAdapter: FederationAdapter {
    var allowsUnsolicited: Bool { get }
    func completeUnsolicited(_ callback: UpstreamCallback, now: Date) async throws -> VerifiedIdentity
}

/// Why an upstream login failed, in terms the server can act on.
public struct UpstreamError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The upstream itself answered with an OAuth error (`access_denied`, …).
        case upstreamRefused = "upstream_refused"
        /// The upstream could not be reached or answered nonsense.
        case unreachable
        /// What the upstream sent failed verification.
        case verification
        /// The provider is misconfigured (for example a discovery issuer mismatch).
        case misconfigured
    }
    public let kind: Kind
    public let reason: String
    public let failures: [VerificationError.Failure]
    /// The OAuth error code the upstream answered (`access_denied`, `consent_required` …), if any.
    public let upstreamCode: String?

    public init(_ kind: Kind, _ reason: String, failures: [VerificationError.Failure] = [], upstreamCode: String? = nil) {
        self.upstreamCode = upstreamCode
        self.kind = kind
        self.reason = reason
        self.failures = failures
    }
    public var description: String {
        failures.isEmpty ? "\(kind.rawValue): \(reason)" : "\(kind.rawValue): \(reason): \(failures.map(\.description).joined(separator: "; "))"
    }
}
