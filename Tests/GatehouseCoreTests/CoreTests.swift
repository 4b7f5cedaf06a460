import Foundation
import Testing
@testable import GatehouseCore

@Suite struct CoreTests {
    @Test func base64URLRoundTripsAndRefusesOtherAlphabets() {
        let bytes = Data((0..<256).map { UInt8($0) })
        let text = Base64URL.encode(bytes)
        #expect(!text.contains("=") && !text.contains("+") && !text.contains("/"))
        #expect(Base64URL.decode(text) == bytes)
        #expect(Base64URL.decode("ab+c") == nil)
        #expect(Base64URL.decode("abc=") == nil)
        #expect(Base64URL.decode("a") == nil)
    }

    @Test func base64URLAgreesWithFoundationAtEveryLengthAndRefusesNonCanonicalForms() {
        var generator = SystemRandomNumberGenerator()
        for length in 0..<70 {
            let bytes = Data((0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) })
            let reference = bytes.base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
            #expect(Base64URL.encode(bytes) == reference)
            #expect(Base64URL.decode(reference) == bytes)
            // A character outside the alphabet is refused wherever it stands.
            for position in stride(from: 0, to: reference.count, by: 5) {
                var broken = Array(reference.utf8)
                broken[position] = UInt8(ascii: "*")
                #expect(Base64URL.decode(String(decoding: broken, as: UTF8.self)) == nil)
            }
        }
        // "QQ" is the one encoding of "A"; "QR" sets a trailing bit and is refused, as are the
        // three-character forms with the same defect.
        #expect(Base64URL.decode("QQ") == Data("A".utf8))
        #expect(Base64URL.decode("QR") == nil)
        #expect(Base64URL.decode("QUE") == Data("AA".utf8))
        #expect(Base64URL.decode("QUF") == nil)
        #expect(Base64URL.decode("") == Data())
    }

    @Test func formEncodingFollowsHTMLAndRoundTrips() {
        let text = "a b&c=d/é+%*-._~"
        #expect(FormEncoding.escape(text) == "a+b%26c%3Dd%2F%C3%A9%2B%25*-._%7E")
        #expect(FormEncoding.decode("x=" + FormEncoding.escape(text)) == ["x": text])
        #expect(FormEncoding.decode("x=1&x=2") == nil, "a repeated name is refused")
        #expect(FormEncoding.decode("x=%G1") == nil)
        #expect(FormEncoding.decode("x=%4") == nil, "a cut escape at the end is refused")
        #expect(FormEncoding.decode("x=%") == nil)
        #expect(FormEncoding.decode("x=%C3") == nil, "an escape that decodes to broken UTF-8 is refused")
        #expect(FormEncoding.decode("a=1&&b=&c&=v&d=x=y") == ["a": "1", "b": "", "c": "", "": "v", "d": "x=y"])
        #expect(FormEncoding.decode("") == [:])
        #expect(FormEncoding.decode("&") == [:])
        // A body is read as bytes: a raw byte that is not UTF-8 is refused, a raw é is kept.
        let raw: [UInt8] = Array("x=".utf8) + [0xFF]
        #expect(raw.withUnsafeBufferPointer { FormEncoding.decode(bytes: $0) } == nil)
        let accented = Array("x=é&y=%C3%A9".utf8)
        #expect(accented.withUnsafeBufferPointer { FormEncoding.decode(bytes: $0) } == ["x": "é", "y": "é"])
        // `&` followed by a combining mark is still a separator: the split is on bytes, not characters.
        #expect(FormEncoding.decode("a=1&\u{301}b=2") == ["a": "1", "\u{301}b": "2"])
    }

    @Test func masterKeySealsBoundToPurpose() throws {
        let key = try MasterKey(base64: MasterKey.generateBase64())
        let sealed = try key.seal(Data("secret".utf8), purpose: "signing-key:acme/k1")
        #expect(!sealed.contains("secret"))
        #expect(try key.open(sealed, purpose: "signing-key:acme/k1") == Data("secret".utf8))
        #expect(throws: ConfigurationError.self) { try key.open(sealed, purpose: "signing-key:other/k1") }
        let other = try MasterKey(base64: MasterKey.generateBase64())
        #expect(throws: ConfigurationError.self) { try other.open(sealed, purpose: "signing-key:acme/k1") }
        #expect(throws: ConfigurationError.self) { try MasterKey(base64: "dG9vIHNob3J0") }
    }

    @Test(arguments: [("acme", true), ("a-b-9", true), ("-x", false), ("Acme", false), ("", false), ("metrics", false), (String(repeating: "a", count: 64), false), ("a/b", false)])
    func poolNames(_ name: String, _ valid: Bool) {
        #expect(((try? PoolID(name)) != nil) == valid)
    }

    func client(_ uris: [String], idTTL: Int = 3600) -> AppClient {
        AppClient(poolID: try! PoolID("p"), clientID: "c", name: "n", secretHash: nil, redirectURIs: uris, idTokenTTL: idTTL, createdAt: Date())
    }

    @Test(arguments: [
        (["https://app.example/cb"], true), (["http://127.0.0.1:3000/cb"], true), (["http://localhost/cb"], true),
        (["com.example.app:/cb"], true), (["http://app.example/cb"], false), (["https://app.example/cb#frag"], false),
        (["myapp:/cb"], false), ([], false), (["not a uri"], false),
    ])
    func redirectURIRules(_ uris: [String], _ valid: Bool) {
        #expect(((try? client(uris).validate()) != nil) == valid)
    }

    @Test(arguments: [("localhost", true), ("127.0.0.1", true), ("127.1.2.3", true), ("::1", true), ("127.attacker.example", false), ("127.0.0.1.nip.io", false), ("1270.0.0.1", false), ("128.0.0.1", false), ("127.0.0.256", false)])
    func loopbackMeansLoopback(_ host: String, _ loopback: Bool) {
        #expect(AppClient.isLoopbackHost(host) == loopback)
    }

    @Test func hostileEpochValuesDoNotTrap() {
        #expect(Date(timeIntervalSince1970: 1e19).epochSeconds == 9_000_000_000_000_000)
        #expect(Date(timeIntervalSince1970: -.infinity).epochSeconds == 0)
    }

    @Test func providerNamesCannotContainTheUsernameSeparator() {
        let p = IdentityProvider(poolID: try! PoolID("p"), name: "a_b", kind: .oidc, oidc: OIDCProviderSettings(issuer: "https://i.example", clientID: "c"), sealedClientSecret: nil, attributeMapping: .oidcStandard, createdAt: Date())
        #expect(throws: DirectoryError.self) { try p.validate() }
    }

    @Test func tokenLifetimesAreBounded() {
        #expect(throws: DirectoryError.self) { try client(["https://a.example/cb"], idTTL: 60).validate() }
        #expect(throws: DirectoryError.self) { try client(["https://a.example/cb"], idTTL: 2 * 86400).validate() }
    }

    @Test(arguments: [["HS256"], ["none"], [], ["RS256", "HS512"]])
    func providersRefuseUnsafeAlgorithms(_ algs: [String]) {
        let s = OIDCProviderSettings(issuer: "https://idp.example", clientID: "c", allowedAlgorithms: algs)
        #expect(throws: DirectoryError.self) { try s.validate() }
    }

    @Test func providersRefusePlainHTTPIssuersOutsideLoopback() throws {
        #expect(throws: DirectoryError.self) { try OIDCProviderSettings(issuer: "http://idp.example", clientID: "c").validate() }
        try OIDCProviderSettings(issuer: "http://127.0.0.1:9000", clientID: "c").validate()
    }

    @Test func flattenNestsByPathAndSpreadsArrays() {
        let claims: [String: JSONValue] = [
            "email": .string("a@x"), "email_verified": .bool(true), "n": .number(42),
            "groups": .array([.string("a"), .string("b")]), "address": .object(["locality": .string("Paris")]), "gone": .null,
        ]
        let flat = JSONValue.flatten(claims)
        #expect(flat["email"] == ["a@x"])
        #expect(flat["email_verified"] == ["true"])
        #expect(flat["n"] == ["42"])
        #expect(flat["groups"] == ["a", "b"])
        #expect(flat["address.locality"] == ["Paris"])
        #expect(flat["gone"] == nil)
    }

    /// Swift compares and hashes strings in a normal form, and sorts each run of combining marks
    /// to get there, in time that grows with the square of the run: 32,000 marks in a 64 KB form
    /// took half a second to hash. Text from outside is therefore refused when it runs more than 30
    /// marks together (Unicode's "stream-safe" limit, UAX #15), which no language needs.
    @Test func longRunsOfCombiningMarksAreRefusedAtTheEdges() throws {
        let thirty = "a" + String(repeating: "\u{301}", count: 30), more = "a" + String(repeating: "\u{301}", count: 31)
        #expect(StreamSafeText.check(thirty) && !StreamSafeText.check(more))
        // Marks of different classes, and letters that decompose into marks (U+0F73), count alike;
        // a starter between them ends a run.
        #expect(!StreamSafeText.check("a" + String(repeating: "\u{301}\u{316}", count: 16)))
        #expect(!StreamSafeText.check("\u{F40}" + String(repeating: "\u{F73}", count: 31)))
        #expect(StreamSafeText.check(String(repeating: "e\u{301}", count: 1000) + "日本語 Ελληνικά עִבְרִית"))
        // Marks after eight ASCII bytes, and a run fed in pieces (as XML text nodes arrive).
        #expect(!StreamSafeText.check("abcdefgh" + more))
        var run = StreamSafeText.Run()
        let half = Array(("a" + String(repeating: "\u{301}", count: 16)).utf8), rest = Array(String(repeating: "\u{316}", count: 15).utf8)
        #expect(half.withUnsafeBufferPointer { run.feed(utf8: $0) } && !rest.withUnsafeBufferPointer { run.feed(utf8: $0) })
        // Forms and queries (names and values), and JSON (keys and strings).
        #expect(FormEncoding.decode("x=" + FormEncoding.escape(thirty)) == ["x": thirty])
        #expect(FormEncoding.decode("x=" + FormEncoding.escape(more)) == nil)
        #expect(FormEncoding.decode(FormEncoding.escape(more) + "=1") == nil)
        let rawBody = Array(("y=" + more).utf8)
        #expect(rawBody.withUnsafeBufferPointer { FormEncoding.decode(bytes: $0) } == nil)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Data("{\"k\": \"\(more)\"}".utf8)) }
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Data("{\"\(more)\": 1}".utf8)) }
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Data("[\"a\\u0301\(String(repeating: "\\u0301", count: 30))\"]".utf8)) }
        #expect(try JSONValue.parse(Data("{\"k\": \"\(thirty)\"}".utf8)) == .object(["k": .string(thirty)]))
    }

    @Test func asciiScansFindTheFirstOtherByteWhereverItIs() {
        for length in [0, 1, 7, 8, 9, 16, 23] {
            for at in 0...length {
                var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                if at < length { bytes[at] = 0xC3 }
                bytes.withUnsafeBufferPointer { b in
                    #expect(ASCIIScan.nextNonASCII(b, from: 0) == at, "\(length) \(at)")
                    #expect(ASCIIScan.isASCII(b) == (at == length))
                    if at < length { #expect(ASCIIScan.nextNonASCII(b, from: at + 1) == length) }
                }
            }
        }
    }

    @Test func serializedJSONParsesBack() throws {
        let object: [String: JSONValue] = ["s": .string("q\"\\\n\u{1}é"), "n": .number(1.5), "i": .number(3), "b": .bool(false), "a": .array([.null]), "o": .object(["k": .string("v")])]
        let text = JSONValue.serialize(object: object)
        #expect(try JSONDecoder().decode([String: JSONValue].self, from: Data(text.utf8)) == object)
        #expect(JSONValue.serialize(.string("plain é/")) == "\"plain é/\"", "a string without escapes is copied whole")
        #expect(JSONValue.serialize(.string("a\"b\\c\u{1f}d")) == #""a\"b\\c\u001fd""#)
    }

    @Test func pkceHelpers() {
        #expect(Secrets.pkceChallenge(verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        #expect(Secrets.isWellFormedPKCEVerifier(Secrets.randomToken()))
        #expect(!Secrets.isWellFormedPKCEVerifier("short"))
        #expect(!Secrets.isWellFormedPKCEVerifier(String(repeating: "a", count: 42) + " "))
        #expect(Secrets.constantTimeEquals("abc", "abc"))
        #expect(!Secrets.constantTimeEquals("abc", "abd"))
        #expect(!Secrets.constantTimeEquals("abc", "abcd"))
    }
}

@Suite struct JSONParserTests {
    @Test func parsesWhatFoundationParses() throws {
        let text = #"{"a":[1,-2.5,3e2,true,false,null],"s":"q\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00","o":{"k":{}},"e":[]}"#
        let parsed = try JSONValue.parse(Data(text.utf8))
        #expect(parsed == (try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))))
        #expect(try JSONValue.parseObject(Data(#"{"x":"é😀"}"#.utf8))["x"] == .string("é😀"))
        let numbers = #"[0,-0,-42,1800000000,123456789012345,1234567890123456789,0.5,-1e-3,2E+2]"#
        #expect(try JSONValue.parse(Data(numbers.utf8)) == (try JSONDecoder().decode(JSONValue.self, from: Data(numbers.utf8))))
    }

    @Test(arguments: [
        #"{"a":1,"a":2}"#, #"{"a":1,}"#, #"[1,]"#, #"{"a":1} x"#, #"{'a':1}"#, "{\"a\":\"\u{1}\"}", #"{"a":01}"#,
        #"{"a":1e999}"#, #"{"a":"\ud800"}"#, #"{"a":"\x"}"#, #"{"a":tru}"#, "", #"{"a""#, #"{"a":1"#, "-", #"{"a":.5}"#,
    ])
    func refusesMalformedOrAmbiguousJSON(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Data(text.utf8)) }
    }

    @Test func boundsNesting() {
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Data(deep.utf8)) }
        let ok = String(repeating: "[", count: 10) + String(repeating: "]", count: 10)
        #expect(throws: Never.self) { try JSONValue.parse(Data(ok.utf8)) }
    }
}
