import Foundation

/// A value of the mapping language: text (no value, one, or several) or a condition's outcome.
enum Value {
    case none
    case one(String)
    case many([String])
    case boolean(Bool)

    init(_ strings: [String]) {
        switch strings.count {
        case 0: self = .none
        case 1: self = .one(strings[0])
        default: self = .many(strings)
        }
    }

    /// As text; a condition's outcome reads as `true` or `false`.
    var strings: [String] {
        switch self {
        case .none: return []
        case .one(let s): return [s]
        case .many(let a): return a
        case .boolean(let b): return [b ? "true" : "false"]
        }
    }

    var first: String? {
        switch self {
        case .none: return nil
        case .one(let s): return s
        case .many(let a): return a.first
        case .boolean(let b): return b ? "true" : "false"
        }
    }

    /// Has at least one non-empty string.
    var isPresent: Bool {
        switch self {
        case .none: return false
        case .one(let s): return !s.isEmpty
        case .many(let a): return a.contains { !$0.isEmpty }
        case .boolean: return true
        }
    }

    func mapEach(_ f: (String) -> String?) -> Value {
        switch self {
        case .none, .boolean: return self
        case .one(let s): return f(s).map(Value.one) ?? .none
        case .many(let a): return Value(a.compactMap(f))
        }
    }
}

/// Why an evaluation stopped: the rule sets nothing and the reason is reported.
struct EvaluationLimit: Error {
    let reason: String
}

/// Runs one expression over one login's attributes, within a budget of work and size.
struct Evaluator {
    let attributes: [String: [String]]
    var budget: Int

    /// Most values a list may hold while evaluating.
    static let maximumValues = 256
    /// Longest string an evaluation may build, in bytes.
    static let maximumText = 65_536
    /// Longest input a regular expression reads, in Unicode scalars; longer values do not match.
    static let maximumRegexInput = 4096

    /// The non-empty pieces of `value` between occurrences of `separator` (each character when it
    /// is empty). Byte-wise: UTF-8 never matches inside another character.
    static func split(_ value: String, by separator: String) -> [String] {
        if separator.isEmpty { return value.map(String.init) }
        let bytes = Array(value.utf8), sep = Array(separator.utf8)
        var out: [String] = []
        var start = 0, i = 0
        while i + sep.count <= bytes.count {
            if bytes[i] == sep[0] && bytes[i..<(i + sep.count)].elementsEqual(sep) {
                if i > start { out.append(String(decoding: bytes[start..<i], as: UTF8.self)) }
                i += sep.count
                start = i
            } else {
                i += 1
            }
        }
        if start < bytes.count { out.append(String(decoding: bytes[start...], as: UTF8.self)) }
        return out
    }

    mutating func spend(_ units: Int) throws(EvaluationLimit) {
        budget -= units
        if budget < 0 { throw EvaluationLimit(reason: "the rule did more work than a mapping rule may (\(CompiledMapping.ruleBudget) steps)") }
    }

    func checked(_ values: [String]) throws(EvaluationLimit) -> Value {
        guard values.count <= Self.maximumValues else { throw EvaluationLimit(reason: "more than \(Self.maximumValues) values") }
        return Value(values)
    }

    func checkedText(_ s: String) throws(EvaluationLimit) -> String {
        guard s.utf8.count <= Self.maximumText else { throw EvaluationLimit(reason: "a value grew past \(Self.maximumText) bytes") }
        return s
    }

    func lookup(_ name: String) -> Value {
        guard let values = attributes[name] else { return .none }
        return Value(values)
    }

    mutating func evaluate(_ node: Node) throws(EvaluationLimit) -> Value {
        try spend(1)
        switch node.kind {
        case .text(let v): return Value(v)
        case .boolean(let b): return .boolean(b)
        case .attribute(let name): return lookup(name)
        case .template(let pieces):
            var out = ""
            for p in pieces {
                out += p.literal
                if let a = p.attribute, let v = attributes[a]?.first { out += v }
                _ = try checkedText(out)
            }
            return .one(out)
        case .list(let items):
            var all: [String] = []
            for item in items { all += try evaluate(item).strings }
            return try checked(all)
        case .table, .regex, .replacement:
            // Only ever an argument of map(), extract() or replace(), which read them directly.
            return .none
        case .not(let a): return .boolean(!(try condition(a)))
        case .and(let a, let b):
            guard try condition(a) else { return .boolean(false) }
            return .boolean(try condition(b))
        case .or(let a, let b):
            if try condition(a) { return .boolean(true) }
            return .boolean(try condition(b))
        case .compare(let op, let a, let b):
            let left = try evaluate(a), right = try evaluate(b)
            switch op {
            case .equal: return .boolean((left.first ?? "") == (right.first ?? ""))
            case .notEqual: return .boolean((left.first ?? "") != (right.first ?? ""))
            case .contains:
                let wanted = right.strings
                return .boolean(left.strings.contains { wanted.contains($0) })
            }
        case .matches(let a, let regex):
            for v in try evaluate(a).strings {
                guard let input = regexInput(v) else { continue }
                let found = regex.firstMatch(in: input, from: 0, budget: &budget) != nil
                try overBudget()
                if found { return .boolean(true) }
            }
            return .boolean(false)
        case .conditional(let c, let yes, let no):
            return try condition(c) ? evaluate(yes) : evaluate(no)
        case .call(let f, let args):
            return try call(f, args)
        }
    }

    mutating func condition(_ node: Node) throws(EvaluationLimit) -> Bool {
        if case .boolean(let b) = try evaluate(node) { return b }
        return false  // unreachable: the parser admits only conditions here
    }

    /// The scalars a regular expression may read, or `nil` for a value too long to match.
    func regexInput(_ value: String) -> [UInt32]? {
        guard value.utf8.count <= 4 * Self.maximumRegexInput else { return nil }
        var scalars: [UInt32] = []
        scalars.reserveCapacity(value.utf8.count)
        for c in value.unicodeScalars { scalars.append(c.value) }
        return scalars.count <= Self.maximumRegexInput ? scalars : nil
    }

    mutating func overBudget() throws(EvaluationLimit) {
        if budget < 0 { throw EvaluationLimit(reason: "the rule did more work than a mapping rule may (\(CompiledMapping.ruleBudget) steps)") }
    }

    mutating func call(_ f: Function, _ args: [Node]) throws(EvaluationLimit) -> Value {
        switch f {
        case .attr:
            return .none  // compiled to an attribute read
        case .first:
            for a in args {
                let v = try evaluate(a)
                if v.isPresent { return v }
            }
            return .none
        case .present:
            return .boolean(try evaluate(args[0]).isPresent)
        case .head:
            return try evaluate(args[0]).first.map(Value.one) ?? .none
        case .lower:
            return try evaluate(args[0]).mapEach { $0.asciiFastLowercased() }
        case .upper:
            return try evaluate(args[0]).mapEach { $0.asciiFastUppercased() }
        case .trim:
            return try evaluate(args[0]).mapEach { $0.trimmingWhitespace() }
        case .split:
            guard case .text(let sep) = args[1].kind, let separator = sep.first else { return .none }
            var out: [String] = []
            for v in try evaluate(args[0]).strings {
                out += Self.split(v, by: separator)
                guard out.count <= Self.maximumValues else { throw EvaluationLimit(reason: "split() made more than \(Self.maximumValues) values") }
            }
            return Value(out)
        case .join:
            guard case .text(let sep) = args[1].kind, let separator = sep.first else { return .none }
            let values = try evaluate(args[0]).strings
            guard !values.isEmpty else { return .none }
            return .one(try checkedText(values.joined(separator: separator)))
        case .extract:
            guard case .regex(let regex) = args[1].kind else { return .none }
            var out: [String] = []
            for v in try evaluate(args[0]).strings {
                guard let input = regexInput(v) else { continue }
                let found = regex.extract(input, budget: &budget)
                try overBudget()
                if let found { out.append(found) }
            }
            return try checked(out)
        case .replace:
            guard case .regex(let regex) = args[1].kind, case .replacement(let template) = args[2].kind else { return .none }
            var out: [String] = []
            for v in try evaluate(args[0]).strings {
                // A value too long for the regular expression is kept as it is.
                guard let input = regexInput(v) else {
                    out.append(v)
                    continue
                }
                let replaced = regex.replaceAll(input, with: template, budget: &budget)
                try overBudget()
                out.append(try checkedText(replaced ?? v))
            }
            return try checked(out)
        case .map:
            guard case .table(let table) = args[1].kind else { return .none }
            var fallback: String? = nil
            if args.count == 3, case .text(let d) = args[2].kind { fallback = d.first }
            return try evaluate(args[0]).mapEach { table[$0] ?? fallback }
        }
    }
}

extension String {
    /// `lowercased()`, with ASCII text (nearly every value) mapped byte by byte: the same result
    /// without Unicode case tables.
    func asciiFastLowercased() -> String { asciiCaseMapped(from: 0x41...0x5A) ?? lowercased() }

    /// `uppercased()`, likewise.
    func asciiFastUppercased() -> String { asciiCaseMapped(from: 0x61...0x7A) ?? uppercased() }

    /// Flips the case of bytes in `range` (A-Z or a-z); `nil` when the text is not all ASCII.
    private func asciiCaseMapped(from range: ClosedRange<UInt8>) -> String? {
        var needed = false
        for b in utf8 {
            if b >= 0x80 { return nil }
            if range.contains(b) { needed = true }
        }
        guard needed else { return self }
        return String(unsafeUninitializedCapacity: utf8.count) { buffer in
            var i = 0
            for b in utf8 {
                buffer[i] = range.contains(b) ? b ^ 0x20 : b
                i += 1
            }
            return i
        }
    }
}
