public import Foundation
public import GatehouseCore
public import GatehouseJOSE

/// What an ID token must satisfy (OpenID Connect Core 1.0 §3.1.3.7).
public struct IDTokenPolicy: Sendable {
    public var issuer: String
    public var clientID: String
    /// Accepted JWS algorithms; `none` and HMAC can never be among them.
    public var allowedAlgorithms: Set<String>
    public var clockSkew: TimeInterval
    /// The nonce sent in the authorization request; `nil` only for the CLI when none is given and
    /// for a token from an upstream refresh (OpenID Connect Core §12.2).
    public var nonce: String?
    /// Microsoft multi-tenant: the issuer with a `{tenantid}` placeholder. The token's `tid` must be
    /// a tenant ID (among `allowedTenants` when that is not empty) and `iss` this template filled with it.
    public var issuerTemplate: String? = nil
    public var allowedTenants: Set<String> = []
    /// Tenants never accepted (Microsoft's personal-account tenant at the `organizations` endpoint).
    public var excludedTenants: Set<String> = []
    /// Other spellings of `issuer` the provider documents for its tokens (Google's `accounts.google.com`).
    public var issuerAliases: Set<String> = []
    /// Claims that must be present with exactly these values (Google Workspace's `hd`).
    public var requiredClaims: [String: String] = [:]
    /// On an upstream refresh: the `sub` of the original login, which the new token must repeat.
    public var expectedSubject: String? = nil

    public init(issuer: String, clientID: String, allowedAlgorithms: Set<String>, clockSkew: TimeInterval, nonce: String?) {
        self.issuer = issuer
        self.clientID = clientID
        self.allowedAlgorithms = allowedAlgorithms.filter { JWSAlgorithm(rawValue: $0) != nil }
        self.clockSkew = clockSkew
        self.nonce = nonce
    }
}

/// A JWK with its verification key already built, so a verification does no key parsing.
public struct PreparedKey: Sendable {
    public let jwk: JWK
    public let key: JWSVerificationKey

    /// Prepares every usable key of a set; keys that cannot verify signatures (private, `oct`,
    /// unknown curves, RSA under 2048 bits, `use` other than `sig`) are left out.
    public static func prepare(_ set: JWKSet) -> [PreparedKey] {
        set.keys.compactMap { jwk in (try? JWSVerificationKey(jwk: jwk)).map { PreparedKey(jwk: jwk, key: $0) } }
    }
}

/// Where an ID token's verification keys come from: a provider's JWKS, cached.
public protocol VerificationKeySource: Sendable {
    /// The current keys. `refreshingFor` names a `kid` that was not found: the source may refetch
    /// once (rate-limited) and must never substitute another key.
    func keys(refreshingFor unknownKid: String?) async throws -> [PreparedKey]
}

/// A fixed key set: for `gatehouse oidc verify --jwks FILE` and tests.
public struct StaticKeySource: VerificationKeySource {
    public let prepared: [PreparedKey]
    public init(_ set: JWKSet) { self.prepared = PreparedKey.prepare(set) }
    public func keys(refreshingFor unknownKid: String?) async throws -> [PreparedKey] { prepared }
}

/// Claims of an ID token that passed every check.
public struct VerifiedIDToken: Sendable {
    public let claims: [String: JSONValue]
    public let keyID: String?
    public let algorithm: String
    public var subject: String { claims["sub"]?.stringValue ?? "" }
}

/// Verifies upstream ID tokens: the signature mechanism first, then the policy. Every failed check
/// is collected; the only way out with a value is through all of them.
public enum IDTokenVerifier {
    /// Header parameters that ask the verifier to fetch or trust a key from the token itself.
    static let forbiddenHeaderParameters = ["jku", "x5u", "jwk", "x5c"]

    public static func verify(_ token: String, keys: any VerificationKeySource, policy: IDTokenPolicy, now: Date) async throws -> VerifiedIDToken {
        let jws = try UnverifiedJWS(compact: token)
        var failures: [VerificationError.Failure] = []
        func fail(_ check: String, _ reason: String) { failures.append(.init(check: check, reason: reason)) }

        // Mechanism: header, key, signature.
        let alg = jws.algorithm ?? ""
        var signatureChecked = false
        if alg.isEmpty { fail("alg", "header has no alg") }
        else if alg == "none" || alg.hasPrefix("HS") { fail("alg", "\(alg) is never accepted") }
        else if !policy.allowedAlgorithms.contains(alg) { fail("alg", "\(alg) is not among the provider's allowed algorithms \(policy.allowedAlgorithms.sorted())") }
        for name in forbiddenHeaderParameters where jws.header[name] != nil {
            fail("header", "header parameter \(name) is refused: keys come only from the provider's JWKS")
        }
        if jws.header["crit"] != nil { fail("header", "crit extensions are not supported") }
        if failures.isEmpty, let jwsAlg = JWSAlgorithm(rawValue: alg) {
            do {
                if let key = try await selectKey(kid: jws.keyID, alg: jwsAlg, source: keys) {
                    signatureChecked = true
                    if !jwsAlg.verify(signature: jws.signature, input: jws.signingInput, key: key) {
                        fail("signature", "signature does not verify with key \(jws.keyID ?? "(no kid)")")
                    }
                } else {
                    fail("kid", jws.keyID.map { "no key with kid \($0) in the provider's JWKS" } ?? "token has no kid and the JWKS does not hold exactly one usable key")
                }
            } catch let e as VerificationError {
                failures += e.failures
            } catch let e as UpstreamError {
                // The keys could not be fetched: the provider is unreachable, the token unjudged.
                throw e
            } catch {
                fail("jwks", "could not obtain the provider's keys: \(error)")
            }
        }

        // Policy: the claims (evaluated even when the signature failed, so an admin sees everything).
        let c = jws.claims
        let skew = policy.clockSkew
        let t = now.timeIntervalSince1970
        let iss = c["iss"]?.stringValue
        if let template = policy.issuerTemplate {
            // The tenant is whatever the token says; it must be a tenant ID, allowed, and the one
            // its issuer names (so a token from tenant A cannot pass as tenant B's).
            let tid = c["tid"]?.stringValue ?? ""
            if !OIDCProviderSettings.isTenantID(tid) { fail("tid", "tid \(tid.isEmpty ? "(missing)" : tid) is not a tenant ID") }
            else if policy.excludedTenants.contains(tid) || (!policy.allowedTenants.isEmpty && !policy.allowedTenants.contains(tid)) {
                fail("tid", "tenant \(tid) is not allowed to sign in")
            }
            else if iss != template.replacingOccurrences(of: "{tenantid}", with: tid) {
                fail("iss", "issuer \(iss ?? "(missing)") is not \(template) for tenant \(tid)")
            }
        } else if iss != policy.issuer && !(iss.map(policy.issuerAliases.contains) ?? false) {
            fail("iss", "issuer \(iss ?? "(missing)") is not \(policy.issuer)")
        }
        for (name, value) in policy.requiredClaims.sorted(by: { $0.key < $1.key }) where c[name]?.stringValue != value {
            fail(name, "\(name) must be \(value)")
        }
        if let expected = policy.expectedSubject, c["sub"]?.stringValue != expected {
            fail("sub", "sub differs from the original login's")
        }
        let audiences: [String]
        switch c["aud"] {
        case .string(let s): audiences = [s]
        case .array(let a) where a.allSatisfy({ $0.stringValue != nil }) && !a.isEmpty: audiences = a.compactMap(\.stringValue)
        default: audiences = []
        }
        if audiences.isEmpty { fail("aud", "aud must be a string or a non-empty array of strings") }
        else if !audiences.contains(policy.clientID) { fail("aud", "audience \(audiences) does not contain \(policy.clientID)") }
        if let azp = c["azp"] {
            if azp.stringValue != policy.clientID { fail("azp", "authorized party is not \(policy.clientID)") }
        } else if audiences.count > 1 {
            fail("azp", "several audiences and no azp")
        }
        if let exp = c["exp"]?.numberValue {
            if t >= exp + skew { fail("exp", "expired at \(Date(timeIntervalSince1970: exp)) (now \(now), skew \(Int(skew))s)") }
        } else { fail("exp", "missing exp") }
        if let iat = c["iat"]?.numberValue {
            if iat > t + skew { fail("iat", "issued in the future (\(Date(timeIntervalSince1970: iat)))") }
        } else { fail("iat", "missing iat") }
        if let nbf = c["nbf"]?.numberValue, nbf > t + skew { fail("nbf", "not valid before \(Date(timeIntervalSince1970: nbf))") }
        if let expected = policy.nonce {
            if let got = c["nonce"]?.stringValue {
                if !Secrets.constantTimeEquals(got, expected) { fail("nonce", "nonce does not match the login transaction") }
            } else { fail("nonce", "missing nonce") }
        }
        if let sub = c["sub"]?.stringValue {
            if sub.isEmpty || sub.utf8.count > 255 { fail("sub", "sub must be 1-255 characters") }
        } else { fail("sub", "missing sub") }

        guard failures.isEmpty, signatureChecked else {
            throw VerificationError(failures.isEmpty ? [.init(check: "signature", reason: "signature was not checked")] : failures)
        }
        return VerifiedIDToken(claims: c, keyID: jws.keyID, algorithm: alg)
    }

    /// Whether a key can verify signatures of `alg` (its own `alg`, if stated, must agree).
    static func fits(_ k: JWK, _ alg: String) -> Bool {
        if let a = k.alg, a != alg { return false }
        switch alg {
        case "ES256": return k.kty == "EC" && k.crv == "P-256"
        case "ES384": return k.kty == "EC" && k.crv == "P-384"
        default: return k.kty == "RSA"
        }
    }

    /// Picks the key by `kid`. An unknown `kid` asks the source to refresh once; a missing `kid` is
    /// accepted only when exactly one key fits the algorithm. Never a fallback to another key.
    static func selectKey(kid: String?, alg: JWSAlgorithm, source: any VerificationKeySource) async throws -> JWSVerificationKey? {
        func fits(_ k: JWK) -> Bool { Self.fits(k, alg.rawValue) }
        if let kid {
            var keys = try await source.keys(refreshingFor: nil)
            if !keys.contains(where: { $0.jwk.kid == kid }) { keys = try await source.keys(refreshingFor: kid) }
            guard let found = keys.first(where: { $0.jwk.kid == kid }) else { return nil }
            guard fits(found.jwk) else { throw VerificationError(check: "alg", reason: "key \(kid) does not fit algorithm \(alg.rawValue)") }
            return found.key
        }
        let usable = try await source.keys(refreshingFor: nil).filter { fits($0.jwk) }
        guard usable.count == 1 else { return nil }
        return usable[0].key
    }
}
