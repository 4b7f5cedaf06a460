import Foundation
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
    public final class Rule: @unchecked Sendable {  // immutable after init
        public let target: String
        public let expression: MappingExpression
        public let update: AttributeMapping.Update
        let kind: TargetKind
        /// The expression's program, held by `expression`: read without counting a reference.
        let program: Unmanaged<Program>
        /// For each of the expression's inputs, its slot among the mapping's `names` (owned here, so
        /// evaluation reads it without counting references).
        let slotOfInput: UnsafeMutableBufferPointer<Int32>

        init(target: String, expression: MappingExpression, update: AttributeMapping.Update, kind: TargetKind, slotOfInput: [Int32]) {
            self.target = target
            self.expression = expression
            self.update = update
            self.kind = kind
            self.program = .passUnretained(expression.program)
            self.slotOfInput = .allocate(capacity: max(slotOfInput.count, 1))
            _ = self.slotOfInput.initialize(from: slotOfInput)
        }

        deinit { slotOfInput.deallocate() }
    }

    /// Plain data (no strings), so reading it counts no references.
    enum TargetKind: Sendable {
        case text, boolean, email, groups
        case custom(CustomAttribute.Kind, maximumLength: Int)
    }

    public let rules: [Rule]
    /// `rules` again, read without counting references while applying.
    let unretainedRules: [Unmanaged<Rule>]
    public let mapping: AttributeMapping
    /// Every upstream attribute name the rules read, each once: a login looks each up once.
    let names: [String]
    /// `names` by their bytes.
    let nameIndex: NameIndex
    let layout: ResultLayout

    /// Longest value a pool attribute may take, in bytes; a longer one is not set (never cut: a cut
    /// email address is somebody else's).
    public static let maximumValueLength = 2048
    /// Most groups one login may map to.
    public static let maximumGroups = 256
    /// Work one rule may do: syntax nodes visited plus regular-expression steps.
    public static let ruleBudget = 2_000_000
    /// Most a login's attributes may hold of what the rules read, each value counting its UTF-8
    /// bytes and one more: past it every rule fails (a value's place is an `Int32`, and no
    /// provider sends this much of what a mapping reads).
    public static let maximumInput = 1 << 20
    static let inputTooLarge = "the login's attributes that this mapping reads hold more than 1 MiB"

    public init(_ mapping: AttributeMapping, customAttributes: [CustomAttribute] = []) throws(MappingError) {
        let declared = Dictionary(customAttributes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var rules: [Rule] = []
        var names: [String] = []
        var slots: [String: Int32] = [:]
        var targets: Set<String> = []
        for rule in mapping.rules {
            let t = rule.target
            guard targets.insert(t).inserted else { throw MappingError(target: t, "more than one rule sets '\(t)'") }
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
                kind = .custom(custom.type, maximumLength: custom.maximumLength)
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
            if let name = expression.inputs.first(where: { !StreamSafeText.check($0) }) {
                throw MappingError(target: t, "the attribute name '\(name.prefix(40))…' runs more than \(StreamSafeText.maximumRun) combining marks together")
            }
            let slotOfInput = expression.inputs.map { name -> Int32 in
                if let slot = slots[name] { return slot }
                names.append(name)
                slots[name] = Int32(names.count - 1)
                return Int32(names.count - 1)
            }
            rules.append(Rule(target: t, expression: expression, update: rule.update, kind: kind, slotOfInput: slotOfInput))
        }
        self.rules = rules
        self.unretainedRules = rules.map { .passUnretained($0) }
        self.mapping = mapping
        self.names = names
        self.nameIndex = NameIndex(names)
        self.layout = ResultLayout(rules)
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
        let rules = self.unretainedRules, layout = self.layout
        let result = withScratch(attributes) { slots, scratch in
            var builder = ResultBuilder(layout)
            let bytes = scratch.byteCount, texts = scratch.textCount
            layout.positions.withUnsafeBufferPointer { positions in
                for k in rules.indices {
                    rules[k]._withUnsafeGuaranteedRef { rule in  // `rules` holds every rule for the whole call
                        builder.record(rule, at: positions[k], Self.run(rule, slots, &scratch))
                    }
                    // The outcome is strings now: the next rule reuses what this one wrote.
                    scratch.truncate(bytes: bytes, texts: texts)
                }
            }
            return builder.finish()
        }
        return result ?? Self.everyRuleFailed(self.rules, layout)
    }

    /// `apply`, with every rule's inputs and output, for an admin's preview.
    public func explain(_ attributes: [String: [String]]) -> (result: Result, outcomes: [RuleOutcome]) {
        let rules = self.rules, layout = self.layout
        let explained = withScratch(attributes) { slots, scratch -> (result: Result, outcomes: [RuleOutcome]) in
            var builder = ResultBuilder(layout)
            var outcomes: [RuleOutcome] = []
            let bytes = scratch.byteCount, texts = scratch.textCount
            for (k, rule) in rules.enumerated() {
                let outcome = Self.run(rule, slots, &scratch)
                scratch.truncate(bytes: bytes, texts: texts)
                builder.record(rule, at: layout.positions[k], outcome)
                outcomes.append(RuleOutcome(target: rule.target, update: rule.update, inputs: Self.inputs(of: rule, in: attributes), output: outcome.values, failure: outcome.failure))
            }
            return (builder.finish(), outcomes)
        }
        return explained ?? (Self.everyRuleFailed(rules, layout), rules.map { rule in
            RuleOutcome(target: rule.target, update: rule.update, inputs: Self.inputs(of: rule, in: attributes), output: [], failure: Self.inputTooLarge)
        })
    }

    private static func inputs(of rule: Rule, in attributes: [String: [String]]) -> [String: [String]] {
        var inputs: [String: [String]] = [:]
        for name in rule.expression.inputs { inputs[name] = attributes[name] ?? [] }
        return inputs
    }

    /// The result when the login's attributes are too large to read: every rule failed.
    private static func everyRuleFailed(_ rules: [Rule], _ layout: ResultLayout) -> Result {
        var builder = ResultBuilder(layout)
        for (k, rule) in rules.enumerated() { builder.record(rule, at: layout.positions[k], .failure(inputTooLarge)) }
        return builder.finish()
    }

    /// Runs `body` with the login's values of every name in `names` (read once, in order, and
    /// copied into the scratch the rules work in), and the scratch, freed afterwards; `nil` without
    /// calling it when those values hold more than `maximumInput`.
    private func withScratch<R>(_ attributes: [String: [String]], _ body: (UnsafePointer<Value>, inout Scratch) -> R) -> R? {
        let names = self.names, nameIndex = self.nameIndex
        // A typical login fits in the first kilobyte, on the stack; more moves to the heap.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1024) { bytes in
            withUnsafeTemporaryAllocation(of: Text.self, capacity: 64) { texts in
                var scratch = Scratch(lending: bytes, texts)
                defer { scratch.deallocate() }
                return withUnsafeTemporaryAllocation(of: Value.self, capacity: max(names.count, 1)) { buffer -> R? in
                    let slots = buffer.baseAddress!
                    slots.initialize(repeating: .none, count: names.count)
                    var size = 0
                    /// Reads `values` into `slot`, unless they pass what a login may hold in all.
                    func read(_ values: [String], into slot: Int) -> Bool {
                        size += values.count
                        for v in values { size += v.utf8.count }
                        guard size <= Self.maximumInput else { return false }
                        slots[slot] = scratch.value(of: values)
                        return true
                    }
                    if attributes.count <= 2 * names.count {
                        // A login with not many more attributes than the rules read (the usual
                        // case): walk its attributes, each name found by its bytes.
                        for (name, values) in attributes {
                            if let slot = nameIndex.slot(of: name), !read(values, into: slot) { return nil }
                        }
                    } else {
                        for (i, name) in names.enumerated() {
                            if let values = attributes[name], !read(values, into: i) { return nil }
                        }
                    }
                    return body(slots, &scratch)
                }
            }
        }
    }

    /// The slots of a mapping's upstream names, found by the bytes of a name (no string hashing).
    /// Names are kept composed (NFC), and a non-ASCII name is composed before it is looked up, so a
    /// name is found whichever canonically equivalent form it comes in, as a dictionary finds it.
    final class NameIndex: @unchecked Sendable {  // immutable after init
        let pool: UnsafeMutableBufferPointer<UInt8>
        let table: ByteTable<Int32>

        init(_ names: [String]) {
            var bytes: [UInt8] = []
            var pairs: [(key: Text, value: Int32)] = []
            for (slot, name) in names.enumerated() {
                let composed = name.precomposedStringWithCanonicalMapping
                pairs.append((Text(start: Int32(bytes.count), count: Int32(composed.utf8.count), inPool: true), Int32(slot)))
                bytes += composed.utf8
            }
            table = ByteTable(pairs, pool: bytes)
            pool = .allocate(capacity: max(bytes.count, 1))
            _ = pool.initialize(from: bytes)
        }

        deinit { pool.deallocate() }

        func slot(of name: String) -> Int? {
            let pool = UnsafePointer(self.pool.baseAddress)
            var copy = name
            return copy.withUTF8 { utf8 -> Int32? in
                if ASCIIScan.isASCII(utf8) { return table.value(for: utf8, pool: pool) }
                // The mapping's names are stream-safe (see `StreamSafeText`), so a name that is not
                // is none of them, and composing it could take time growing with its square.
                guard StreamSafeText.check(utf8: utf8) else { return nil }
                var composed = name.precomposedStringWithCanonicalMapping
                return composed.withUTF8 { table.value(for: $0, pool: pool) }
            }.map(Int.init)
        }
    }

    /// What one rule made of one login.
    enum Outcome {
        /// The sources were empty: the rule sets nothing, and that is no fault.
        case unset
        case value(String)
        /// A `groups` rule's pool groups.
        case groups([String])
        /// The rule ran but sets nothing, for this reason.
        case failure(String)

        var values: [String] {
            switch self {
            case .unset, .failure: []
            case .value(let v): [v]
            case .groups(let g): g
            }
        }

        var failure: String? {
            if case .failure(let reason) = self { reason } else { nil }
        }
    }

    /// Where each rule's value goes in a result: the result's two attribute dictionaries start as
    /// copies of dictionaries that already hold every target (with empty values), so a login's
    /// values are stored by position, without hashing the targets again; the targets a login
    /// leaves unset are removed at the end.
    final class ResultLayout: @unchecked Sendable {  // immutable after init
        let everyLogin: [String: String]
        let firstLogin: [String: String]
        /// Per rule, its position in the dictionary its update policy selects (`nil` for groups).
        let positions: [Dictionary<String, String>.Index?]

        init(_ rules: [Rule]) {
            var every: [String: String] = [:], first: [String: String] = [:]
            for rule in rules {
                if case .groups = rule.kind { continue }
                switch rule.update {
                case .everyLogin: every[rule.target] = ""
                case .firstLogin: first[rule.target] = ""
                }
            }
            everyLogin = every
            firstLogin = first
            positions = rules.map { rule in
                if case .groups = rule.kind { return nil }
                return rule.update == .everyLogin ? every.index(forKey: rule.target) : first.index(forKey: rule.target)
            }
        }
    }

    /// Collects rule outcomes into the result.
    private struct ResultBuilder {
        var result = Result()
        var unset: [(AttributeMapping.Update, String)] = []

        init(_ layout: ResultLayout) {
            result.attributes = layout.everyLogin
            result.initialAttributes = layout.firstLogin
        }

        mutating func record(_ rule: Rule, at position: Dictionary<String, String>.Index?, _ outcome: consuming Outcome) {
            switch consume outcome {
            case .groups(let g):
                result.groups = g
                result.groupsUpdate = rule.update
                return
            case .value(let value):
                guard let position else { return }  // only groups rules have no position
                switch rule.update {
                case .everyLogin: result.attributes.values[position] = value
                case .firstLogin: result.initialAttributes.values[position] = value
                }
                return
            case .failure(let reason): result.failures[rule.target] = reason
            case .unset: break
            }
            if position != nil { unset.append((rule.update, rule.target)) }
        }

        /// The result, without the targets no rule set. Removing changes positions, so it comes last.
        mutating func finish() -> Result {
            for (update, target) in unset {
                switch update {
                case .everyLogin: result.attributes.removeValue(forKey: target)
                case .firstLogin: result.initialAttributes.removeValue(forKey: target)
                }
            }
            return result
        }
    }

    /// The rule's value after its target's typing, or why it has none.
    static func run(_ rule: Rule, _ slots: UnsafePointer<Value>, _ scratch: inout Scratch) -> Outcome {
        var evaluator = rule.program._withUnsafeGuaranteedRef {
            Evaluator(program: $0, slots: slots, slotOfInput: UnsafePointer(rule.slotOfInput.baseAddress!), scratch: scratch, budget: ruleBudget)
        }
        defer { scratch = evaluator.scratch }
        let value: Value
        do {
            value = try evaluator.run()
        } catch {
            return .failure(error.reason)
        }
        // The common cases, one value for a text, email, boolean or custom string or boolean attribute,
        // read in place.
        if case .one(var single) = value {
            switch rule.kind {
            case .text, .email:
                if case .email = rule.kind { single = evaluator.trimmed(single) }  // may write to the scratch
                guard single.count > 0 else { return .unset }
                guard single.count <= maximumValueLength else { return .failure("longer than \(maximumValueLength) bytes") }
                return .value(evaluator.scratch.string(single))
            case .boolean:
                return .value(boolean(utf8: evaluator.scratch.view(single)) == true ? "true" : "false")
            case .custom(.string, let maximumLength):
                guard single.count > 0 else { return .unset }
                guard single.count <= maximumLength else { return .failure("longer than \(maximumLength) bytes") }
                return .value(evaluator.scratch.string(single))
            case .custom(.boolean, _):
                guard single.count > 0 else { return .unset }
                guard let b = boolean(utf8: evaluator.scratch.view(single)) else { return .failure("not a boolean") }
                return .value(b ? "true" : "false")
            default: break
            }
        }
        // Read only from here on, so a copy of the scratch stays valid.
        let s = evaluator.scratch
        if case .groups = rule.kind {
            // Kept: non-empty, at most 128 bytes, each once (as Swift's strings judge sameness).
            // A few are compared one by one, more through a set, and it stops once past the
            // limit, so a huge upstream list costs linear time.
            var kept: [String] = []
            var seen: Set<String>? = nil
            s.forEach(value) { t in
                guard kept.count <= maximumGroups, t.count > 0, t.count <= 128 else { return }
                let group = s.string(t)
                if seen != nil {
                    if seen!.insert(group).inserted { kept.append(group) }
                } else if !kept.contains(group) {
                    kept.append(group)
                    if kept.count > 16 { seen = Set(kept) }
                }
            }
            guard kept.count <= maximumGroups else { return .failure("more than \(maximumGroups) groups") }
            return .groups(kept)
        }
        var values = s.strings(value)
        switch rule.kind {
        case .groups:
            return .unset  // handled above
        case .boolean:
            guard let v = values.first else { return .unset }
            return .value(Self.boolean(v) == true ? "true" : "false")
        case .email:
            values = values.map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
        case .custom(let type, let maximumLength):
            values = values.filter { !$0.isEmpty }
            guard let v = values.first else { return .unset }
            switch type {
            case .string:
                let text = values.count == 1 ? v : JSONValue.serialize(.array(values.map(JSONValue.string)))
                guard text.utf8.count <= maximumLength else { return .failure("longer than \(maximumLength) bytes") }
                return .value(text)
            case .number:
                guard values.count == 1 else { return .failure("a number takes one value, not \(values.count)") }
                guard let n = Double(v.trimmingWhitespace()), n.isFinite else { return .failure("not a number") }
                return .value(n == n.rounded() && abs(n) < 1e15 ? String(Int64(n)) : String(n))
            case .boolean:
                guard values.count == 1 else { return .failure("a boolean takes one value, not \(values.count)") }
                guard let b = Self.boolean(v) else { return .failure("not a boolean") }
                return .value(b ? "true" : "false")
            }
        case .text:
            values = values.filter { !$0.isEmpty }
        }
        guard !values.isEmpty else { return .unset }
        // Several values are kept as a JSON array text, as Cognito stores multi-valued SAML attributes.
        return checkedLength(values.count == 1 ? values[0] : JSONValue.serialize(.array(values.map(JSONValue.string))))
    }

    static func checkedLength(_ text: String) -> Outcome {
        text.utf8.count <= maximumValueLength ? .value(text) : .failure("longer than \(maximumValueLength) bytes")
    }

    /// `true` for "true" or "1", `false` for "false" or "0" (any case, surrounding whitespace
    /// ignored), `nil` for anything else.
    static func boolean(_ v: String) -> Bool? {
        var copy = v
        return copy.withUTF8 { boolean(utf8: $0) }
    }

    static func boolean(utf8 v: UnsafeBufferPointer<UInt8>) -> Bool? {
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }
        var start = 0, end = v.count
        while start < end, isSpace(v[start]) { start += 1 }
        while start < end, isSpace(v[end - 1]) { end -= 1 }
        if (start < end && v[start] >= 0x80) || (start < end && v[end - 1] >= 0x80) {
            // Unicode space around the word, or not a word at all.
            let trimmed = String(decoding: v, as: UTF8.self).trimmingWhitespace()
            guard trimmed.utf8.allSatisfy({ $0 < 0x80 }) else { return nil }
            return boolean(trimmed)
        }
        func isWord(_ word: StaticString) -> Bool {
            guard end - start == word.utf8CodeUnitCount else { return false }
            for k in 0..<(end - start) {
                let a = v[start + k], b: UInt8 = word.utf8Start[k]
                guard a == b || (a >= 0x41 && a <= 0x5A && a | 0x20 == b) else { return false }
            }
            return true
        }
        if isWord("true") || isWord("1") { return true }
        if isWord("false") || isWord("0") { return false }
        return nil
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
        // Most values have nothing to trim, and most that do have ASCII spaces: look at the bytes
        // of the ends before any Unicode work.
        func isASCIISpace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }
        var copy = self
        let trimmed = copy.withUTF8 { bytes -> String?? in
            var start = 0, end = bytes.count
            while start < end, isASCIISpace(bytes[start]) { start += 1 }
            while start < end, isASCIISpace(bytes[end - 1]) { end -= 1 }
            guard start == end || (bytes[start] < 0x80 && bytes[end - 1] < 0x80) else { return nil }  // Unicode work needed
            if start == 0 && end == bytes.count { return .some(nil) }  // nothing to trim
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
        }
        if let trimmed { return trimmed ?? self }
        func isSpace(_ c: Unicode.Scalar) -> Bool {
            c.isASCII ? (c == " " || (c.value >= 0x09 && c.value <= 0x0D)) : c.properties.isWhitespace
        }
        var s = Substring(self).unicodeScalars
        while let f = s.first, isSpace(f) { s.removeFirst() }
        while let l = s.last, isSpace(l) { s.removeLast() }
        return String(s)
    }
}
