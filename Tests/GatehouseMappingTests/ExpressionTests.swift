import Foundation
import Testing
@testable import GatehouseCore
@testable import GatehouseMapping

/// The mapping language, case by case: what each expression yields over one set of upstream
/// attributes, what is refused when a mapping is saved (with where), and what hostile input costs.
@Suite struct ExpressionTests {
    static let login: [String: [String]] = [
        "given_name": ["Ada"], "family_name": ["Lovelace"], "email": [" Ada@Example.COM "],
        "groups": ["okta-admins", "okta-eng", "everyone"], "department": [""], "dept": ["R&D"],
        "address.country": ["UK"], "email_verified": ["true"],
        "http://schemas.xmlsoap.org/claims/Group": ["CN=Admins,OU=Groups,DC=corp", "CN=Staff,OU=Groups,DC=corp"],
        "upn": ["ada@corp.example"], "tags": ["a, b,,c"],
    ]

    /// Each expression of `cases` yields its strings over `attributes`.
    static func expect(_ cases: [(String, [String])], over attributes: [String: [String]], sourceLocation: SourceLocation = #_sourceLocation) throws {
        for (source, expected) in cases {
            #expect(try Evaluator.strings(of: try MappingExpression(source), over: attributes) == expected, "\(source.prefix(40))", sourceLocation: sourceLocation)
        }
    }

    static let yields: [(String, [String])] = [
        // Attributes, nested claims, odd names, constants.
        ("given_name", ["Ada"]),
        ("address.country", ["UK"]),
        ("attr('http://schemas.xmlsoap.org/claims/Group')", ["CN=Admins,OU=Groups,DC=corp", "CN=Staff,OU=Groups,DC=corp"]),
        ("missing", []),
        ("\"constant\"", ["constant"]),
        ("'raw \\d'", ["raw \\d"]),
        ("\"tab\\there\"", ["tab\there"]),
        // Templates.
        ("\"{{given_name}} {{family_name}}\"", ["Ada Lovelace"]),
        ("\"{{ given_name }}-{{missing}}!\"", ["Ada-!"]),
        ("\"{{http://schemas.xmlsoap.org/claims/Group}}\"", ["CN=Admins,OU=Groups,DC=corp"]),
        ("'{{given_name}}'", ["{{given_name}}"]),
        // First non-empty.
        ("first(missing, department, dept)", ["R&D"]),
        ("first(missing, \"fallback\")", ["fallback"]),
        ("first(missing, department)", []),
        // Case, trim, pipes.
        ("email | trim | lower", ["ada@example.com"]),
        ("upper(given_name)", ["ADA"]),
        ("lower(groups)", ["okta-admins", "okta-eng", "everyone"]),
        ("lower(\"ÀDA Éclair\")", ["àda éclair"]),
        ("upper(\"straße ada\")", ["STRASSE ADA"]),
        ("upper(\"ada-42_x\")", ["ADA-42_X"]),
        ("lower(\"already-lower\")", ["already-lower"]),
        ("head(groups)", ["okta-admins"]),
        // Split and join.
        ("split(tags, ',') | trim", ["a", "b", "c"]),
        ("join(groups, ';')", ["okta-admins;okta-eng;everyone"]),
        ("join(missing, ';')", []),
        ("[given_name, family_name] | join(' ')", ["Ada Lovelace"]),
        // Regular expressions.
        ("extract(upn, '@(.+)$')", ["corp.example"]),
        ("extract(email, '(?i)@EXAMPLE')", ["@Example"]),
        ("extract(attr('http://schemas.xmlsoap.org/claims/Group'), '^CN=([^,]+)')", ["Admins", "Staff"]),
        ("extract(upn, '^x')", []),
        ("replace(upn, '@.*', '')", ["ada"]),
        ("replace(given_name, '(a)', '[$1]')", ["Ad[a]"]),
        ("replace(\"a-b-c\", '-', '$$')", ["a$b$c"]),
        ("replace(\"abc\", 'x*', '-')", ["-a-b-c-"]),
        ("replace(\"+44 (20) 7946-0958\", '[^+0-9]', '')", ["+442079460958"]),
        ("replace(\"aaa\", '^a', 'b')", ["baa"]),
        ("replace(\"a.b.c\", '\\.', '/')", ["a/b/c"]),
        ("replace(\"ÀéÎ\", '(?i)é', 'e')", ["ÀeÎ"]),
        // An anchor alone matches the empty text at its place.
        ("replace(given_name, '^', 'sso-')", ["sso-Ada"]),
        ("replace(given_name, '$', '!')", ["Ada!"]),
        ("if given_name matches '^' then \"y\" else \"n\"", ["y"]),
        // Tables.
        ("map(groups, {\"okta-admins\": \"admins\", \"okta-eng\": \"engineering\"})", ["admins", "engineering"]),
        ("map(groups, {\"okta-admins\": \"admins\"}, \"users\")", ["admins", "users", "users"]),
        ("map(department, {\"\": \"none\"})", ["none"]),
        // Conditions.
        ("if groups contains \"okta-admins\" then \"admin\" else \"user\"", ["admin"]),
        ("if groups contains \"root\" then \"admin\" else \"user\"", ["user"]),
        ("if email_verified == \"true\" and present(email) then \"yes\" else \"no\"", ["yes"]),
        ("if not present(department) or dept != \"R&D\" then \"a\" else \"b\"", ["a"]),
        ("if upn matches '@corp\\.example$' then \"staff\" else \"guest\"", ["staff"]),
        ("groups contains \"everyone\"", ["true"]),
        ("dept == \"Sales\"", ["false"]),
        ("if true then [given_name, \"x\"] else []", ["Ada", "x"]),
    ]

    @Test(arguments: yields) func yieldsValues(_ source: String, _ expected: [String]) throws {
        let expression = try MappingExpression(source)
        #expect(try Evaluator.strings(of: expression, over: Self.login) == expected, "\(source)")
    }

    /// Refused when saved: the position (1-based character) and a phrase of the reason.
    static let refusals: [(String, Int, String)] = [
        ("", 1, "expected a value"),
        ("given_name given_name", 12, "after a complete expression"),
        ("lower(", 7, "expected a value"),
        ("lower(email", 12, "expected ')'"),
        ("frobnicate(email)", 1, "unknown function 'frobnicate'"),
        ("lower(email, email)", 1, "takes 1 argument"),
        ("\"unterminated", 1, "unterminated string"),
        ("\"bad \\q escape\"", 6, "unknown escape"),
        ("email = \"x\"", 7, "expected '=='"),
        ("!present(email)", 1, "expected '!='"),
        ("email & name", 7, "unexpected character"),
        ("if email then \"a\" else \"b\"", 4, "needs a condition"),
        ("if present(email) then \"a\" else present(email)", 33, "both branches"),
        ("if present(email) \"a\" else \"b\"", 19, "expected 'then'"),
        ("present(email) == \"x\"", 16, "compares text"),
        ("not email", 5, "needs a condition"),
        ("email and name", 1, "needs a condition"),
        ("extract(email, '(')", 16, "invalid regular expression"),
        ("extract(email, '(a)\\1')", 16, "back-references"),
        ("extract(email, '(?=a)')", 16, "look-around"),
        ("extract(email, email)", 16, "string literal"),
        ("email matches lower('x')", 15, "regular expression written as a string"),
        ("map(groups, \"x\")", 13, "takes a table"),
        ("map(groups, {\"a\": \"b\", \"a\": \"c\"})", 24, "appears twice"),
        ("split(email, name)", 14, "string literal"),
        ("attr(email)", 6, "string literal"),
        ("\"{{given_name\"", 1, "'{{' without '}}'"),
        ("\"{{ }}\"", 1, "empty"),
        ("if", 3, "expected a value"),
        ("then", 1, "unexpected 'then'"),
        ("[present(email)]", 2, "a list holds text"),
        ("email | 3", 9, "unexpected character"),
        ("email | \"x\"", 9, "expected a function name"),
    ]

    @Test(arguments: refusals) func refusedWithPositionAndReason(_ source: String, _ position: Int, _ phrase: String) {
        do {
            _ = try MappingExpression(source)
            Issue.record("accepted: \(source)")
        } catch {
            #expect(error.position == position, "\(source): \(error)")
            #expect(error.reason.contains(phrase), "\(source): \(error)")
        }
    }

    @Test func aMappingNamesTheRuleAtFault() {
        let mapping = AttributeMapping(rules: [.init(target: "name", source: .expression("lower(")), .init(target: "email", source: .attribute("mail"))])
        do {
            _ = try CompiledMapping(mapping)
            Issue.record("accepted")
        } catch {
            #expect(error.target == "name")
            #expect(error.position == 7)
            #expect(error.description == "rule 'name', at 7: expected a value but found the end")
        }
    }

    // MARK: Hostile expressions and input

    @Test func deepNestingIsRefused() {
        let deep = String(repeating: "(", count: 200) + "email" + String(repeating: ")", count: 200)
        #expect(throws: MappingError.self) { try MappingExpression(deep) }
        let calls = String(repeating: "lower(", count: 100) + "email" + String(repeating: ")", count: 100)
        #expect(throws: MappingError.self) { try MappingExpression(calls) }
        let nots = String(repeating: "not ", count: 100) + "true"
        #expect(throws: MappingError.self) { try MappingExpression(nots) }
        let lists = String(repeating: "[", count: 100) + "email" + String(repeating: "]", count: 100)
        #expect(throws: MappingError.self) { try MappingExpression(lists) }
        // Within the limit, nesting works.
        #expect(throws: Never.self) { try MappingExpression(String(repeating: "(", count: 20) + "email" + String(repeating: ")", count: 20)) }
    }

    @Test func hugeExpressionsAreRefused() {
        #expect(throws: MappingError.self) { try MappingExpression("\"" + String(repeating: "x", count: 5000) + "\"") }
        let wide = "first(" + Array(repeating: "a", count: 16).joined(separator: ",") + ", b)"
        #expect(throws: MappingError.self) { try MappingExpression(wide) }
        let many = "[" + Array(repeating: "a", count: 600).joined(separator: ",") + "]"
        #expect(throws: MappingError.self) { try MappingExpression(many) }
    }

    @Test func catastrophicPatternsRunInLinearTime() throws {
        // On a backtracking engine each of these takes exponential time on this input.
        // Long inputs run on the Pike VM, short ones on the backtracker; each costs at most
        // (program length × input length) steps.
        for count in [4000, 30] {
            let input = String(repeating: "a", count: count) + "!"
            for pattern in ["(a+)+$", "(a|aa)+$", "(a*)*b", "^(a|a?)+$", "(.*a){20}$", "(?:a+){10}b"] {
                let r = try SafeRegex(pattern)
                let limit = r.program.count * (count + 2) + count + 2
                var budget = limit
                #expect(!r.matches(input, budget: &budget), "\(pattern)")
                #expect(budget >= 0, "\(pattern) on \(count + 1) characters spent more than program × input: \(limit - budget) steps")
            }
        }
    }

    @Test func regexSizeIsBounded() {
        #expect(throws: SafeRegex.SyntaxError.self) { try SafeRegex(String(repeating: "a", count: 300)) }
        #expect(throws: SafeRegex.SyntaxError.self) { try SafeRegex("(a{100}){100}") }
        #expect(throws: SafeRegex.SyntaxError.self) { try SafeRegex("a{101}") }
        #expect(throws: SafeRegex.SyntaxError.self) { try SafeRegex("a{5,2}") }
        #expect(throws: SafeRegex.SyntaxError.self) { try SafeRegex("a**") }
        #expect(throws: SafeRegex.SyntaxError.self) { try SafeRegex(String(repeating: "(", count: 40) + String(repeating: ")", count: 40)) }
    }

    @Test func aRuleThatOverspendsSetsNothingAndSaysWhy() throws {
        // Each value is within the regex input limit, but 256 of them times a large program is not.
        let pattern = "(?:[a-z]?){100}x"
        let mapping = AttributeMapping(rules: [.init(target: "name", source: .expression("extract(v, '\(pattern)')")), .init(target: "email", source: .attribute("e"))])
        let values = Array(repeating: String(repeating: "a", count: 4000), count: 256)
        let result = try CompiledMapping(mapping).apply(["v": values, "e": ["a@b.c"]])
        #expect(result.attributes == ["email": "a@b.c"])
        #expect(result.failures["name"]?.contains("more work") == true)
    }

    @Test func whatARuleWritesInAllIsBounded() throws {
        // Every value stays under 64 KB and every list under 256 values, yet 100 joins of 64 KB each
        // would write 6.4 MB, and case mapping them again and again much more: a rule pays a unit
        // of its budget for each byte it writes.
        let v = Array(repeating: String(repeating: "x", count: 2048), count: 32)
        let joins = Array(repeating: "join(v, '')", count: 100).joined(separator: ", ")
        let hostile = try MappingExpression("lower(upper(lower([\(joins)])))")
        #expect(throws: EvaluationLimit.self) { try Evaluator.strings(of: hostile, over: ["v": v]) }
        // A tenth of that is within the budget.
        let fine = try MappingExpression("lower([\(Array(repeating: "join(v, '')", count: 10).joined(separator: ", "))])")
        #expect(try Evaluator.strings(of: fine, over: ["v": v]).count == 10)
    }

    @Test func comparingLongListsSpendsTheBudget() throws {
        // 256 × 256 comparisons of 2,000 bytes that differ only at the end: `contains` must pay for
        // the bytes it compares, or a large enough list pair runs unbounded.
        let prefix = String(repeating: "a", count: 1996)
        let v = (0..<256).map { prefix + String(format: "%04d", $0) }
        let w = (0..<256).map { prefix + String(format: "%04d", 5000 + $0) }
        let mapping = AttributeMapping(rules: [.init(target: "custom:hit", source: .expression("if v contains w then \"true\" else \"false\""))])
        let compiled = try CompiledMapping(mapping, customAttributes: [CustomAttribute(name: "custom:hit", type: .boolean)])
        let result = compiled.apply(["v": v, "w": w])
        #expect(result.attributes.isEmpty)
        #expect(result.failures["custom:hit"]?.contains("more work") == true)
        // A small comparison is cheap and right.
        #expect(compiled.apply(["v": ["x", "y"], "w": ["y"]]).attributes == ["custom:hit": "true"])
        #expect(compiled.apply(["v": ["x", "y"], "w": ["z"]]).attributes == ["custom:hit": "false"])
    }

    @Test func growthIsBounded() throws {
        let big = String(repeating: "x", count: 4000)
        let mapping = AttributeMapping(rules: [
            .init(target: "name", source: .expression("join(split(v, ''), ',')")),
            .init(target: "nickname", source: .expression("[v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v] | join('')")),
        ])
        let result = try CompiledMapping(mapping).apply(["v": Array(repeating: big, count: 20)])
        #expect(result.attributes.isEmpty)
        #expect(result.failures["name"]?.contains("more than 256 values") == true)
        #expect(result.failures["nickname"] != nil)
        // split() stops at the limit whatever the separator, and exactly 256 pieces are fine.
        let pieces = try MappingExpression("split(v, ',')")
        #expect(throws: EvaluationLimit.self) { try Evaluator.strings(of: pieces, over: ["v": [String(repeating: "a,", count: 2000)]]) }
        #expect(try Evaluator.strings(of: pieces, over: ["v": [String(repeating: "a,", count: 256)]]).count == 256)
        #expect(throws: EvaluationLimit.self) { try Evaluator.strings(of: pieces, over: ["v": [String(repeating: "a,", count: 257)]]) }
    }

    @Test func aReplacementStopsAtItsLimitBeforeWritingMore() throws {
        // One match of 4,000 characters and a template that repeats it 1,000 times would write
        // 4 MB; the replacement must stop at its limit instead of building that and then failing.
        let regex = try SafeRegex(".+")
        let template = SafeRegex.Replacement(String(repeating: "$0", count: 1000))
        let input = String(repeating: "a", count: 4000)
        var budget = CompiledMapping.ruleBudget
        let outcome = SafeRegex.withScalars(of: input) { scalars -> (SafeRegex.ReplaceOutcome, Int) in
            var out = SafeRegex.UTF8Output(capacity: 0)
            let outcome = regex.replaceAll(scalars: scalars, with: template, into: &out, budget: &budget, limit: 65_536)
            return (outcome, out.byteCount)
        }
        #expect(outcome?.0 == .tooLong)
        #expect((outcome?.1 ?? .max) <= 65_536)
        // The same through a mapping: the rule fails and says why.
        let mapping = AttributeMapping(rules: [.init(target: "name", source: .expression("replace(v, '.+', '\(String(repeating: "$0", count: 1000))')"))])
        let result = try CompiledMapping(mapping).apply(["v": [input]])
        #expect(result.attributes.isEmpty)
        #expect(result.failures["name"]?.contains("grew past 65536 bytes") == true)
        // Within the limit, the text is exact.
        let small = try MappingExpression("replace(v, '(b+)', '<$1$1>')")
        #expect(try Evaluator.strings(of: small, over: ["v": ["abbc"]]) == ["a<bbbb>c"])
    }

    @Test func aListCopiesEveryValueWhileItGrows() throws {
        // 120 values twice: the list outgrows the scratch's text memory while copying them, and
        // must read each value from where it is now, not from memory it has just given back.
        let values = (0..<120).map { "group-\($0)" }
        let twice = try MappingExpression("[memberOf, memberOf]")
        #expect(try Evaluator.strings(of: twice, over: ["memberOf": values]) == values + values)
        let mapping = AttributeMapping(rules: [.init(target: "groups", source: .expression("[memberOf, [memberOf, \"extra\"]]"))])
        #expect(try CompiledMapping(mapping).apply(["memberOf": values]).groups == values + ["extra"])
    }

    /// Work that reads bytes pays for them: a unit per 16 bytes scanned, so a rule cannot scan
    /// without bound by reading long values that need no change.
    @Test func scanningPaysForTheBytesItReads() throws {
        let long = String(repeating: "a", count: 60_000), short = String(repeating: "a", count: 4000)
        let separator = String(repeating: "a", count: 1000) + "b"
        let attributes = ["v": [long], "w": [long.uppercased()], "s": [short]]
        let cases: [(String, Int)] = [
            ("lower(v)", 60_000), ("upper(w)", 60_000), ("split(v, ',')", 60_000), ("split(v, '')", 60_000),
            // A long separator can be compared at every position: refused before it scans.
            ("split(v, '\(separator)')", 60_000 * 1000),
            ("if v == v then \"y\" else \"n\"", 60_000), ("extract(s, '^z')", 4000),
            ("if s matches '^z' then \"y\" else \"n\"", 4000), ("replace(s, '^z', 'y')", 4000), ("extract(s, 'zq')", 4000),
        ]
        for (source, bytes) in cases {
            let spent = Evaluator.spent(by: try MappingExpression(source), over: attributes)
            #expect(spent >= bytes / 32, "\(source) spent \(spent) units reading \(bytes) bytes")
        }
        // A search that copies many groups per step pays for them too.
        let groups = "(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)(a)z"
        let flat = "aaaaaaaaaaaaaaaaaaaaz"
        let many = Evaluator.spent(by: try MappingExpression("extract(s, '\(groups)')"), over: attributes)
        let none = Evaluator.spent(by: try MappingExpression("extract(s, '\(flat)')"), over: attributes)
        #expect(many >= 2 * none, "20 groups: \(many) units, none: \(none)")
    }

    @Test func caseMappingThatGrowsIsBounded() throws {
        // "ΐ" is two bytes and upper-cases to three characters of six bytes.
        let grows = String(repeating: "ΐ", count: 20_000)
        #expect(throws: EvaluationLimit.self) { try Evaluator.strings(of: try MappingExpression("upper(v)"), over: ["v": [grows]]) }
        #expect(try Evaluator.strings(of: try MappingExpression("upper(v)"), over: ["v": ["ΐ"]]) == ["ΐ".uppercased()])
        // A value longer than any rule may build is not passed through by join() either.
        let huge = String(repeating: "a", count: 70_000)
        #expect(throws: EvaluationLimit.self) { try Evaluator.strings(of: try MappingExpression("join(v, ',')"), over: ["v": [huge]]) }
    }

    /// Canonically equivalent text (a precomposed "é" and "e" with a combining accent, the Kelvin
    /// sign and "K") is the same text to every comparison, as it is to Swift's strings, while
    /// values pass on exactly as they came.
    @Test func canonicallyEquivalentTextCompareEqual() throws {
        let attributes = ["v": ["Cafe\u{301}"], "k": ["\u{212A}"], "parts": ["Cafe", "\u{301}"], "name": ["\u{FA10}田"]]
        let cases: [(String, [String])] = [
            ("if v == \"Café\" then \"y\" else \"n\"", ["y"]),
            ("if [\"x\", v] contains \"Café\" then \"y\" else \"n\"", ["y"]),
            ("map(v, {\"Café\": \"coffee\"})", ["coffee"]),
            ("map(\"Café\", {\"Cafe\u{301}\": \"coffee\"})", ["coffee"]),
            ("if k == \"K\" then \"y\" else \"n\"", ["y"]),
            ("if join(parts, '') == \"Café\" then \"y\" else \"n\"", ["y"]),
            ("if v == \"Cafe\" then \"y\" else \"n\"", ["n"]),
        ]
        try Self.expect(cases, over: attributes)
        // Swift's == would call these equal whatever the bytes: compare the scalars.
        for (name, value) in [("v", "Cafe\u{301}"), ("k", "\u{212A}"), ("name", "\u{FA10}田")] {
            let out = try Evaluator.strings(of: try MappingExpression(name), over: attributes)
            #expect(out.map { Array($0.unicodeScalars) } == [Array(value.unicodeScalars)], "\(name)")
        }
        // Comparing many long non-ASCII values that differ pays for the Unicode work.
        let long = String(repeating: "é", count: 1000)
        let many = (0..<256).map { long + "\($0)" }
        #expect(throws: EvaluationLimit.self) {
            try Evaluator.strings(of: try MappingExpression("if a contains b then \"y\" else \"n\""), over: ["a": many, "b": many.map { $0 + "x" }])
        }
    }

    /// Swift's comparison sorts each run of combining marks, in time growing with the square of
    /// the run; past Unicode's stream-safe limit of 30 marks in a row, text is compared by its
    /// bytes alone (these two are equivalent to Swift, which takes half a second to say so).
    @Test func longRunsOfCombiningMarksCompareByBytes() throws {
        let v = "a" + String(repeating: "\u{301}", count: 16_000) + String(repeating: "\u{316}", count: 16_000)
        let w = "a" + String(repeating: "\u{316}", count: 16_000) + String(repeating: "\u{301}", count: 16_000)
        let attributes = ["v": [v], "w": [w], "short": ["a\u{301}\u{316}"]]
        let cases: [(String, [String])] = [
            ("if v == w then \"y\" else \"n\"", ["n"]),
            ("if [v] contains w then \"y\" else \"n\"", ["n"]),
            ("map(v, {\"x\": \"y\"}, \"other\")", ["other"]),
            // Short runs still compare as Swift's strings do.
            ("if short == \"a\u{316}\u{301}\" then \"y\" else \"n\"", ["y"]),
        ]
        try Self.expect(cases, over: attributes)
        let name = "x" + String(repeating: "\u{301}", count: 31)
        #expect(throws: MappingError.self) { try CompiledMapping(AttributeMapping(["name": name])) }
    }

    @Test func emptyKeysHashAlikeWhereverTheyAre() {
        let byte: [UInt8] = [0]
        let elsewhere = byte.withUnsafeBufferPointer { ByteTable<Int32>.hash(UnsafeBufferPointer(rebasing: $0[0..<0])) }
        #expect(ByteTable<Int32>.hash(UnsafeBufferPointer(start: nil, count: 0)) == elsewhere)
        let empty = ByteTable<Int32>([], pool: [])
        #expect(empty.value(for: UnsafeBufferPointer(start: nil, count: 0), pool: nil) == nil)
    }

    @Test func oversizedRegexInputDoesNotMatch() throws {
        let r = try MappingExpression("extract(v, 'a')")
        #expect(try Evaluator.strings(of: r, over: ["v": [String(repeating: "a", count: 5000)]]) == [])
        #expect(try Evaluator.strings(of: r, over: ["v": [String(repeating: "a", count: 4000)]]) == ["a"])
        let replace = try MappingExpression("replace(v, 'a', 'b')")
        #expect(try Evaluator.strings(of: replace, over: ["v": [String(repeating: "a", count: 5000)]]) == [String(repeating: "a", count: 5000)])
    }

    @Test func regexSemantics() throws {
        let cases: [(String, String, String?)] = [
            ("a|ab", "ab", "a"), ("ab|a", "ab", "ab"), ("a*?b", "aaab", "aaab"), ("(a+?)", "aaa", "a"),
            ("[^,]+", "x,y", "x"), ("\\d{2,3}", "a12345", "123"), ("^\\w+$", "ab_9", "ab_9"), ("\\s", "a b", " "),
            ("[a-c]+", "xxbcay", "bca"), ("[\\d.]+", "v1.20x", "1.20"), ("(?i)[A-Z]+", "abC", "abC"),
            ("colou?r", "color", "color"), ("\\.", "a.b", "."), ("x$", "xx", "x"), ("^$", "", ""), ("é+", "café", "é"),
            ("a", "bbb", nil), ("^b", "ab", nil), ("^", "ab", ""), ("$", "ab", ""),
            // Classes above ASCII, plain and negated (ASCII members are looked up in a bitmap, the rest in ranges).
            ("[^a]+", "aébc", "ébc"), ("[à-ÿ]+", "caféx", "é"), ("\\W+", "a é!", " é!"), ("[^à-ÿ]+", "éab", "ab"),
            // Case-insensitive classes fold beyond ASCII, both ways, plain and negated.
            ("(?i)[É]", "é", "é"), ("(?i)[é]", "É", "É"), ("(?i)[À-Ö]+", "xàÉöy", "àÉö"), ("(?i)[^É]+", "éaÉb", "a"),
            ("(?i)[Σ]+", "σΣ", "σΣ"), ("(?i)[Ж-Я]+", "ёжзЯ", "жзЯ"), ("[É]", "é", nil), ("(?i)[K]", "\u{212A}", "\u{212A}"),
        ]
        for (pattern, input, expected) in cases {
            #expect(try SafeRegex(pattern).extract(input) == expected, "\(pattern) on \(input)")
        }
    }

    /// Every match and group the backtracker finds, from every start, is the Pike VM's, over
    /// patterns with alternation, lazy and greedy loops, empty loops, anchors and classes, and
    /// every input of up to six characters from a small alphabet (plus some longer ones).
    @Test func bothEnginesFindTheSameMatchesAndGroups() throws {
        let patterns = [
            "a|ab", "(a|ab)(c|bcd)(d*)", "(a*)*b", "(a*)+$", "(a|b)*?b", "(a+?)(b*)", "^(ab|a)(b?)$", "(?:(a)|b)+",
            "((a)|(b))*c", "x*", "(a?){3}", "a{2,3}?", "[^b]+(b)", "(?i)(A+)B", "^$", "(a|)+b", ".*(a)", "(a*?)$",
        ]
        var inputs: [String] = [""]
        var frontier: [String] = [""]
        for _ in 0..<6 {
            frontier = frontier.flatMap { s in ["a", "b", "c", "B"].map { s + $0 } }
            inputs += frontier
        }
        inputs += ["aaaaaaaaaaaaaaaaaaaab", "abababababcbcd", String(repeating: "ab", count: 30) + "c"]
        var compared = 0
        for pattern in patterns {
            let r = try SafeRegex(pattern)
            for input in inputs {
                let scalars = input.unicodeScalars.map(\.value)
                let runs = scalars.withUnsafeBufferPointer { buffer in
                    [SafeRegex.Engine.backtrack, .pike].map { engine in
                        r.withSearcher(buffer, engine: engine) { s -> [[Range<Int>?]] in
                            (0...buffer.count).map { start in
                                var budget = Int.max
                                guard r.find(&s, from: start, budget: &budget) else { return [] }
                                return (0...r.groupCount).map { s.group($0) }
                            }
                        }
                    }
                }
                #expect(runs[0] == runs[1], "\(pattern) on \(input)")
                compared += 1
            }
        }
        #expect(compared == patterns.count * inputs.count)
    }
}
