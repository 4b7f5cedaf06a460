import Foundation
import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import GatehouseCore
import GatehouseSAML
import GatehouseDirectory
import GatehouseServer
import GatehouseTestSupport

enum SAMLBenchmark {
    static let idpEntityID = "https://idp.bench.example/saml"
    static let spEntityID = "https://gatehouse.bench.example/bench/saml2/sp/Corp"
    static let acsURL = "https://gatehouse.bench.example/bench/saml2/acs/Corp"

    static func factory() throws -> SAMLResponseFactory {
        let (key, certificate) = try SAMLSigningCredential.generate(commonName: "idp.bench.example")
        return SAMLResponseFactory(
            idp: try SAMLSigningCredential(privateKeyPEM: key, certificatePEM: certificate), idpEntityID: idpEntityID,
            spEntityID: spEntityID, acsURL: acsURL, attributeCount: 20)
    }

    /// Full validation of a typical signed response beside libxmlsec1's bare check of the same bytes.
    static func validation() async throws {
        let f = try factory()
        let now = Date()
        let xml = Array(try f.response(nameID: "ada@example.com", requestID: "_req1", now: now).utf8)
        let verifier = try SAMLResponseVerifier(signingCertificates: [f.idp.certificate])
        let policy = SAMLResponsePolicy(spEntityID: spEntityID, acsURL: acsURL, idpEntityID: idpEntityID, expectedRequestID: "_req1")
        let bare = try BareSignatureVerifier(certificate: f.idp.certificate)
        print("SAML response: \(xml.count) bytes, Assertion signed with RSA-SHA256, \(f.attributeCount + 1) attributes")
        try await Benchmark.measure("validate SAML response, full (parse..attributes)") { _ = try verifier.verify(xml: xml, policy: policy, now: now) }
        try await Benchmark.measure("  bare libxmlsec1 check, same document") { try bare.verify(xml) }
    }

    /// A million verifications on two tasks; resident memory before and after.
    static func memory(count: Int = 1_000_000) async throws {
        let f = try factory()
        let now = Date()
        let xml = Array(try f.response(nameID: "ada@example.com", requestID: "_req1", now: now).utf8)
        let verifier = try SAMLResponseVerifier(signingCertificates: [f.idp.certificate])
        let policy = SAMLResponsePolicy(spEntityID: spEntityID, acsURL: acsURL, idpEntityID: idpEntityID, expectedRequestID: "_req1")
        for _ in 0..<10_000 { _ = try verifier.verify(xml: xml, policy: policy, now: now) }
        let before = residentKB()
        let clock = ContinuousClock()
        let start = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<2 {
                group.addTask { for _ in 0..<(count / 2) { _ = try verifier.verify(xml: xml, policy: policy, now: now) } }
            }
            try await group.waitForAll()
        }
        let after = residentKB()
        let elapsed = clock.now - start
        print(String(format: "%d full validations on 2 tasks in %.0f s: resident memory %d KB before, %d KB after (%+d KB)",
                     count, Double(elapsed.components.seconds), before, after, after - before))
    }

    static func residentKB() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
            let pages = text.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
        else { return -1 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE))) / 1024
    }

    /// Complete SAML logins over HTTP on SQLite: ACS POST -> code -> token, 8 in flight. Each login's
    /// transaction (authorize) and its signed response are made beforehand, outside the timing.
    static func login(total: Int = Int(ProcessInfo.processInfo.environment["GATEHOUSE_BENCH_LOGINS"] ?? "") ?? 2000) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-bench-\(UUID().uuidString)")
        let directory = try await DirectoryFactory.sqlite(path: folder.appendingPathComponent("saml.sqlite").path)
        try await directory.migrate()
        let running = try await RunningGatehouse.start(directory: directory)
        try await running.admin.createPool(name: "bench", displayName: nil)
        let redirect = "http://127.0.0.1:9/cb"
        let (client, secret) = try await running.admin.createClient(pool: "bench", name: "web", redirectURIs: [redirect], confidential: true)
        let (key, certificate) = try SAMLSigningCredential.generate(commonName: "idp.bench.example")
        let idp = try SAMLSigningCredential(privateKeyPEM: key, certificatePEM: certificate)
        let provisional = SAMLResponseFactory(idp: idp, idpEntityID: idpEntityID, spEntityID: "", acsURL: "")
        let provider = try await running.admin.createSAMLProvider(
            pool: "bench", name: "Corp", metadataXML: provisional.metadata(ssoURL: "https://idp.bench.example/sso"),
            mapping: AttributeMapping(["email": "email"]))
        let f = SAMLResponseFactory(idp: idp, idpEntityID: idpEntityID, spEntityID: provider.saml!.spEntityID, acsURL: provider.saml!.acsURL)
        let issuer = running.baseURL + "/bench"
        var config = HTTPClient.Configuration()
        config.redirectConfiguration = .disallow
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)

        struct Prepared: Sendable { let cookie: String; let form: String }
        func prepare(_ i: Int) async throws -> Prepared {
            let q = FormEncoding.encode([("response_type", "code"), ("client_id", client.clientID), ("redirect_uri", redirect), ("scope", "openid email"), ("state", "s"), ("identity_provider", "Corp")])
            let response = try await http.execute(HTTPClientRequest(url: issuer + "/oauth2/authorize?" + q), timeout: .seconds(10))
            _ = try await response.body.collect(upTo: 1 << 20)
            let location = try requireValue(response.headers.first(name: "Location"))
            let cookie = try requireValue(response.headers.first(name: "Set-Cookie")).split(separator: ";")[0]
            let params = try requireValue(FormEncoding.decode(try requireValue(URLComponents(string: location)?.percentEncodedQuery)))
            let deflated = try requireValue(Data(base64Encoded: try requireValue(params["SAMLRequest"])))
            let request = String(decoding: try requireValue(RawDeflate.decompress(Array(deflated), limit: 1 << 20)), as: UTF8.self)
            let id = try requireValue(request.range(of: "ID=\"").map { request[$0.upperBound...].prefix { $0 != "\"" } })
            let signed = try f.response(nameID: "user\(i)@example.com", requestID: String(id), now: Date())
            let form = FormEncoding.encode([("SAMLResponse", Data(signed.utf8).base64EncodedString()), ("RelayState", try requireValue(params["RelayState"]))])
            return Prepared(cookie: String(cookie), form: form)
        }
        @Sendable func complete(_ p: Prepared) async throws {
            var acs = HTTPClientRequest(url: provider.saml!.acsURL)
            acs.method = .POST
            acs.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            acs.headers.add(name: "Cookie", value: p.cookie)
            acs.body = .bytes(ByteBuffer(string: p.form))
            let back = try await http.execute(acs, timeout: .seconds(10))
            _ = try await back.body.collect(upTo: 1 << 20)
            let location = try requireValue(back.headers.first(name: "Location"))
            let code = try requireValue(FormEncoding.decode(try requireValue(URLComponents(string: location)?.percentEncodedQuery))?["code"])
            try await redeem(http, issuer: issuer, clientID: client.clientID, secret: secret!, code: code, redirectURI: redirect)
        }

        for i in 0..<20 { try await complete(try await prepare(-1 - i)) }
        var prepared: [Prepared] = []
        for i in 0..<total { prepared.append(try await prepare(i)) }
        let clock = ContinuousClock()
        let start = clock.now
        let concurrency = 8
        let work = prepared
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<concurrency {
                group.addTask { for i in stride(from: worker, to: work.count, by: concurrency) { try await complete(work[i]) } }
            }
            try await group.waitForAll()
        }
        let elapsed = clock.now - start
        let s = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print(String(format: "%-52@ %10.0f /s   (whole machine, %d in flight)", "SAML logins over HTTP, ACS -> code -> token (SQLite)" as NSString, Double(total) / s, concurrency))
        try await http.shutdown()
        await running.stop()
        try await directory.shutdown()
        try? FileManager.default.removeItem(at: folder)
    }
}
