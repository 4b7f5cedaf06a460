import Foundation
import Testing
import GatehouseCore
import GatehouseJOSE
import GatehouseMapping
import GatehouseServer
import GatehouseTestSupport

/// Attribute mappings through the real path: an admin saves an expression mapping, a user signs in
/// over HTTP through the loopback OpenID provider, and the tokens carry what the mapping made.
@Suite struct MappingEndToEnd {
    static let backends = TestDatabases.available

    static let mappingJSON = #"""
        {
          "email": {"expression": "email | trim | lower"},
          "email_verified": "email_verified",
          "name": {"expression": "\"{{given_name}} {{family_name}}\"", "update": "first_login"},
          "locale": {"expression": "lower(address.country)"},
          "custom:level": "level",
          "groups": {"expression": "map(roles, {\"okta-admins\": \"admins\", \"okta-staff\": \"staff\", \"okta-ghosts\": \"ghosts\"})"}
        }
        """#

    func tokens(_ f: Federation, _ browser: TestBrowser) async throws -> [String: JSONValue] {
        let (back, _) = try await f.login(browser)
        let code = try #require(back.locationQuery["code"], "\(back.status) \(back.location ?? "")")
        let reply = try await f.redeem(browser, code: code)
        return try UnverifiedJWS(compact: try #require(reply.json["id_token"]?.stringValue)).claims
    }

    @Test(arguments: backends) func anExpressionMappingShapesTheUserAndItsGroups(_ backend: TestDatabases.Backend) async throws {
        let f = try await Federation.start(backend)
        try await withBrowsers(1) { browsers in
            let browser = browsers[0]
            let admin = f.gatehouse.admin
            _ = try await admin.declareCustomAttribute(pool: f.pool, CustomAttribute(name: "custom:level", type: .number))
            for g in ["admins", "staff"] { try await f.directory.createGroup(Group(poolID: try PoolID(f.pool), name: g)) }
            let mapping = try AttributeMapping(document: try JSONValue.parse(Data(Self.mappingJSON.utf8)))
            let saved = try await admin.setMapping(pool: f.pool, provider: f.providerName, mapping: mapping, note: "expressions")
            #expect(saved.version == 2 && saved.author == "cli")

            f.upstream.update {
                $0.claims["email"] = .string(" Ada@Example.COM ")
                $0.claims["level"] = .string("3")
                $0.claims["roles"] = .array([.string("okta-admins"), .string("okta-staff"), .string("okta-other")])
                $0.claims["address"] = .object(["country": .string("UK")])
            }
            let first = try await tokens(f, browser)
            #expect(first["email"]?.stringValue == "ada@example.com")
            #expect(first["name"]?.stringValue == "Ada Lovelace")
            #expect(first["locale"]?.stringValue == "uk")
            #expect(first["custom:level"]?.stringValue == "3")
            #expect(first["groups"] == .array([.string("admins"), .string("staff")]))

            // Upstream changes: the name was imported once and stays; groups follow every login.
            f.upstream.update {
                $0.claims["given_name"] = .string("Augusta")
                $0.claims["roles"] = .array([.string("okta-staff")])
                $0.claims["level"] = .string("not a number")
            }
            let second = try await tokens(f, browser)
            #expect(second["name"]?.stringValue == "Ada Lovelace")
            #expect(second["groups"] == .array([.string("staff")]))
            #expect(second["custom:level"]?.stringValue == "3", "a value of the wrong type leaves the attribute as it was")

            // Preview over the kept logins: newest first, redacted, with every rule explained.
            let previews = try await admin.previewMapping(pool: f.pool, provider: f.providerName, input: .recentLogins(5))
            #expect(previews.count == 2)
            let newest = try #require(previews.first)
            #expect(newest.attributes["email"] == "xxx@example.com", "the kept email is masked but keeps its domain")
            #expect(newest.initialAttributes["name"] == "xxxxxxx xxxxxxxx")
            #expect(newest.groups == ["staff"])
            let level = try #require(newest.rules.first { $0.target == "custom:level" })
            #expect(level.failure == "not a number" && level.output.isEmpty)
            #expect(newest.rules.first { $0.target == "groups" }?.inputs["roles"] == ["okta-staff"], "group names are kept as sent")
            // A draft mapping previews without being saved; unknown groups are reported.
            let draft = try AttributeMapping(document: try JSONValue.parse(Data(#"{"groups": {"expression": "[\"staff\", \"ghosts\"]"}}"#.utf8)))
            let tried = try await admin.previewMapping(pool: f.pool, provider: f.providerName, mapping: draft, input: .attributes([:]))
            #expect(tried.first?.groups == ["staff"] && tried.first?.unknownGroups == ["ghosts"])
            #expect(try await f.directory.provider(pool: try PoolID(f.pool), name: f.providerName)?.attributeMapping == mapping)

            // Versions and rollback.
            let rolled = try await admin.rollbackMapping(pool: f.pool, provider: f.providerName, to: 1)
            #expect(rolled.version == 3 && rolled.note == "rollback to version 1")
            #expect(try await admin.mappingVersions(pool: f.pool, provider: f.providerName).map(\.version) == [3, 2, 1])
            #expect(try await f.directory.provider(pool: try PoolID(f.pool), name: f.providerName)?.attributeMapping == .oidcStandard)
        }
        await f.stop()
    }

    @Test func anInvalidMappingIsRefusedWithTheRuleAndPosition() async throws {
        let f = try await Federation.start(.sqlite)
        let admin = f.gatehouse.admin
        let broken = AttributeMapping(rules: [.init(target: "name", source: .expression("first(given_name, family_name"))])
        await #expect { try await admin.setMapping(pool: f.pool, provider: f.providerName, mapping: broken) } throws: { error in
            guard let e = error as? MappingError else { return false }
            return e.target == "name" && e.position == 30 && e.reason.contains("expected ')'")
        }
        let undeclared = AttributeMapping(["custom:dept": "department"])
        await #expect(throws: MappingError.self) { try await admin.setMapping(pool: f.pool, provider: f.providerName, mapping: undeclared) }
        #expect(try await admin.mappingVersions(pool: f.pool, provider: f.providerName).count == 1, "nothing was saved")
        await f.stop()
    }

    @Test func capturedTokensAndResponsesPreviewWithoutVerification() async throws {
        let f = try await Federation.start(.sqlite)
        let admin = f.gatehouse.admin
        // An expired token from the provider: a preview reads it anyway, and changes nothing.
        let token = try f.upstream.sign(claims: ["sub": .string("s"), "email": .string("Grace@Example.com"), "exp": .number(1), "given_name": .string("Grace")])
        let fromToken = try await admin.previewMapping(pool: f.pool, provider: f.providerName, input: .idToken(token))
        #expect(fromToken.first?.attributes["email"] == "Grace@Example.com")
        #expect(fromToken.first?.attributes["given_name"] == "Grace")
        let response = """
            <samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r" Version="2.0">
            <saml:Assertion ID="_a" Version="2.0"><saml:Subject><saml:NameID>grace</saml:NameID></saml:Subject>
            <saml:AttributeStatement><saml:Attribute Name="urn:oid:0.9.2342.19200300.100.1.3" FriendlyName="email"><saml:AttributeValue>grace@corp.example</saml:AttributeValue></saml:Attribute></saml:AttributeStatement>
            </saml:Assertion></samlp:Response>
            """
        let fromSAML = try await admin.previewMapping(pool: f.pool, provider: f.providerName, input: .samlResponse(Data(response.utf8).base64EncodedString()))
        #expect(fromSAML.first?.attributes["email"] == "grace@corp.example")
        await #expect(throws: (any Error).self) { try await admin.previewMapping(pool: f.pool, provider: f.providerName, input: .idToken("not a token")) }
        await #expect(throws: (any Error).self) {
            try await admin.previewMapping(pool: f.pool, provider: f.providerName, input: .samlResponse("<!DOCTYPE x [<!ENTITY e \"x\">]><x>&e;</x>"))
        }
        #expect(try await f.directory.countUsers(pool: try PoolID(f.pool)) == 0)
        await f.stop()
    }
}
