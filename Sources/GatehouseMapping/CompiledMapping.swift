public import GatehouseCore

/// An attribute mapping checked and compiled against its pool's declared custom attributes: what a
/// login applies and what a preview explains.
///
/// Compiling refuses every fault an admin could fix (an unknown target, an undeclared custom
/// attribute, a syntax or type error, an invalid regular expression) with the rule and position.
/// Applying never fails as a whole: a rule that cannot produce a valid value (a value of the wrong
/// type, too long, or over its evaluation budget) leaves its attribute unset and is reported.
///
/// Immutable and `Sendable`; apply it from any number of threads.
public struct CompiledMapping: Sendable {
    /// One compiled rule; a class so applying a mapping passes rules without copying them.
    public final class Rule: Sendable {
        public let target: String
        public let expression: MappingExpression
        public let update: AttributeMapping.Update
        let kind: TargetKind

        init(target: String, expression: MappingExpression, update: AttributeMapping.Update, kind: TargetKind) {
            self.target = target
            self.expression = expression
            self.update = update
            self.kind = kind
        }
    }

    enum TargetKind: Sendable {
        case text, boolean, email, groups
        case custom(CustomAttribute)
    }

    public let rules: [Rule]
    public let mapping: AttributeMapping

    /// Longest value a pool attribute may take, in bytes; a longer one is not set (never cut: a cut
    /// email address is somebody else's).
    public static let maximumValueLength = 2048
    /// Most groups one login may map to.
    public static let maximumGroups = 256
    /// Work one rule may do: syntax nodes visited plus regular-expression steps.
    public static let ruleBudget = 2_000_000

    public init(_ mapping: AttributeMapping, customAttributes: [CustomAttribute] = []) throws(MappingError) {
        let declared = Dictionary(customAttributes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var rules: [Rule] = []
        for rule in mapping.rules {
            let t = rule.target
            let kind: TargetKind
            if t == AttributeMapping.groupsTarget {
                kind = .groups
            } else if t == "email" {
                kind = .email
            } else if t == "email_verified" || t == "phone_number_verified" {
                kind = .boolean
            } else if AttributeMapping.standardAttributes.contains(t) {
                kind = .text
            } else if let custom = declared[t] {
                kind = .custom(custom)
            } else if t.hasPrefix("custom:") {
                throw MappingError(target: t, "the pool declares no custom attribute '\(t)'")
            } else {
                throw MappingError(target: t, "unknown pool attribute (standard claims, groups, or a declared custom:*)")
            }
            let expression: MappingExpression
            switch rule.source {
            case .attribute(let name):
                guard !name.isEmpty, name.utf8.count <= 512 else { throw MappingError(target: t, "an attribute name is 1-512 characters") }
                expression = MappingExpression(attribute: name)
            case .expression(let text):
                do {
                    expression = try MappingExpression(text)
                } catch {
                    var e = error
                    e.target = t
                    throw e
                }
            }
            rules.append(Rule(target: t, expression: expression, update: rule.update, kind: kind))
        }
        self.rules = rules
        self.mapping = mapping
    }

    /// What one rule made of one login: the attributes it read, and its value or why it has none.
    public struct RuleOutcome: Sendable, Equatable {
        public let target: String
        public let update: AttributeMapping.Update
        public let inputs: [String: [String]]
        /// The values produced (one, several for groups, none when the sources were empty).
        public let output: [String]
        /// Why the rule set nothing although it ran, if it failed.
        public let failure: String?
    }

    /// The canonical user a login yields.
    public struct Result: Sendable, Equatable {
        /// Applied at every login.
        public var attributes: [String: String] = [:]
        /// Applied only when the user is created.
        public var initialAttributes: [String: String] = [:]
        /// The pool groups named by a `groups` rule (`nil` without one), and when they apply.
        public var groups: [String]? = nil
        public var groupsUpdate: AttributeMapping.Update = .everyLogin
        /// Rules that ran but set nothing, with the reason.
        public var failures: [String: String] = [:]
    }

    public func apply(_ attributes: [String: [String]]) -> Result {
        var builder = ResultBuilder()
        for rule in rules {
            let (values, failure) = Self.run(rule, attributes)
            builder.record(rule, values, failure)
        }
        return builder.result
    }

    /// `apply`, with every rule's inputs and output, for an admin's preview.
    public func explain(_ attributes: [String: [String]]) -> (result: Result, outcomes: [RuleOutcome]) {
        var builder = ResultBuilder()
        var outcomes: [RuleOutcome] = []
        for rule in rules {
            let (values, failure) = Self.run(rule, attributes)
            builder.record(rule, values, failure)
            var inputs: [String: [String]] = [:]
            for name in rule.expression.inputs { inputs[name] = attributes[name] ?? [] }
            outcomes.append(RuleOutcome(target: rule.target, update: rule.update, inputs: inputs, output: values, failure: failure))
        }
        return (builder.result, outcomes)
    }

    /// Collects rule outcomes as pairs and builds each dictionary once, at its final size.
    private struct ResultBuilder {
        var everyLogin: [(String, String)] = []
        var firstLogin: [(String, String)] = []
        var failures: [(String, String)] = []
        var groups: [String]? = nil
        var groupsUpdate = AttributeMapping.Update.everyLogin

        mutating func record(_ rule: Rule, _ values: [String], _ failure: String?) {
            if let failure {
                failures.append((rule.target, failure))
                return
            }
            if case .groups = rule.kind {
                groups = values
                groupsUpdate = rule.update
                return
            }
            guard let value = values.first else { return }
            switch rule.update {
            case .everyLogin: everyLogin.append((rule.target, value))
            case .firstLogin: firstLogin.append((rule.target, value))
            }
        }

        /// Targets are unique in a mapping, so the pairs make dictionaries without collisions.
        var result: Result {
            Result(
                attributes: Dictionary(everyLogin, uniquingKeysWith: { a, _ in a }),
                initialAttributes: Dictionary(firstLogin, uniquingKeysWith: { a, _ in a }),
                groups: groups, groupsUpdate: groupsUpdate, failures: Dictionary(failures, uniquingKeysWith: { a, _ in a }))
        }
    }

    /// The rule's value(s) after its target's typing, or the reason it has none.
    static func run(_ rule: Rule, _ attributes: [String: [String]]) -> ([String], String?) {
        var evaluator = Evaluator(attributes: attributes, budget: ruleBudget)
        let value: Value
        do {
            value = try evaluator.evaluate(rule.expression.root)
        } catch {
            return ([], error.reason)
        }
        // The common case, one value for a plain text attribute, without building lists.
        if case .one(let single) = value, case .text = rule.kind {
            guard !single.isEmpty else { return ([], nil) }
            guard single.utf8.count <= maximumValueLength else { return ([], "longer than \(maximumValueLength) bytes") }
            return ([single], nil)
        }
        var values = value.strings
        switch rule.kind {
        case .groups:
            var kept: [String] = []
            kept.reserveCapacity(values.count)
            for v in values where !v.isEmpty && v.utf8.count <= 128 && !kept.contains(v) { kept.append(v) }
            values = kept
            guard values.count <= maximumGroups else { return ([], "more than \(maximumGroups) groups") }
            return (values, nil)
        case .boolean:
            guard let v = values.first else { return ([], nil) }
            return ([Self.isTrue(v) ? "true" : "false"], nil)
        case .email:
            values = values.map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
        case .custom(let declared):
            values = values.filter { !$0.isEmpty }
            guard let v = values.first else { return ([], nil) }
            switch declared.type {
            case .string:
                let text = values.count == 1 ? v : JSONValue.serialize(.array(values.map(JSONValue.string)))
                guard text.utf8.count <= declared.maximumLength else { return ([], "longer than \(declared.maximumLength) bytes") }
                return ([text], nil)
            case .number:
                guard values.count == 1 else { return ([], "a number takes one value, not \(values.count)") }
                guard let n = Double(v.trimmingWhitespace()), n.isFinite else { return ([], "not a number") }
                return ([n == n.rounded() && abs(n) < 1e15 ? String(Int64(n)) : String(n)], nil)
            case .boolean:
                guard values.count == 1 else { return ([], "a boolean takes one value, not \(values.count)") }
                let l = v.trimmingWhitespace().lowercased()
                guard ["true", "false", "1", "0"].contains(l) else { return ([], "not a boolean") }
                return ([Self.isTrue(l) ? "true" : "false"], nil)
            }
        case .text:
            values = values.filter { !$0.isEmpty }
        }
        guard !values.isEmpty else { return ([], nil) }
        // Several values are kept as a JSON array text, as Cognito stores multi-valued SAML attributes.
        let text = values.count == 1 ? values[0] : JSONValue.serialize(.array(values.map(JSONValue.string)))
        guard text.utf8.count <= maximumValueLength else { return ([], "longer than \(maximumValueLength) bytes") }
        return ([text], nil)
    }

    static func isTrue(_ v: String) -> Bool {
        let l = v.trimmingWhitespace().lowercased()
        return l == "true" || l == "1"
    }

}

/// Turns a verified upstream identity into pool attributes with a compiled mapping; the username
/// rule for federated users.
public enum AttributeMapper {
    /// The username Gatehouse gives a user created from a federated login: `{provider}_{subject}`,
    /// as Cognito does. Deterministic, so concurrent first logins of one identity agree on it.
    public static func username(for identity: VerifiedIdentity) -> String {
        "\(identity.providerName)_\(identity.upstreamSubject)"
    }
}

extension String {
    func trimmingWhitespace() -> String {
        // Most values have nothing to trim: check the ends' bytes before any Unicode work.
        let utf8 = self.utf8
        if let f = utf8.first, let l = utf8.last, f > 0x20, f < 0x80, l > 0x20, l < 0x80 { return self }
        func isSpace(_ c: Unicode.Scalar) -> Bool {
            c.isASCII ? (c == " " || (c.value >= 0x09 && c.value <= 0x0D)) : c.properties.isWhitespace
        }
        var s = Substring(self).unicodeScalars
        while let f = s.first, isSpace(f) { s.removeFirst() }
        while let l = s.last, isSpace(l) { s.removeLast() }
        return String(s)
    }
}
