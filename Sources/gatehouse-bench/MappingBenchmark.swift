import Foundation
import GatehouseCore
import GatehouseMapping

/// The attribute mapping figure: a typical enterprise mapping of 15 rules (flat names, templates,
/// case and trim, a regular-expression extract and replace, a condition, a group table) applied to
/// one SAML-style login of 20 attributes.
enum MappingBenchmark {
    static let document = #"""
        {
          "email": {"expression": "first(attr('http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress'), upn) | trim | lower"},
          "email_verified": {"expression": "if present(attr('http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress')) then \"true\" else \"false\""},
          "given_name": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
          "family_name": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
          "name": {"expression": "\"{{givenname}} {{surname}}\"", "update": "first_login"},
          "preferred_username": {"expression": "extract(upn, '^([^@]+)')"},
          "locale": {"expression": "lower(first(locale, 'en'))"},
          "zoneinfo": "timezone",
          "phone_number": {"expression": "replace(mobile, '[^+0-9]', '')"},
          "nickname": {"expression": "head(split(displayname, ' '))"},
          "custom:department": {"expression": "first(department, 'unknown')"},
          "custom:employee_id": "employeeid",
          "custom:cost_center": {"expression": "upper(costcenter)"},
          "custom:is_admin": {"expression": "if groups contains \"GH-Admins\" then \"true\" else \"false\""},
          "groups": {"expression": "map(groups, {\"GH-Admins\": \"admins\", \"GH-Engineering\": \"engineering\", \"GH-Sales\": \"sales\", \"GH-Support\": \"support\", \"GH-Finance\": \"finance\", \"GH-HR\": \"hr\", \"GH-Legal\": \"legal\", \"GH-Ops\": \"ops\", \"GH-Staff\": \"staff\", \"GH-Contractors\": \"contractors\"})"}
        }
        """#

    static let login: [String: [String]] = [
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": ["  Ada.Lovelace@Example.COM "],
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname": ["Ada"], "givenname": ["Ada"],
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname": ["Lovelace"], "surname": ["Lovelace"],
        "upn": ["ada.lovelace@corp.example.com"], "locale": ["en-GB"], "timezone": ["Europe/London"],
        "mobile": ["+44 (20) 7946-0958"], "displayname": ["Ada Lovelace"], "department": ["Analytical Engines"],
        "employeeid": ["E-1815"], "costcenter": ["cc-4711"], "groups": ["GH-Engineering", "GH-Staff", "Everyone", "GH-Admins"],
        "NameID": ["ada.lovelace@corp.example.com"], "sessionindex": ["_s1"], "authnmethodsreferences": ["urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"],
        "http://schemas.microsoft.com/identity/claims/tenantid": ["b3c4"], "http://schemas.microsoft.com/identity/claims/objectidentifier": ["9f1e"],
        "http://schemas.microsoft.com/identity/claims/displayname": ["Ada Lovelace"],
    ]

    static func run() async throws {
        print("\nAttribute mapping")
        let mapping = try AttributeMapping(document: try JSONValue.parse(Data(document.utf8)))
        let custom = ["custom:department", "custom:employee_id", "custom:cost_center"].map { CustomAttribute(name: $0) } + [CustomAttribute(name: "custom:is_admin", type: .boolean)]
        let compiled = try CompiledMapping(mapping, customAttributes: custom)
        let check = compiled.apply(login)
        guard compiled.rules.count == 15, check.failures.isEmpty, check.attributes.count == 13, check.groups == ["engineering", "staff", "admins"] else {
            throw ConfigurationError("the benchmark mapping does not map as expected: \(check)")
        }
        // One rule alone (`*`: the whole mapping, measured alone; any other name: no rule, the fixed cost).
        if let only = ProcessInfo.processInfo.environment["GATEHOUSE_BENCH_RULE"] {
            let one = try CompiledMapping(AttributeMapping(rules: mapping.rules.filter { only == "*" || $0.target == only }), customAttributes: custom)
            await Benchmark.measure("  rule \(only) alone", seconds: 5) { _ = one.apply(login) }
            return
        }
        await Benchmark.measure("apply a 15-rule mapping to one login") { _ = compiled.apply(login) }
        try await Benchmark.measure("compile the same mapping (when it changes)") { _ = try CompiledMapping(mapping, customAttributes: custom) }
        if ProcessInfo.processInfo.environment["GATEHOUSE_BENCH_RULES"] != nil {
            for rule in mapping.rules {
                let one = try CompiledMapping(AttributeMapping(rules: [rule]), customAttributes: custom)
                await Benchmark.measure("  rule \(rule.target)", seconds: 0.5) { _ = one.apply(login) }
            }
        }
    }
}
