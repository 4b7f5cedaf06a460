import Foundation
import Testing
@testable import GatehouseCore
@testable import GatehouseSAML

/// The fixture corpus (made by Fixtures/make-fixtures.py with the xmlsec1 and openssl CLIs, for a
/// frozen clock): every valid response verifies, every attack fails on the check the manifest names.
enum Corpus {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    struct Entry: Sendable, CustomTestStringConvertible {
        let name: String
        let expect: String
        let options: [String: String]
        /// Present and null in the manifest: an IdP-initiated response, no request pending.
        let unsolicited: Bool
        var testDescription: String { name }
    }

    nonisolated(unsafe) static let manifest: [String: Any] = {
        let data = try! Data(contentsOf: directory.appendingPathComponent("manifest.json"))
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }()

    static var settings: [String: String] { manifest["settings"] as! [String: String] }

    static let entries: [Entry] = {
        let responses = manifest["responses"] as! [String: [String: Any]]
        return responses.keys.sorted().map { name in
            let raw = responses[name]!
            var options: [String: String] = [:]
            for (k, v) in raw { if let s = v as? String { options[k] = s } }
            return Entry(name: name, expect: options["expect"]!, options: options, unsolicited: raw["request_id"] is NSNull)
        }
    }()

    static func certificate(_ name: String) throws -> SAMLCertificate {
        try SAMLCertificate(base64OrPEM: String(contentsOf: directory.appendingPathComponent(name + ".crt"), encoding: .utf8))
    }

    static func spCredential() throws -> SAMLSigningCredential {
        try SAMLSigningCredential(
            privateKeyPEM: String(contentsOf: directory.appendingPathComponent("sp.key"), encoding: .utf8),
            certificatePEM: String(contentsOf: directory.appendingPathComponent("sp.crt"), encoding: .utf8))
    }

    static func response(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: directory.appendingPathComponent("responses/\(name).xml")))
    }

    static var now: Date { SAMLTime.parse(settings["now"]!)! }

    static func policy(requestID: String?, signatures: SAMLSignatureRequirement = .assertion) -> SAMLResponsePolicy {
        SAMLResponsePolicy(
            spEntityID: settings["sp_entity_id"]!, acsURL: settings["acs_url"]!, idpEntityID: settings["idp_entity_id"]!,
            expectedRequestID: requestID, clockSkew: 60, signatures: signatures)
    }
}

@Suite struct ResponseCorpusTests {
    @Test(arguments: Corpus.entries)
    func eachResponseMeetsItsExpectation(_ entry: Corpus.Entry) throws {
        let key = entry.options["key"] ?? "idp-rsa"
        let decryption = entry.options["decrypt"] == nil ? nil : try Corpus.spCredential()
        let verifier = try SAMLResponseVerifier(signingCertificates: [try Corpus.certificate(key)], decryptionKey: decryption)
        let policy = Corpus.policy(
            requestID: entry.unsolicited ? nil : Corpus.settings["request_id"],
            signatures: entry.options["require"].flatMap(SAMLSignatureRequirement.init(rawValue:)) ?? .assertion)
        let xml = try Corpus.response(entry.name)
        if entry.expect == "valid" {
            let verified = try verifier.verify(xml: xml, policy: policy, now: Corpus.now)
            #expect(verified.nameID == (entry.options["name_id"] ?? "alice@corp.example.test"))
            #expect(verified.issuer == Corpus.settings["idp_entity_id"])
            #expect(verified.wasEncrypted == (decryption != nil))
        } else {
            let error = #expect(throws: VerificationError.self) { try verifier.verify(xml: xml, policy: policy, now: Corpus.now) }
            let checks = error?.failures.map(\.check) ?? []
            #expect(checks.contains(entry.expect), "\(entry.name): expected a failed \(entry.expect) check, got \(error?.description ?? "success")")
        }
    }

    @Test func aValidResponseYieldsEverySignedValue() throws {
        let verifier = try SAMLResponseVerifier(signingCertificates: [try Corpus.certificate("idp-rsa")])
        let verified = try verifier.verify(
            xml: try Corpus.response("valid-both-signed-rsa"), policy: Corpus.policy(requestID: Corpus.settings["request_id"], signatures: .both),
            now: Corpus.now)
        #expect(verified.signedAssertion && verified.signedResponse)
        #expect(verified.nameIDFormat == "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress")
        #expect(verified.sessionIndex == "_s9f8e7d6c5b4a39281706f5e4d3c2b1a0")
        #expect(verified.authnInstant == SAMLTime.parse("2026-11-22T09:59:57Z"))
        #expect(verified.authnContextClassRef == "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport")
        #expect(verified.replayableUntil == SAMLTime.parse("2026-11-22T10:05:00Z"))
        #expect(verified.inResponseTo == Corpus.settings["request_id"])
        let values = verified.attributeValues
        #expect(values["groups"] == ["engineering", "admins"])
        #expect(values["givenName"] == ["Zoë"])
        #expect(values["urn:oid:2.5.4.42"] == ["Zoë"])
        #expect(values["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"] == ["alice@corp.example.test"])
    }

    @Test func theSameResponseFailsOnceTheClockPassesItsWindowOrSkew() throws {
        let verifier = try SAMLResponseVerifier(signingCertificates: [try Corpus.certificate("idp-rsa")])
        let xml = try Corpus.response("valid-assertion-signed-rsa")
        var policy = Corpus.policy(requestID: Corpus.settings["request_id"])
        // NotOnOrAfter is 10:05:00; with 60 s of skew it holds until 10:06:00 and no later.
        _ = try verifier.verify(xml: xml, policy: policy, now: Corpus.now.addingTimeInterval(359))
        #expect(throws: VerificationError.self) { try verifier.verify(xml: xml, policy: policy, now: Corpus.now.addingTimeInterval(360)) }
        policy.clockSkew = 0
        #expect(throws: VerificationError.self) { try verifier.verify(xml: xml, policy: policy, now: Corpus.now.addingTimeInterval(300)) }
        // However long NotOnOrAfter, a response issued more than ten minutes (plus skew) ago is refused.
        policy.clockSkew = 600
        #expect(throws: VerificationError.self) { try verifier.verify(xml: xml, policy: policy, now: Corpus.now.addingTimeInterval(1_300)) }
        // NotBefore is 09:59:00: a clock two minutes slow with one minute of skew is too early.
        policy.clockSkew = 60
        #expect(throws: VerificationError.self) { try verifier.verify(xml: xml, policy: policy, now: Corpus.now.addingTimeInterval(-121)) }
    }

    @Test func anUnreadableTimeIsAFailureNotAnOmission() throws {
        // The policy alone (the signature half is what the corpus covers): a SessionNotOnOrAfter
        // that is not a SAML time must fail, not be skipped.
        let xml = String(decoding: try Corpus.response("valid-assertion-signed-rsa"), as: UTF8.self)
            .replacingOccurrences(of: "SessionNotOnOrAfter=\"2026-11-22T18:00:00Z\"", with: "SessionNotOnOrAfter=\"tomorrow\"")
        let tree = try XMLTree.parse(Array(xml.utf8))
        let (response, assertion) = try SAMLResponseVerifier.checkStructure(tree, decrypted: false)
        let error = #expect(throws: VerificationError.self) {
            try SAMLResponseVerifier.evaluate(response: response, assertion: assertion, policy: Corpus.policy(requestID: Corpus.settings["request_id"]),
                                              now: Corpus.now, signedResponse: false, signedAssertion: true, encrypted: false)
        }
        #expect(error?.failures.contains { $0.check == "time" && $0.reason.contains("SessionNotOnOrAfter") } == true)
    }

    @Test func rolloverTriesEveryPinnedKeyAndKeyInfoIsNeverTrusted() throws {
        let both = try SAMLResponseVerifier(signingCertificates: [try Corpus.certificate("idp-ec"), try Corpus.certificate("idp-rsa")])
        let policy = Corpus.policy(requestID: Corpus.settings["request_id"])
        _ = try both.verify(xml: try Corpus.response("valid-assertion-signed-rsa"), policy: policy, now: Corpus.now)
        _ = try both.verify(xml: try Corpus.response("valid-assertion-signed-ecdsa"), policy: policy, now: Corpus.now)
        // The attacker's own certificate is in KeyInfo; only pinned keys count.
        let attackerPinned = try SAMLResponseVerifier(signingCertificates: [try Corpus.certificate("attacker")])
        _ = try attackerPinned.verify(xml: try Corpus.response("keyinfo-certificate-faked"), policy: policy, now: Corpus.now)
        #expect(throws: VerificationError.self) {
            try attackerPinned.verify(xml: try Corpus.response("valid-assertion-signed-rsa"), policy: policy, now: Corpus.now)
        }
    }

    @Test func formValuesAreSizeLimitedBeforeDecoding() throws {
        let verifier = try SAMLResponseVerifier(signingCertificates: [try Corpus.certificate("idp-rsa")])
        let policy = Corpus.policy(requestID: Corpus.settings["request_id"])
        let encoded = try String(contentsOf: Corpus.directory.appendingPathComponent("valid-assertion-signed-rsa.b64"), encoding: .utf8)
        // Line breaks, as some IdPs send, are accepted.
        var wrapped = ""
        for (i, c) in encoded.enumerated() { wrapped.append(c); if i % 76 == 75 { wrapped.append("\r\n") } }
        _ = try verifier.verify(formValue: wrapped, policy: policy, now: Corpus.now)
        let huge = String(repeating: "A", count: SAMLResponseVerifier.maximumEncodedSize + 4)
        let error = #expect(throws: VerificationError.self) { try verifier.verify(formValue: huge, policy: policy, now: Corpus.now) }
        #expect(error?.failures.first?.check == "size")
        #expect(throws: VerificationError.self) { try verifier.verify(formValue: "%%%not base64", policy: policy, now: Corpus.now) }
    }

    @Test func concurrentVerificationsGiveTheSameAnswers() async throws {
        let verifier = try SAMLResponseVerifier(signingCertificates: [try Corpus.certificate("idp-rsa")])
        let policy = Corpus.policy(requestID: Corpus.settings["request_id"])
        let good = try Corpus.response("valid-assertion-signed-rsa")
        let bad = try Corpus.response("xsw3")
        let outcomes = await withTaskGroup(of: (Bool, Bool).self) { group in
            for i in 0..<64 {
                group.addTask {
                    let isGood = i % 2 == 0
                    let ok = (try? verifier.verify(xml: isGood ? good : bad, policy: policy, now: Corpus.now)) != nil
                    return (isGood, ok)
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.count == 64)
        #expect(outcomes.allSatisfy { $0.0 == $0.1 })
    }
}

@Suite struct XMLParsingTests {
    @Test func theStructLayoutMatchesWhatTheCCompilerSeesWithThePkgConfigFlags() throws {
        // A missing XMLSEC_NO_SIZE_T gives Swift another layout than the library's, silently.
        let source = FileManager.default.temporaryDirectory.appendingPathComponent("layout-\(UUID().uuidString).c")
        let binary = source.deletingPathExtension()
        try #"""
        #include <stdio.h>
        #include <xmlsec/xmlsec.h>
        #include <xmlsec/xmldsig.h>
        #include <xmlsec/xmlenc.h>
        int main(void) { printf("%d %d", (int)sizeof(xmlSecDSigCtx), (int)sizeof(xmlSecEncCtx)); return 0; }
        """#.write(to: source, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: source); try? FileManager.default.removeItem(at: binary) }
        let compile = Process()
        compile.executableURL = URL(fileURLWithPath: "/bin/sh")
        compile.arguments = ["-c", "cc $(pkg-config --cflags xmlsec1-openssl) -o '\(binary.path)' '\(source.path)'"]
        try compile.run()
        compile.waitUntilExit()
        try #require(compile.terminationStatus == 0, "cc could not build the layout probe")
        let run = Process()
        run.executableURL = binary
        let pipe = Pipe()
        run.standardOutput = pipe
        try run.run()
        run.waitUntilExit()
        let printed = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(printed == "\(XMLSecLayout.dsigContextSize) \(XMLSecLayout.encryptionContextSize)")
    }

    @Test func declarationsAreFoundInAnyCase() {
        #expect(XMLTree.containsDeclaration(Array("<a/><!doctype x>".utf8)))
        #expect(XMLTree.containsDeclaration(Array("<!EnTiTy".utf8)))
        #expect(!XMLTree.containsDeclaration(Array("<a><!-- doctype --><![CDATA[x]]></a>".utf8)))
        // At the very end, after many other tags, cut short, and nothing at all.
        #expect(XMLTree.containsDeclaration(Array((String(repeating: "<a><!-- x -->", count: 200) + "<!DOCTYPE").utf8)))
        #expect(!XMLTree.containsDeclaration(Array("<a><!DOCTYP".utf8)))
        #expect(!XMLTree.containsDeclaration(Array("<a><!".utf8)))
        #expect(!XMLTree.containsDeclaration([]))
    }

    /// IDs and other values are compared and hashed as Swift strings before any signature is
    /// checked, in time growing with the square of a run of combining marks: a document holding a
    /// run longer than Unicode's stream-safe 30, written raw or as character references, anywhere
    /// in its text or attributes, is refused when parsed.
    @Test func longRunsOfCombiningMarksAreRefusedWherever() throws {
        let refs31 = String(repeating: "&#x301;", count: 31), refs30 = String(repeating: "&#x301;", count: 30)
        let raw31 = String(repeating: "\u{301}", count: 31)
        let refused = [
            "<a ID=\"x\(refs31)\"/>", "<a><b><c>x\(raw31)</c></b></a>", "<a><b><c/></b><d>x\(refs31)</d></a>",
            "<a><b><c/></b><d><![CDATA[x\(raw31)]]></d></a>", "<a><b x=\"1\"/><b y=\"e\(raw31)\"/></a>",
            // Text read as one value although comments split it; names and namespace names.
            "<a>x<!---->\(String(repeating: "&#x301;", count: 20))<!---->\(String(repeating: "&#x301;", count: 20))</a>",
            "<a\(raw31)/>", "<a><b x\(raw31)=\"1\"/></a>", "<a xmlns:p=\"urn:x\(raw31)\"/>",
        ]
        for document in refused {
            #expect(throws: VerificationError.self, "\(document.prefix(30))") { try XMLTree.parse(Array(document.utf8)) }
        }
        // The walk is skipped only when no mark can be there: no character from U+0300 up and no
        // character reference.
        #expect(!XMLTree.mightHoldMarks(Array("<a b=\"é ü &amp; &lt;\">ascii &gt; text ÿ</a>".utf8)))
        for marked in ["<a>\u{300}</a>", "<a>&#65;</a>", "<a>\u{2028}</a>", "<a>😀</a>", "<a b=\"&#x301;\"/>"] {
            #expect(XMLTree.mightHoldMarks(Array(marked.utf8)), "\(marked)")
        }
        for document in ["<a ID=\"x\(refs30)\"/>", "<a><b><c/></b><d>x\(refs30)</d><!-- \(raw31) --></a>"] {
            #expect(throws: Never.self, "\(document.prefix(30))") { try XMLTree.parse(Array(document.utf8)) }
        }
    }

    @Test func everyDocumentIsReadAsUTF8WhateverItDeclares() throws {
        // Latin-1 "é" is the byte E9, which is not UTF-8: ill-formed, though the document says Latin-1.
        let latin1 = Array("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>".utf8) + [0xE9] + Array("</a>".utf8)
        #expect(throws: VerificationError.self) { try XMLTree.parse(latin1) }
        let tree = try XMLTree.parse(Array("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>é</a>".utf8))
        #expect(try tree.root?.text() == "é")
    }

    @Test func samlTimesAreUTCOnly() {
        #expect(SAMLTime.parse("2026-11-22T10:00:00Z") == Date(timeIntervalSince1970: 1_795_341_600))
        #expect(SAMLTime.parse("2026-11-22T10:00:00.250Z") == Date(timeIntervalSince1970: 1_795_341_600.25))
        #expect(SAMLTime.parse("2024-02-29T00:00:00Z") != nil)
        // format is parse's inverse, across leap days and the epoch.
        for text in ["2026-11-22T10:00:00Z", "2024-02-29T23:59:59Z", "2000-03-01T00:00:00Z", "1970-01-01T00:00:00Z", "2099-12-31T12:34:56Z"] {
            #expect(SAMLTime.format(SAMLTime.parse(text)!) == text)
        }
        #expect(SAMLTime.format(Date(timeIntervalSince1970: 1_795_341_600.75)) == "2026-11-22T10:00:00Z")
        for bad in ["2026-11-22T10:00:00", "2026-11-22T10:00:00+01:00", "2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z",
                    "2026-11-22 10:00:00Z", "2026-13-01T00:00:00Z", "2026-11-22T24:00:00Z", "2026-11-22T10:00:00.Z", ""] {
            #expect(SAMLTime.parse(bad) == nil, "\(bad)")
        }
    }
}
