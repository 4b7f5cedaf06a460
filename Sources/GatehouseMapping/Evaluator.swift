import Foundation

/// A value of the mapping language: text (no value, one, or several) or a condition's outcome.
enum Value: Sendable {
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

    /// Calls `body` with each string, as `strings` lists them, without building the list.
    func forEachString<E: Error>(_ body: (String) throws(E) -> Void) throws(E) {
        switch self {
        case .none: return
        case .one(let s): try body(s)
        case .many(let a): for s in a { try body(s) }
        case .boolean(let b): try body(b ? "true" : "false")
        }
    }

    func appendStrings(to list: inout [String]) {
        switch self {
        case .none: return
        case .one(let s): list.append(s)
        case .many(let a): list += a
        case .boolean(let b): list.append(b ? "true" : "false")
        }
    }

    /// Whether any of these strings is one of `other`'s.
    func containsAny(of other: Value) -> Bool {
        switch other {
        case .none: return false
        case .one(let wanted): return contains(wanted)
        default: return other.strings.contains { contains($0) }
        }
    }

    func contains(_ wanted: String) -> Bool {
        switch self {
        case .none: return false
        case .one(let s): return s == wanted
        case .many(let a): return a.contains(wanted)
        case .boolean(let b): return (b ? "true" : "false") == wanted
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

/// Runs one lowered expression over one login's attributes, within a budget of work and size.
///
/// The login's attributes arrive as slots, looked up once per login for every name the mapping
/// reads (`CompiledMapping.names`); `slotOfInput` says which slot holds each of this expression's
/// inputs.
struct Evaluator {
    let program: Program
    let slots: UnsafeBufferPointer<[String]?>
    let slotOfInput: [Int32]
    var budget: Int

    /// Most values a list may hold while evaluating.
    static let maximumValues = 256
    /// Longest string an evaluation may build, in bytes.
    static let maximumText = 65_536

    /// `expression` evaluated over `attributes` on its own (tests and one-off checks; a mapping
    /// looks its names up once for all its rules).
    static func evaluate(_ expression: MappingExpression, over attributes: [String: [String]]) throws(EvaluationLimit) -> Value {
        let values = expression.inputs.map { attributes[$0] }
        return try values.withUnsafeBufferPointer { slots throws(EvaluationLimit) -> Value in
            var evaluator = Evaluator(
                program: expression.program, slots: slots, slotOfInput: (0..<Int32(values.count)).map { $0 }, budget: CompiledMapping.ruleBudget)
            return try evaluator.run()
        }
    }

    /// The non-empty pieces of `value` between occurrences of `separator` (each character when it
    /// is empty). Byte-wise: UTF-8 never matches inside another character.
    static func split(_ value: String, by separator: String) -> [String] {
        if separator.isEmpty { return value.map(String.init) }
        var value = value, separator = separator
        return value.withUTF8 { bytes in
            separator.withUTF8 { sep in
                var out: [String] = []
                var start = 0, i = 0
                while i + sep.count <= bytes.count {
                    if bytes[i] == sep[0] && memcmp(bytes.baseAddress! + i, sep.baseAddress!, sep.count) == 0 {
                        if i > start { out.append(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)) }
                        i += sep.count
                        start = i
                    } else {
                        i += 1
                    }
                }
                if start < bytes.count { out.append(String(decoding: UnsafeBufferPointer(rebasing: bytes[start...]), as: UTF8.self)) }
                return out
            }
        }
    }

    mutating func run() throws(EvaluationLimit) -> Value {
        try evaluate(program.root)
    }

    mutating func spend(_ units: Int) throws(EvaluationLimit) {
        budget -= units
        try overBudget()
    }

    func overBudget() throws(EvaluationLimit) {
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

    /// The values of the expression's input `i`, or `nil` when the login does not have it.
    func input(_ i: Int32) -> [String]? {
        i >= 0 ? slots[Int(slotOfInput[Int(i)])] : nil
    }

    mutating func evaluate(_ index: Int) throws(EvaluationLimit) -> Value {
        try spend(1)
        let op = program.ops[index]
        switch op.code {
        case .constant: return program.constants[Int(op.a)]
        case .boolean: return .boolean(op.a != 0)
        case .attribute:
            guard let values = input(op.a) else { return .none }
            return Value(values)
        case .template:
            var out = ""
            for piece in program.templates[Int(op.a)] {
                out += piece.literal
                if let v = input(piece.input)?.first { out += v }
                _ = try checkedText(out)
            }
            return .one(out)
        case .list:
            var all: [String] = []
            for k in Int(op.a)..<Int(op.a + op.b) {
                try evaluate(Int(program.children[k])).appendStrings(to: &all)
            }
            return try checked(all)
        case .not: return .boolean(!(try condition(op.a)))
        case .and:
            guard try condition(op.a) else { return .boolean(false) }
            return .boolean(try condition(op.b))
        case .or:
            if try condition(op.a) { return .boolean(true) }
            return .boolean(try condition(op.b))
        case .equal, .notEqual:
            let left = try evaluate(Int(op.a)), right = try evaluate(Int(op.b))
            return .boolean(((left.first ?? "") == (right.first ?? "")) == (op.code == .equal))
        case .contains:
            let left = try evaluate(Int(op.a)), right = try evaluate(Int(op.b))
            return .boolean(left.containsAny(of: right))
        case .matches:
            let regex = program.regexes[Int(op.b)]
            let value = try evaluate(Int(op.a))
            var found = false
            try value.forEachString { v throws(EvaluationLimit) in
                guard !found else { return }
                found = regex.matches(v, budget: &budget)
                try overBudget()
            }
            return .boolean(found)
        case .conditional:
            return try condition(op.a) ? evaluate(Int(op.b)) : evaluate(Int(op.c))
        case .first:
            for k in Int(op.a)..<Int(op.a + op.b) {
                let v = try evaluate(Int(program.children[k]))
                if v.isPresent { return v }
            }
            return .none
        case .present: return .boolean(try evaluate(Int(op.a)).isPresent)
        case .head: return try evaluate(Int(op.a)).first.map(Value.one) ?? .none
        case .lower: return try evaluate(Int(op.a)).mapEach { $0.asciiFastLowercased() }
        case .upper: return try evaluate(Int(op.a)).mapEach { $0.asciiFastUppercased() }
        case .trim: return try evaluate(Int(op.a)).mapEach { $0.trimmingWhitespace() }
        case .split:
            let separator = program.strings[Int(op.b)]
            var out: [String] = []
            try evaluate(Int(op.a)).forEachString { v throws(EvaluationLimit) in
                out += Self.split(v, by: separator)
                guard out.count <= Self.maximumValues else { throw EvaluationLimit(reason: "split() made more than \(Self.maximumValues) values") }
            }
            return Value(out)
        case .join:
            let separator = program.strings[Int(op.b)]
            switch try evaluate(Int(op.a)) {
            case .none: return .none
            case .one(let s): return .one(s)
            case .boolean(let b): return .one(b ? "true" : "false")
            case .many(let values): return .one(try checkedText(values.joined(separator: separator)))
            }
        case .extract:
            let regex = program.regexes[Int(op.b)]
            let value = try evaluate(Int(op.a))
            var out: [String] = []
            try value.forEachString { v throws(EvaluationLimit) in
                let found = regex.extract(v, budget: &budget)
                try overBudget()
                if let found { out.append(found) }
            }
            return try checked(out)
        case .replace:
            let regex = program.regexes[Int(op.b)], replacement = program.replacements[Int(op.c)]
            let value = try evaluate(Int(op.a))
            var out: [String] = []
            try value.forEachString { v throws(EvaluationLimit) in
                // A value too long for the regular expression is kept as it is.
                let replaced = regex.replaceAll(v, with: replacement, budget: &budget)
                try overBudget()
                out.append(try checkedText(replaced ?? v))
            }
            return try checked(out)
        case .map:
            let table = program.tables[Int(op.b)]
            let fallback = op.c >= 0 ? program.strings[Int(op.c)] : nil
            return try evaluate(Int(op.a)).mapEach { table[$0] ?? fallback }
        }
    }

    mutating func condition(_ index: Int32) throws(EvaluationLimit) -> Bool {
        if case .boolean(let b) = try evaluate(Int(index)) { return b }
        return false  // unreachable: the parser admits only conditions here
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
        var copy = self
        return copy.withUTF8 { bytes -> String? in
            var needed = false
            for b in bytes {
                if b >= 0x80 { return nil }
                if range.contains(b) { needed = true }
            }
            guard needed else { return self }
            return String(unsafeUninitializedCapacity: bytes.count) { buffer in
                for i in 0..<bytes.count { buffer[i] = range.contains(bytes[i]) ? bytes[i] ^ 0x20 : bytes[i] }
                return bytes.count
            }
        }
    }
}
