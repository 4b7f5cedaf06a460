import Foundation
import Testing
import GatehouseCore
import GatehouseServer
import GatehouseTestSupport

/// The admin HTTP API over real HTTP: authentication, mappings, users and links, groups, audit.
@Suite struct AdminAPI {
    static let backends = TestDatabases.available

    func call(_ f: Federation, _ browser: TestBrowser, _ method: String, _ path: String, token: String?, body: String? = nil) async throws -> TestBrowser.Reply {
        var headers = [("Content-Type", "application/json")]
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        return try await browser.send(f.gatehouse.baseURL + "/admin/v1" + path, method: .init(rawValue: method), headers: headers, body: body, withCookies: false)
    }

    @Test(arguments: backends) func adminsManageMappingsUsersAndLinksOverHTTP(_ backend: TestDatabases.Backend) async throws {
        let f = try await Federation.start(backend)
        try await withBrowsers(1) { browsers in
            let b = browsers[0]
            let token = try await f.gatehouse.admin.createCredential(name: "ops", pool: nil)

            // Authentication.
            let anonymous = try await call(f, b, "GET", "/pools", token: nil)
            #expect(anonymous.status == 401 && anonymous.headers.first(name: "WWW-Authenticate")?.hasPrefix("Bearer") == true)
            #expect(try await call(f, b, "GET", "/pools", token: "gha_not-a-credential").status == 401)
            let pools = try await call(f, b, "GET", "/pools", token: token)
            #expect(pools.status == 200 && pools.body.contains(#""id":"acme""#))

            // Mappings: refused with the rule and position; saved; versioned; previewed; rolled back.
            let bad = try await call(f, b, "PUT", "/pools/acme/providers/TestOP/mapping", token: token, body: #"{"mapping": {"name": {"expression": "lower("}}}"#)
            #expect(bad.status == 400)
            #expect(bad.json["error"]?.stringValue == "invalid_mapping" && bad.json["rule"]?.stringValue == "name" && bad.json["position"]?.numberValue == 7)
            let saved = try await call(f, b, "PUT", "/pools/acme/providers/TestOP/mapping", token: token, body: #"{"mapping": {"email": {"expression": "lower(mail)"}}, "note": "lowercase"}"#)
            #expect(saved.status == 200 && saved.json["version"]?.numberValue == 2 && saved.json["author"]?.stringValue == "admin:ops", "\(saved.body)")
            let preview = try await call(f, b, "POST", "/pools/acme/providers/TestOP/mapping/preview", token: token, body: #"{"attributes": {"mail": "Ada@Example.com"}}"#)
            #expect(preview.status == 200 && preview.body.contains(#""email":"ada@example.com""#), "\(preview.body)")
            #expect(try await call(f, b, "POST", "/pools/acme/providers/TestOP/mapping/preview", token: token, body: #"{"id_token": "nonsense"}"#).status == 400)
            let rolled = try await call(f, b, "POST", "/pools/acme/providers/TestOP/mapping/rollback", token: token, body: #"{"version": 1}"#)
            #expect(rolled.json["version"]?.numberValue == 3)
            let versions = try await call(f, b, "GET", "/pools/acme/providers/TestOP/mapping/versions", token: token)
            #expect(versions.body.components(separatedBy: #""version":"#).count == 4)
            let linking = try await call(f, b, "PUT", "/pools/acme/providers/TestOP/linking", token: token, body: #"{"policy": "prove_existing"}"#)
            #expect(linking.status == 200 && linking.body.contains("prove_existing") && !linking.body.contains("upstream-secret"))

            // Providers and clients.
            let oidc = #"{"name": "Okta", "kind": "oidc", "oidc": {"issuer": "https://okta.example", "client_id": "gh"}, "client_secret": "s3cret", "mapping": {"email": "mail"}}"#
            let added = try await call(f, b, "POST", "/pools/acme/providers", token: token, body: oidc)
            #expect(added.status == 201 && added.body.contains("(sealed)") && !added.body.contains("s3cret"), "\(added.body)")
            // Presets: GitHub from its client ID alone; a private_key_jwt provider gets a published key.
            let github = try await call(f, b, "POST", "/pools/acme/providers", token: token, body: #"{"name": "GitHub", "kind": "oidc", "oidc": {"preset": "github", "client_id": "Iv1.x"}, "client_secret": "s3cret"}"#)
            #expect(github.status == 201 && github.body.contains("https://api.github.com/user/emails") && github.body.contains("\"preset\":\"github\""), "\(github.body)")
            let keyed = try await call(f, b, "POST", "/pools/acme/providers", token: token, body: #"{"name": "Keyed", "kind": "oidc", "oidc": {"issuer": "https://keyed.example", "client_id": "gh", "client_auth": "private_key_jwt"}}"#)
            #expect(keyed.status == 201 && !keyed.body.contains("PRIVATE KEY"), "\(keyed.body)")
            let published = try await b.send("\(f.issuer)/providers/Keyed/jwks.json")
            #expect(published.status == 200 && published.body.contains("\"kty\":\"RSA\"") && !published.body.contains("\"d\""))
            #expect(try await b.send("\(f.issuer)/providers/GitHub/jwks.json").status == 404, "a secret-authenticated provider publishes no key")
            let badPreset = try await call(f, b, "POST", "/pools/acme/providers", token: token, body: #"{"name": "Z", "kind": "oidc", "oidc": {"preset": "myspace", "client_id": "x"}}"#)
            #expect(badPreset.status == 400 && badPreset.body.contains("preset"))
            let appleWithoutKey = try await call(f, b, "POST", "/pools/acme/providers", token: token, body: #"{"name": "Apple", "kind": "oidc", "oidc": {"preset": "apple", "client_id": "com.example", "apple_team_id": "T", "apple_key_id": "K"}}"#)
            #expect(appleWithoutKey.status == 400, "\(appleWithoutKey.body)")
            let badKind = try await call(f, b, "POST", "/pools/acme/providers", token: token, body: #"{"name": "X", "kind": "ldap"}"#)
            #expect(badKind.status == 400)
            let badMapping = try await call(f, b, "POST", "/pools/acme/providers", token: token, body: #"{"name": "Y", "kind": "oidc", "oidc": {"issuer": "https://y.example", "client_id": "gh"}, "client_secret": "s", "mapping": {"name": {"expression": "lower("}}}"#)
            #expect(badMapping.status == 400 && badMapping.json["error"]?.stringValue == "invalid_mapping")
            #expect(try await call(f, b, "GET", "/pools/acme/providers/Y/mapping", token: token).status == 404, "nothing half made")
            #expect(try await call(f, b, "DELETE", "/pools/acme/providers/Okta", token: token).status == 204)
            #expect(try await call(f, b, "DELETE", "/pools/acme/providers/Okta", token: token).status == 404)
            let client = try await call(f, b, "POST", "/pools/acme/clients", token: token, body: #"{"name": "api-made", "redirect_uris": ["https://app.example/cb"]}"#)
            #expect(client.status == 201 && client.json["clientSecret"]?.stringValue != nil, "\(client.body)")
            let listedClients = try await call(f, b, "GET", "/pools/acme/clients", token: token)
            #expect(listedClients.status == 200 && listedClients.body.contains("(hashed)"))
            let storedHashes = try await f.directory.listClients(pool: try PoolID("acme")).compactMap(\.secretHash)
            #expect(!storedHashes.isEmpty && storedHashes.allSatisfy { !listedClients.body.contains($0) && !client.body.contains($0) }, "no secret hash leaves the server")
            let clientID = try #require(client.body.range(of: #""clientID":"[^"]+""#, options: .regularExpression).map { String(client.body[$0].dropFirst(12).dropLast()) })
            #expect(try await call(f, b, "DELETE", "/pools/acme/clients/\(clientID)", token: token).status == 204)

            // Users and links.
            let created = try await call(f, b, "POST", "/pools/acme/users", token: token, body: #"{"provider": "TestOP", "subject": "ada", "attributes": {"email": "Ada@Example.com"}}"#)
            #expect(created.status == 201, "\(created.body)")
            let id = try #require(created.json["id"]?.stringValue)
            let byEmail = try await call(f, b, "GET", "/pools/acme/users?email=ADA%40example.com", token: token)
            #expect(byEmail.body.contains(id))
            let byIdentity = try await call(f, b, "GET", "/pools/acme/users?provider=TestOP&subject=ada", token: token)
            #expect(byIdentity.body.contains(id))
            let link = try await call(f, b, "POST", "/pools/acme/users/\(id)/links", token: token, body: #"{"provider": "TestOP", "subject": "ada-second", "issuer": "https://other.example"}"#)
            #expect(link.status == 200 && link.json["linked"] == .bool(true))
            let shown = try await call(f, b, "GET", "/pools/acme/users/\(id)", token: token)
            #expect(shown.body.components(separatedBy: #""upstreamSubject""#).count == 3)
            #expect(try await call(f, b, "DELETE", "/pools/acme/links?provider=TestOP&subject=ada-second&issuer=https%3A%2F%2Fother.example", token: token).status == 204)
            let last = try await call(f, b, "DELETE", "/pools/acme/links?provider=TestOP&subject=ada", token: token)
            #expect(last.status == 409 && last.json["error"]?.stringValue == "conflict")
            #expect(try await call(f, b, "GET", "/pools/acme/users/nobody", token: token).status == 404)
            #expect(try await call(f, b, "POST", "/pools/acme/groups", token: token, body: #"{"name": "staff"}"#).status == 201)
            #expect(try await call(f, b, "POST", "/pools/acme/groups/staff/members", token: token, body: "{\"user\": \"\(id)\"}").status == 204)
            #expect(try await call(f, b, "POST", "/pools/acme/users/\(id)/disable", token: token).status == 204)
            #expect(try await call(f, b, "POST", "/pools/acme/users", token: token, body: "not json").status == 400)

            // The audit log as JSON lines, every entry by this credential.
            let audit = try await call(f, b, "GET", "/pools/acme/audit?format=jsonl&limit=1000", token: token)
            let lines = audit.body.split(separator: "\n").filter { $0.contains(#""actor":"admin:ops""#) }
            let actions = ["provider.created", "provider.deleted", "client.created", "client.deleted", "mapping.saved", "provider.linking", "user.created", "link.created", "link.removed", "group.created", "group.member_added", "user.disabled"]
            for action in actions { #expect(lines.contains { $0.contains(#""action":"\#(action)""#) }, "\(action)") }

            // A credential limited to another pool, and a revoked one.
            _ = try await f.gatehouse.admin.createPool(name: "other", displayName: nil)
            let limited = try await f.gatehouse.admin.createCredential(name: "other-ops", pool: "other")
            #expect(try await call(f, b, "GET", "/pools/acme/users", token: limited).status == 403)
            #expect(try await call(f, b, "GET", "/pools/other/users", token: limited).status == 200)
            #expect(try await call(f, b, "GET", "/pools", token: limited).body.contains("acme") == false)
            try await f.gatehouse.admin.revokeCredential(name: "ops")
            #expect(try await call(f, b, "GET", "/pools", token: token).status == 401)
            await #expect(throws: DirectoryError.self) { try await f.gatehouse.admin.revokeCredential(name: "ops") }

            // Credential changes are admin changes too: a pool's log shows every credential that
            // can act on it (its own and the global ones), never their secrets.
            let otherLog = try await f.directory.auditEntries(pool: try PoolID("other"), after: nil, action: nil, limit: 1000)
            #expect(otherLog.contains { $0.action == "admin_credential.created" && $0.target == "credential:other-ops" && $0.after == .object(["pool": .string("other")]) })
            #expect(otherLog.contains { $0.action == "admin_credential.revoked" && $0.target == "credential:ops" && $0.actor == "cli" })
            let acmeLog = try await f.directory.auditEntries(pool: try PoolID("acme"), after: nil, action: nil, limit: 1000)
            #expect(acmeLog.contains { $0.action == "admin_credential.revoked" && $0.target == "credential:ops" })
            #expect(!acmeLog.contains { $0.target == "credential:other-ops" }, "a credential of another pool is not in this pool's log")
            // A pool made while a global credential exists names it in its creation entry.
            #expect(otherLog.contains { entry in
                guard entry.action == "pool.created", case .object(let after)? = entry.after else { return false }
                return after["admin_credentials"] == .array([.string("ops")])
            })
            #expect(!(acmeLog + otherLog).contains { entry in [token, limited].contains { "\(entry)".contains($0) } })
        }
        await f.stop()
    }
}
