import Foundation
import Testing
@testable import GatehouseCore
@testable import GatehouseMapping

@Suite struct AttributeMapperTests {
    func identity(_ attributes: [String: [String]]) -> VerifiedIdentity {
        VerifiedIdentity(providerName: "Okta", providerKind: .oidc, upstreamIssuer: "https://okta.example", upstreamSubject: "00u1", attributes: attributes, authTime: nil, acr: nil, amr: [], sessionIndex: nil)
    }

    func apply(_ mapping: AttributeMapping, _ attributes: [String: [String]], custom: [CustomAttribute] = []) throws -> CompiledMapping.Result {
        try CompiledMapping(mapping, customAttributes: custom).apply(attributes)
    }

    @Test func cognitoFlatMappingPicksUpstreamNames() throws {
        let mapping = AttributeMapping(["email": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "name": "displayName", "family_name": "missing"])
        let mapped = try apply(mapping, ["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": [" ada@x.com "], "displayName": ["Ada"]])
        #expect(mapped.attributes == ["email": "ada@x.com", "name": "Ada"])
        #expect(mapped.failures.isEmpty)
        #expect(mapped.groups == nil)
    }

    @Test func cognitoFlatDocumentIsAcceptedAsIs() throws {
        let json = #"{"email": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "given_name": "firstName"}"#
        let mapping = try AttributeMapping(document: try JSONValue.parse(Data(json.utf8)))
        #expect(mapping == AttributeMapping(["email": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "given_name": "firstName"]))
        // And it round-trips through its stored (Codable) form, including rows written in the old shape.
        let stored = try JSONEncoder().encode(mapping)
        #expect(try JSONDecoder().decode(AttributeMapping.self, from: stored) == mapping)
        let old = #"{"rules": {"email": "mail"}}"#
        #expect(try JSONDecoder().decode(AttributeMapping.self, from: Data(old.utf8)) == AttributeMapping(["email": "mail"]))
    }

    @Test func documentFormTakesExpressionsAndUpdatePolicies() throws {
        let json = #"""
            {"name": {"expression": "\"{{given_name}} {{family_name}}\" | trim", "update": "first_login"},
             "email": {"attribute": "mail"},
             "groups": {"expression": "map(groups, {\"okta-admins\": \"admins\"})"}}
            """#
        let mapping = try AttributeMapping(document: try JSONValue.parse(Data(json.utf8)))
        let mapped = try apply(mapping, ["given_name": ["Ada"], "family_name": ["Lovelace"], "mail": ["ada@x.com"], "groups": ["okta-admins", "everyone"]])
        #expect(mapped.attributes == ["email": "ada@x.com"])
        #expect(mapped.initialAttributes == ["name": "Ada Lovelace"])
        #expect(mapped.groups == ["admins"])
        #expect(try AttributeMapping(document: mapping.document) == mapping)
        for bad in [#"{"name": 3}"#, #"{"name": {"expression": "x", "attribute": "y"}}"#, #"{"name": {"expression": "x", "update": "sometimes"}}"#, #"{"name": {"expr": "x"}}"#, "[]"] {
            #expect(throws: DirectoryError.self, "\(bad)") { try AttributeMapping(document: try JSONValue.parse(Data(bad.utf8))) }
        }
    }

    @Test func booleansAreNormalisedAndMultipleValuesKept() throws {
        let custom = [CustomAttribute(name: "custom:groups")]
        let mapping = AttributeMapping(["email_verified": "ev", "custom:groups": "groups"])
        let mapped = try apply(mapping, ["ev": ["True"], "groups": ["a", "b\"c"]], custom: custom)
        #expect(mapped.attributes["email_verified"] == "true")
        #expect(mapped.attributes["custom:groups"] == "[\"a\",\"b\\\"c\"]")
        #expect(try apply(mapping, ["ev": ["no"]], custom: custom).attributes["email_verified"] == "false")
    }

    @Test func oversizedValuesAreNotSetRatherThanCut() throws {
        let mapped = try apply(AttributeMapping(["name": "n", "email": "e"]), ["n": [String(repeating: "x", count: 10_000)], "e": ["a@b.c"]])
        #expect(mapped.attributes == ["email": "a@b.c"])
        #expect(mapped.failures["name"]?.contains("longer than") == true)
    }

    @Test func customAttributesMustBeDeclaredAndTyped() throws {
        #expect(throws: MappingError.self) { try CompiledMapping(AttributeMapping(["custom:dept": "d"])) }
        #expect(throws: MappingError.self) { try CompiledMapping(AttributeMapping(["favourite_colour": "c"])) }
        let custom = [CustomAttribute(name: "custom:level", type: .number), CustomAttribute(name: "custom:contractor", type: .boolean), CustomAttribute(name: "custom:dept", maximumLength: 5)]
        let mapping = AttributeMapping(["custom:level": "level", "custom:contractor": "c", "custom:dept": "d"])
        let good = try apply(mapping, ["level": [" 7 "], "c": ["1"], "d": ["Sales"]], custom: custom)
        #expect(good.attributes == ["custom:level": "7", "custom:contractor": "true", "custom:dept": "Sales"])
        let bad = try apply(mapping, ["level": ["seven"], "c": ["maybe"], "d": ["Marketing"]], custom: custom)
        #expect(bad.attributes.isEmpty)
        #expect(Set(bad.failures.keys) == ["custom:level", "custom:contractor", "custom:dept"])
        // Empty values set nothing and are no fault; several values are a JSON array for a string
        // and a fault for a boolean.
        let empty = try apply(mapping, ["level": [""], "c": [""], "d": [""]], custom: custom)
        #expect(empty.attributes.isEmpty && empty.failures.isEmpty)
        let wide = [CustomAttribute(name: "custom:dept", maximumLength: 64)] + custom.prefix(2)
        let several = try apply(mapping, ["c": ["1", "0"], "d": ["a", "", "b"]], custom: wide)
        #expect(several.attributes == ["custom:dept": #"["a","b"]"#])
        #expect(several.failures["custom:contractor"]?.contains("one value") == true)
    }

    @Test func explainShowsEveryRulesInputsAndOutput() throws {
        let mapping = AttributeMapping(rules: [
            .init(target: "email", source: .expression("first(mail, attr('urn:oid:0.9.2342.19200300.100.1.3')) | lower")),
            .init(target: "name", source: .attribute("displayName")),
        ])
        let (result, outcomes) = try CompiledMapping(mapping).explain(["urn:oid:0.9.2342.19200300.100.1.3": ["Ada@X.com"]])
        #expect(result.attributes == ["email": "ada@x.com"])
        #expect(outcomes.count == 2)
        #expect(outcomes[0].target == "email")
        #expect(outcomes[0].inputs == ["mail": [], "urn:oid:0.9.2342.19200300.100.1.3": ["Ada@X.com"]])
        #expect(outcomes[0].output == ["ada@x.com"])
        #expect(outcomes[1].output == [] && outcomes[1].failure == nil)
    }

    /// Results start from dictionaries holding every target; what a login leaves unset or a rule
    /// fails to set must not remain, in either policy, whichever rules run before or after it.
    @Test func resultsHoldExactlyTheTargetsThisLoginSet() throws {
        let custom = [CustomAttribute(name: "custom:flag", type: .boolean)]
        let mapping = AttributeMapping(rules: [
            .init(target: "email", source: .attribute("mail")),
            .init(target: "name", source: .attribute("display"), update: .firstLogin),
            .init(target: "locale", source: .attribute("locale")),
            .init(target: "nickname", source: .attribute("nick"), update: .firstLogin),
            .init(target: "custom:flag", source: .attribute("flag")),
            .init(target: "groups", source: .expression("split(g, ',')")),
            .init(target: "given_name", source: .attribute("given")),
        ])
        let compiled = try CompiledMapping(mapping, customAttributes: custom)
        let all = compiled.apply(["mail": ["a@b.c"], "display": ["Ada"], "locale": ["en"], "nick": ["ada"], "flag": [" TRUE "], "g": ["x,y"], "given": ["A"]])
        #expect(all.attributes == ["email": "a@b.c", "locale": "en", "custom:flag": "true", "given_name": "A"])
        #expect(all.initialAttributes == ["name": "Ada", "nickname": "ada"])
        #expect(all.groups == ["x", "y"] && all.failures.isEmpty)
        let some = compiled.apply(["display": ["Ada"], "locale": [""], "flag": ["maybe"], "given": ["A"]])
        #expect(some.attributes == ["given_name": "A"])
        #expect(some.initialAttributes == ["name": "Ada"])
        #expect(some.groups == [])
        #expect(some.failures.keys.sorted() == ["custom:flag"])
        let none = compiled.apply([:])
        #expect(none.attributes.isEmpty && none.initialAttributes.isEmpty && none.failures.isEmpty)
        // A groups rule that fails is reported like any other.
        let many = Array(repeating: "g", count: 300).enumerated().map { "g\($0.offset)" }.joined(separator: ",")
        #expect(compiled.apply(["g": [many]]).failures["groups"] != nil)
        // Straight from the upstream, a huge list of distinct groups is refused too (and in linear time).
        let plain = try CompiledMapping(AttributeMapping(["groups": "g"]))
        #expect(plain.apply(["g": (0..<60_000).map { "group-\($0)" }]).failures["groups"]?.contains("more than 256 groups") == true)
        #expect(plain.apply(["g": ["a", "", "b", "a", String(repeating: "x", count: 129)]]).groups == ["a", "b"])
        // And the values themselves, one login after another, never leak between results.
        #expect(compiled.apply(["mail": ["c@d.e"]]).attributes == ["email": "c@d.e"])
        #expect(all.attributes["email"] == "a@b.c")
    }

    /// A login larger than the scratch's first buffers (1 KB of text, 64 values) moves it to the
    /// heap mid-rule; every value must read the same after the move as before.
    @Test func largeLoginsMapExactlyAsSmallOnes() throws {
        let custom = [CustomAttribute(name: "custom:tags", maximumLength: 2048)]
        let mapping = AttributeMapping(rules: [
            .init(target: "name", source: .expression("\"{{given}} {{family}}\" | upper")),
            .init(target: "nickname", source: .expression("join(split(given, 'a'), '-')")),
            .init(target: "custom:tags", source: .expression("join(map(tags, {\"t1\": \"one\"}, \"other\"), ',')")),
            .init(target: "groups", source: .expression("extract(tags, '^t(\\d)$')")),
            .init(target: "email", source: .expression("lower(trim(mail))")),
        ])
        let compiled = try CompiledMapping(mapping, customAttributes: custom)
        for size in [3, 400] {
            let given = String(repeating: "ab", count: size), family = String(repeating: "c", count: size)
            let tags = (0..<(size / 4 + 2)).map { "t\($0 % 10)" }
            let result = compiled.apply(["given": [given], "family": [family], "tags": tags, "mail": ["  Ada@X.COM  "]])
            #expect(result.attributes["name"] == (given + " " + family).uppercased(), "size \(size)")
            if size <= 256 {
                #expect(result.attributes["nickname"] == Array(repeating: "b", count: size).joined(separator: "-"), "size \(size)")
            } else {
                #expect(result.attributes["nickname"] == nil && result.failures["nickname"]?.contains("more than 256 values") == true, "size \(size)")
            }
            #expect(result.attributes["custom:tags"] == tags.map { $0 == "t1" ? "one" : "other" }.joined(separator: ","), "size \(size)")
            #expect(result.groups == Array(Set(tags.map { String($0.dropFirst()) })).sorted { tags.firstIndex(of: "t" + $0)! < tags.firstIndex(of: "t" + $1)! }, "size \(size)")
            #expect(result.attributes["email"] == "ada@x.com", "size \(size)")
        }
    }

    @Test func upstreamNamesAreFoundWhateverTheLoginsSize() throws {
        // A login with few attributes is walked and its names found by their bytes; a login with
        // many more than the rules read is looked up name by name. Both must read the same values,
        // including names that differ only in their last byte, in case or by a non-ASCII letter,
        // and names of every length around the eight-byte words the index hashes.
        let prefix = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
        let names = [prefix + "givenname", prefix + "givennamf", prefix + "Givenname", "é", "e", "", "1234567", "12345678", "123456789"]
        let mapping = AttributeMapping(rules: names.enumerated().filter { !$0.element.isEmpty }.map { k, name in
            .init(target: ["name", "nickname", "given_name", "family_name", "middle_name", "locale", "zoneinfo", "website", "profile"][k], source: .attribute(name))
        })
        let compiled = try CompiledMapping(mapping)
        var login: [String: [String]] = [:]
        for (k, name) in names.enumerated() { login[name] = ["v\(k)"] }
        var padded = login
        for k in 0..<40 { padded["extra\(k)"] = ["x"] }
        #expect(login.count <= 2 * compiled.names.count && padded.count > 2 * compiled.names.count)
        for attributes in [login, padded] {
            let result = compiled.apply(attributes)
            #expect(result.attributes == ["name": "v0", "nickname": "v1", "given_name": "v2", "family_name": "v3", "middle_name": "v4", "zoneinfo": "v6", "website": "v7", "profile": "v8"])
        }
        // Names the rules read but the login lacks are unset either way.
        #expect(compiled.apply([prefix + "givenname": ["a"]]).attributes == ["name": "a"])
        #expect(compiled.apply(padded.filter { $0.key.hasPrefix("extra") }).attributes == [:])
    }

    @Test func canonicallyEquivalentNamesAndGroupsAreOne() throws {
        // An upstream may send a name or a value decomposed ("e" and a combining accent) where the
        // mapping wrote it precomposed: small and large logins both find the name, and groups that
        // differ only so are kept once.
        let mapping = AttributeMapping(rules: [.init(target: "name", source: .attribute("naïve")), .init(target: "groups", source: .attribute("g"))])
        let compiled = try CompiledMapping(mapping)
        var login: [String: [String]] = ["nai\u{308}ve": ["Ada"], "g": ["Café", "Cafe\u{301}", "x"]]
        #expect(compiled.apply(login).attributes == ["name": "Ada"])
        #expect(compiled.apply(login).groups?.count == 2)
        for k in 0..<10 { login["extra\(k)"] = ["x"] }
        #expect(login.count > 2 * compiled.names.count)
        #expect(compiled.apply(login).attributes == ["name": "Ada"])
    }

    @Test func aLoginsAttributesAreBoundedInAll() throws {
        // Each value is read in full, but not without bound in all: past a mebibyte of what the
        // rules read, every rule fails and says why, rather than building ever larger positions.
        let mapping = AttributeMapping(rules: [.init(target: "name", source: .attribute("a")), .init(target: "nickname", source: .attribute("b"))])
        let compiled = try CompiledMapping(mapping)
        let half = String(repeating: "x", count: 600_000)
        let over = compiled.apply(["a": [half], "b": [half]])
        #expect(over.attributes.isEmpty)
        #expect(over.failures["name"]?.contains("1 MiB") == true && over.failures["nickname"]?.contains("1 MiB") == true)
        // Many empty values count too.
        #expect(compiled.apply(["a": Array(repeating: "", count: 2_000_000)]).failures["name"]?.contains("1 MiB") == true)
        // Attributes no rule reads do not count.
        #expect(compiled.apply(["a": ["Ada"], "unread": [half, half]]).attributes == ["name": "Ada"])
    }

    @Test func aTargetIsSetByOneRule() {
        let twice = AttributeMapping(rules: [.init(target: "name", source: .attribute("a")), .init(target: "name", source: .attribute("b"), update: .firstLogin)])
        #expect {
            try CompiledMapping(twice)
        } throws: { error in
            (error as? MappingError)?.description.contains("more than one rule") == true
        }
    }

    @Test func booleansReadOnlyTheirFourWords() throws {
        for (text, expected) in [("true", true), (" True\t", true), ("1", true), ("FALSE", false), (" 0 ", false), ("yes", nil), ("truex", nil), ("", nil), ("tru", nil), ("\u{00A0}true\u{00A0}", true), ("é", nil), (" é ", nil), ("\u{00A0}é", nil)] as [(String, Bool?)] {
            #expect(CompiledMapping.boolean(text) == expected, "\(text)")
        }
    }

    @Test func trimmingRemovesASCIIAndUnicodeSpaceOnly() {
        for (text, expected) in [("  a b  ", "a b"), ("\t\nx\r", "x"), ("x", "x"), ("   ", ""), ("", ""), ("\u{00A0}é\u{2003}", "é"), (" é ", "é"), ("\u{00A0} x", "x"), ("é", "é")] {
            #expect(text.trimmingWhitespace() == expected, "\(text.debugDescription)")
        }
    }

    @Test func usernamesAreDeterministic() {
        #expect(AttributeMapper.username(for: identity([:])) == "Okta_00u1")
    }

    @Test func unknownTargetsAreRefusedWhenSaved() {
        #expect(throws: DirectoryError.self) { try AttributeMapping(["favourite_colour": "c"]).validate() }
        #expect(throws: DirectoryError.self) { try AttributeMapping(["email": ""]).validate() }
        #expect(throws: DirectoryError.self) {
            try AttributeMapping(rules: [.init(target: "name", source: .attribute("a")), .init(target: "name", source: .attribute("b"))]).validate()
        }
    }
}
