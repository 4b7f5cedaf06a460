import Foundation
import Testing
import GatehouseCore
import GatehouseJOSE
import GatehouseTestSupport
@testable import GatehouseOIDC

/// Counts refetch requests so tests can see that an unknown kid causes exactly one.
actor CountingKeySource: VerificationKeySource {
    var current: [PreparedKey]
    let afterRefetch: [PreparedKey]
    var refetches = 0
    init(_ current: JWKSet, afterRefetch: JWKSet) {
        self.current = PreparedKey.prepare(current)
        self.afterRefetch = PreparedKey.prepare(afterRefetch)
    }
    func keys(refreshingFor unknownKid: String?) -> [PreparedKey] {
        if unknownKid != nil {
            refetches += 1
            current = afterRefetch
        }
        return current
    }
}

@Suite struct IDTokenVerifierTests {
    static let rsa = try! JWSSigningKey.generate(.rs256)
    static let other = try! JWSSigningKey.generate(.rs256)
    static let ec = try! JWSSigningKey.generate(.es256)
    let now = Date(epochSeconds: 1_800_000_000)
    let issuer = "https://idp.example"

    var keys: JWKSet { JWKSet(keys: [try! Self.rsa.publicJWK(kid: "k1"), try! Self.ec.publicJWK(kid: "e1")]) }

    func claims(_ change: (inout [String: JSONValue]) -> Void = { _ in }) -> [String: JSONValue] {
        var c: [String: JSONValue] = ["iss": .string(issuer), "sub": .string("u1"), "aud": .string("gh"), "exp": .number(Double(now.epochSeconds + 300)), "iat": .number(Double(now.epochSeconds)), "nonce": .string("n1")]
        change(&c)
        return c
    }

    static func token(header: [String: JSONValue], claims: [String: JSONValue], key: JWSSigningKey) throws -> String {
        let input = Base64URL.encode(Data(JSONValue.serialize(object: header).utf8)) + "." + Base64URL.encode(Data(JSONValue.serialize(object: claims).utf8))
        return input + "." + Base64URL.encode(try key.sign(Data(input.utf8)))
    }

    func policy(algs: Set<String> = ["RS256", "ES256"], nonce: String? = "n1") -> IDTokenPolicy {
        IDTokenPolicy(issuer: issuer, clientID: "gh", allowedAlgorithms: algs, clockSkew: 60, nonce: nonce)
    }

    func failures(_ token: String, keys: JWKSet? = nil, policy: IDTokenPolicy? = nil) async -> [String] {
        do {
            _ = try await IDTokenVerifier.verify(token, keys: StaticKeySource(keys ?? self.keys), policy: policy ?? self.policy(), now: now)
            return []
        } catch let e as VerificationError {
            return e.failures.map(\.check)
        } catch {
            return ["unexpected: \(error)"]
        }
    }

    @Test func aGoodTokenVerifies() async throws {
        let t = try Self.token(header: ["alg": .string("RS256"), "kid": .string("k1")], claims: claims(), key: Self.rsa)
        #expect(await failures(t) == [])
        let e = try Self.token(header: ["alg": .string("ES256"), "kid": .string("e1")], claims: claims(), key: Self.ec)
        #expect(await failures(e) == [])
    }

    /// Each case: a header, a claims change, the key that signs, and the check that must fail.
    @Test(arguments: [
        ("signature by another key", ["alg": "RS256", "kid": "k1"], "", "other", "signature"),
        ("alg none", ["alg": "none", "kid": "k1"], "", "rsa", "alg"),
        ("HMAC", ["alg": "HS256", "kid": "k1"], "", "rsa", "alg"),
        ("alg not allowed for provider", ["alg": "PS256", "kid": "k1"], "", "rsa", "alg"),
        ("jku header", ["alg": "RS256", "kid": "k1", "jku": "https://evil.example/jwks"], "", "rsa", "header"),
        ("x5u header", ["alg": "RS256", "kid": "k1", "x5u": "https://evil.example/cert"], "", "rsa", "header"),
        ("x5c header", ["alg": "RS256", "kid": "k1", "x5c": "MIIB"], "", "rsa", "header"),
        ("crit header", ["alg": "RS256", "kid": "k1", "crit": "exp"], "", "rsa", "header"),
        ("jwk header", ["alg": "RS256", "kid": "k1", "jwk": "{}"], "", "rsa", "header"),
        ("not yet valid", ["alg": "RS256", "kid": "k1"], "nbf", "rsa", "nbf"),
        ("unknown kid", ["alg": "RS256", "kid": "nope"], "", "rsa", "kid"),
        ("RSA alg on EC key", ["alg": "RS256", "kid": "e1"], "", "rsa", "alg"),
        ("wrong issuer", ["alg": "RS256", "kid": "k1"], "iss", "rsa", "iss"),
        ("wrong audience", ["alg": "RS256", "kid": "k1"], "aud", "rsa", "aud"),
        ("several audiences without azp", ["alg": "RS256", "kid": "k1"], "aud2", "rsa", "azp"),
        ("azp of another client", ["alg": "RS256", "kid": "k1"], "azp", "rsa", "azp"),
        ("expired beyond skew", ["alg": "RS256", "kid": "k1"], "exp", "rsa", "exp"),
        ("missing exp", ["alg": "RS256", "kid": "k1"], "noexp", "rsa", "exp"),
        ("issued in the future", ["alg": "RS256", "kid": "k1"], "iat", "rsa", "iat"),
        ("wrong nonce", ["alg": "RS256", "kid": "k1"], "nonce", "rsa", "nonce"),
        ("missing nonce", ["alg": "RS256", "kid": "k1"], "nononce", "rsa", "nonce"),
        ("missing sub", ["alg": "RS256", "kid": "k1"], "nosub", "rsa", "sub"),
    ])
    func everyCheckFailsClosed(_ name: String, _ header: [String: String], _ change: String, _ signer: String, _ expected: String) async throws {
        let c = claims { c in
            switch change {
            case "iss": c["iss"] = .string("https://evil.example")
            case "aud": c["aud"] = .string("someone-else")
            case "aud2": c["aud"] = .array([.string("gh"), .string("other")])
            case "azp": c["azp"] = .string("other")
            case "exp": c["exp"] = .number(Double(now.epochSeconds - 61))
            case "noexp": c["exp"] = nil
            case "iat": c["iat"] = .number(Double(now.epochSeconds + 120))
            case "nonce": c["nonce"] = .string("n2")
            case "nononce": c["nonce"] = nil
            case "nosub": c["sub"] = nil
            case "nbf": c["nbf"] = .number(Double(now.epochSeconds + 120))
            default: break
            }
        }
        let key = signer == "other" ? Self.other : Self.rsa
        let t = try Self.token(header: header.mapValues { JSONValue.string($0) }, claims: c, key: key)
        let failed = await failures(t, policy: policy(algs: ["RS256", "ES256"]))
        #expect(failed.contains(expected), "\(name): \(failed)")
    }

    @Test func expiryWithinSkewIsAccepted() async throws {
        let t = try Self.token(header: ["alg": .string("RS256"), "kid": .string("k1")], claims: claims { $0["exp"] = .number(Double(now.epochSeconds - 30)) }, key: Self.rsa)
        #expect(await failures(t) == [])
    }

    @Test func malformedTokensAreRefused() async {
        for t in ["", "a.b", "a.b.c.d.e", "!!.!!.!!", String(repeating: "a", count: 20_000)] {
            #expect(!(await failures(t)).isEmpty, "\(t.prefix(20))")
        }
    }

    /// The compact form's parser says what is wrong, and reads a well-formed token whatever its
    /// claims (the verifier judges those).
    @Test func compactParsingNamesWhatIsWrong() throws {
        func reason(_ t: String) -> String? {
            do {
                _ = try UnverifiedJWS(compact: t)
                return nil
            } catch let e as VerificationError {
                return e.failures.first?.reason
            } catch {
                return "\(error)"
            }
        }
        #expect(reason("a.b.c.d.e") == "encrypted tokens (JWE) are not accepted")
        #expect(reason("a.b") == "not a compact JWS")
        #expect(reason("!!.e30.e30") == "a part is not base64url")
        #expect(reason("e30.e30.!!") == "a part is not base64url")
        #expect(reason("W10.e30.") == "header is not a JSON object (or repeats a member)")
        #expect(reason("e30.e30.") == nil)
        let parsed = try UnverifiedJWS(compact: "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1MSJ9.AAEC")
        #expect(parsed.algorithm == "RS256" && parsed.claims["sub"]?.stringValue == "u1")
        #expect(parsed.signature == Data([0, 1, 2]) && parsed.signingInput == Data("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1MSJ9".utf8))
    }

    @Test func aRepeatedClaimIsRefusedRatherThanGuessedAt() async throws {
        let header = Base64URL.encode(Data(#"{"alg":"RS256","kid":"k1"}"#.utf8))
        let body = #"{"iss":"https://idp.example","sub":"u1","aud":"gh","aud":"gh","exp":1800000300,"iat":1800000000,"nonce":"n1"}"#
        let input = header + "." + Base64URL.encode(Data(body.utf8))
        let t = input + "." + Base64URL.encode(try Self.rsa.sign(Data(input.utf8)))
        await #expect(throws: VerificationError.self) { try await IDTokenVerifier.verify(t, keys: StaticKeySource(keys), policy: policy(), now: now) }
    }

    @Test func aMissingKidIsAcceptedOnlyWithExactlyOneFittingKey() async throws {
        let t = try Self.token(header: ["alg": .string("RS256")], claims: claims(), key: Self.rsa)
        #expect(await failures(t, keys: JWKSet(keys: [try Self.rsa.publicJWK(kid: "k1")])) == [])
        let two = JWKSet(keys: [try Self.rsa.publicJWK(kid: "k1"), try Self.other.publicJWK(kid: "k2")])
        #expect(await failures(t, keys: two) == ["kid"])
    }

    @Test func anUnknownKidRefetchesOnceAndNeverFallsBack() async throws {
        let rotated = JWKSet(keys: [try Self.other.publicJWK(kid: "k2")])
        let source = CountingKeySource(keys, afterRefetch: rotated)
        let t = try Self.token(header: ["alg": .string("RS256"), "kid": .string("k2")], claims: claims(), key: Self.other)
        _ = try await IDTokenVerifier.verify(t, keys: source, policy: policy(), now: now)
        #expect(await source.refetches == 1)
        // Signed by the one key the set holds, under a kid it does not: a fallback would accept it.
        let stranger = try Self.token(header: ["alg": .string("RS256"), "kid": .string("k9")], claims: claims(), key: Self.other)
        await #expect(throws: VerificationError.self) { try await IDTokenVerifier.verify(stranger, keys: source, policy: policy(), now: now) }
        #expect(await source.refetches == 2)
    }

    @Test func jwksRefetchesAreRateLimitedOverHTTP() async throws {
        try await withProvider { op, http in
            let clock = ManualClock(Date())
            var policy = CachePolicy()
            policy.minimumForcedInterval = 30
            let cache = JWKSCache(jwksURI: op.issuer + "/jwks", http: http, clock: clock, policy: policy)
            _ = try await cache.keys(refreshingFor: nil)
            for _ in 0..<5 { _ = try await cache.keys(refreshingFor: "unknown") }
            #expect(await cache.fetchCount == 2, "one initial fetch and one forced refetch")
            clock.advance(by: 31)
            _ = try await cache.keys(refreshingFor: "unknown")
            #expect(await cache.fetchCount == 3)
        }
    }

    @Test func discoveryIssuerMustMatchExactly() async throws {
        try await withProvider { op, http in
            let doc = try await DiscoveryDocument.fetch(settings: OIDCProviderSettings(issuer: op.issuer, clientID: op.clientID), http: http)
            #expect(doc.jwksURI == op.issuer + "/jwks")
            await #expect { try await DiscoveryDocument.fetch(settings: OIDCProviderSettings(issuer: op.issuer + "/", clientID: op.clientID), http: http) } throws: {
                ($0 as? UpstreamError)?.kind == .misconfigured
            }
        }
    }

    @Test func theCLICheckNamesEveryFailedCheck() async throws {
        let t = try Self.token(header: ["alg": .string("RS256"), "kid": .string("k1")], claims: claims { $0["aud"] = .string("x"); $0["nonce"] = .string("bad") }, key: Self.rsa)
        let report = await IDTokenCheck.run(token: t, keys: StaticKeySource(keys), policy: policy(), now: now)
        #expect(!report.verified)
        #expect(report.text.contains("FAILED aud"))
        #expect(report.text.contains("FAILED nonce"))
        let good = try Self.token(header: ["alg": .string("RS256"), "kid": .string("k1")], claims: claims(), key: Self.rsa)
        let ok = await IDTokenCheck.run(token: good + "\n", keys: StaticKeySource(keys), policy: policy(), now: now)
        #expect(ok.verified)
        #expect(ok.text.contains("\"sub\" : \"u1\""))
        #expect(IDTokenCheck.parseInstant("2027-01-15T08:00:00Z") != nil)
    }

    @Test func nonStringAudiencesAreRefused() async throws {
        let t = try Self.token(header: ["alg": .string("RS256"), "kid": .string("k1")], claims: claims { $0["aud"] = .array([.string("gh"), .number(1)]) }, key: Self.rsa)
        #expect(await failures(t).contains("aud"))
    }

    @Test func ecKeysWithWrongCoordinateLengthsAreRefused() throws {
        var jwk = try Self.ec.publicJWK(kid: "e1")
        jwk.x = Base64URL.encode(Data([0]) + Base64URL.decode(jwk.x!)!)
        #expect(throws: VerificationError.self) { try JWSVerificationKey(jwk: jwk) }
    }

    @Test func userinfoNeverOverridesTheSignedAuthenticationContext() {
        let now = Date(epochSeconds: 1_800_000_000)
        let signed: [String: JSONValue] = ["sub": .string("u1"), "auth_time": .number(1_799_999_000), "acr": .string("mfa")]
        var merged = signed
        merged["acr"] = .string("none")
        merged["auth_time"] = .number(1e19)
        let identity = OIDCAdapter.identity(provider: "P", issuer: "https://i", claims: merged, verified: signed, now: now, skew: 60)
        #expect(identity.acr == "mfa")
        #expect(identity.authTime == Date(epochSeconds: 1_799_999_000))
        let future = OIDCAdapter.identity(provider: "P", issuer: "https://i", claims: [:], verified: ["sub": .string("u1"), "auth_time": .number(1e19)], now: now, skew: 60)
        #expect(future.authTime == nil)
    }

    @Test func formEncodingRefusesRepeatedParameters() {
        #expect(FormEncoding.decode("a=%+A") == nil)
        #expect(FormEncoding.decode("a=%-0") == nil)
        #expect(FormEncoding.decode("a=1&b=2+3&c=%41") == ["a": "1", "b": "2 3", "c": "A"])
        #expect(FormEncoding.decode("a=1&a=2") == nil)
        #expect(FormEncoding.decode("a=%4") == nil)
        #expect(FormEncoding.decode(FormEncoding.encode([("k", "a b&c=d/é")])) == ["k": "a b&c=d/é"])
    }
}
