import Foundation

/// The mapping expression language: small, typed, and sandboxed.
///
/// An expression reads the upstream's attributes and claims and computes one pool attribute. It has
/// no I/O, no loops, no user-defined functions and no recursion, so its cost is bounded by its size
/// (itself bounded) and by the size of its inputs (bounded by the evaluator). Regular expressions are
/// literals compiled when the mapping is saved, on a linear-time engine (`SafeRegex`).
///
/// ```text
/// expr     := 'if' cond 'then' expr 'else' expr | pipe
/// pipe     := or ('|' NAME ['(' args ')'])*        x | f(a) means f(x, a)
/// or       := and ('or' and)*
/// and      := unary ('and' unary)*
/// unary    := 'not' unary | compare
/// compare  := primary [('==' | '!=' | 'contains' | 'matches') primary]
/// primary  := STRING | 'true' | 'false' | NAME | NAME '(' args ')' | '(' expr ')'
///           | '[' args ']' | '{' STRING ':' STRING (',' STRING ':' STRING)* '}'
/// ```
///
/// A NAME that is not followed by `(` reads the attribute or claim of that name (`email`,
/// `address.country`, `custom:x`); `attr("…")` reads one whose name has other characters (SAML URIs).
/// Double-quoted strings take `\"`, `\\`, `\n`, `\t` escapes and `{{name}}` interpolation;
/// single-quoted strings are raw (convenient for regular expressions).
///
/// Values are lists of strings (an absent attribute is the empty list; SAML attributes can carry
/// several values) or booleans. Conditions must be booleans: the language never guesses whether
/// the text `"false"` is true.
public struct MappingExpression: Sendable {
    /// Longest expression accepted, in bytes.
    public static let maximumLength = 4096
    /// Deepest nesting of parentheses, calls and lists.
    public static let maximumDepth = 32
    /// Most syntax nodes in one expression.
    public static let maximumNodes = 512

    public let source: String
    let root: Node
    /// `root` lowered for evaluation.
    let program: Program
    /// Every attribute name the expression reads, in order of first use (for previews).
    public let inputs: [String]
    public let isBoolean: Bool

    public init(_ source: String) throws(MappingError) {
        guard source.utf8.count <= Self.maximumLength else {
            throw MappingError(position: Self.maximumLength + 1, "an expression is at most \(Self.maximumLength) bytes")
        }
        var lexer = Lexer(Array(source.unicodeScalars))
        let tokens = try lexer.tokens()
        var parser = ExpressionParser(tokens: tokens)
        let root = try parser.parse()
        self.source = source
        self.root = root
        var seen: Set<String> = []
        var inputs: [String] = []
        root.collectInputs(into: &inputs, seen: &seen)
        self.inputs = inputs
        self.isBoolean = root.type == .boolean
        self.program = Program(root, inputs: inputs)
    }

    /// An expression that reads one attribute: Cognito's flat form.
    init(attribute name: String) {
        source = name
        root = Node(.attribute(name), type: .text, position: 1)
        inputs = [name]
        isBoolean = false
        program = Program(root, inputs: inputs)
    }
}

/// Why a mapping or an expression was refused, with where.
public struct MappingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The pool attribute whose rule is at fault, when known.
    public var target: String?
    /// 1-based position in the expression, in characters, when known.
    public var position: Int?
    public var reason: String

    public init(target: String? = nil, position: Int? = nil, _ reason: String) {
        self.target = target
        self.position = position
        self.reason = reason
    }

    public var description: String {
        var s = ""
        if let target { s += "rule '\(target)'" }
        if let position { s += s.isEmpty ? "at \(position)" : ", at \(position)" }
        return s.isEmpty ? reason : "\(s): \(reason)"
    }
}

// MARK: Syntax tree

enum ValueType: Sendable, Equatable {
    case text, boolean
}

enum Function: String, Sendable, CaseIterable {
    case attr, first, head, lower, upper, trim, split, join, extract, replace, map, present
}

enum Comparison: Sendable {
    case equal, notEqual, contains
}

struct TemplatePiece: Sendable {
    var literal: String
    /// The attribute interpolated after `literal`, if any.
    var attribute: String?
}

final class Node: Sendable {
    enum Kind: Sendable {
        case text([String])
        case boolean(Bool)
        case template([TemplatePiece])
        case attribute(String)
        case list([Node])
        case table([String: String])
        case call(Function, [Node])
        /// A regular-expression argument, compiled when the expression was parsed.
        case regex(SafeRegex)
        /// replace()'s replacement, split into literals and `$n` groups when the expression was parsed.
        case replacement(SafeRegex.Replacement)
        case not(Node)
        case and(Node, Node)
        case or(Node, Node)
        case compare(Comparison, Node, Node)
        case matches(Node, SafeRegex)
        case conditional(Node, Node, Node)
    }
    let kind: Kind
    let type: ValueType
    let position: Int

    init(_ kind: Kind, type: ValueType, position: Int) {
        self.kind = kind
        self.type = type
        self.position = position
    }

    func collectInputs(into names: inout [String], seen: inout Set<String>) {
        func add(_ n: String) { if seen.insert(n).inserted { names.append(n) } }
        switch kind {
        case .attribute(let n): add(n)
        case .template(let pieces): for p in pieces { if let a = p.attribute { add(a) } }
        case .list(let items), .call(_, let items): for i in items { i.collectInputs(into: &names, seen: &seen) }
        case .not(let a), .matches(let a, _): a.collectInputs(into: &names, seen: &seen)
        case .and(let a, let b), .or(let a, let b), .compare(_, let a, let b):
            a.collectInputs(into: &names, seen: &seen)
            b.collectInputs(into: &names, seen: &seen)
        case .conditional(let c, let a, let b):
            c.collectInputs(into: &names, seen: &seen)
            a.collectInputs(into: &names, seen: &seen)
            b.collectInputs(into: &names, seen: &seen)
        case .text, .boolean, .table, .regex, .replacement: break
        }
    }
}

// MARK: Lexing

enum TokenKind: Equatable {
    case name(String)
    /// A string literal; `raw` when single-quoted (no escapes, no interpolation).
    case string(String, raw: Bool)
    case symbol(String)
    case end
}

struct Token {
    let kind: TokenKind
    let position: Int
}

struct Lexer {
    let s: [Unicode.Scalar]
    var i = 0

    init(_ s: [Unicode.Scalar]) { self.s = s }

    static func isNameStart(_ c: Unicode.Scalar) -> Bool {
        (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c == "_"
    }
    static func isNameContinue(_ c: Unicode.Scalar) -> Bool {
        isNameStart(c) || (c >= "0" && c <= "9") || c == "." || c == ":" || c == "-"
    }

    mutating func tokens() throws(MappingError) -> [Token] {
        var out: [Token] = []
        while true {
            while i < s.count, s[i].properties.isWhitespace { i += 1 }
            let at = i + 1
            guard i < s.count else {
                out.append(Token(kind: .end, position: at))
                return out
            }
            let c = s[i]
            if Self.isNameStart(c) {
                var name = String.UnicodeScalarView()
                while i < s.count, Self.isNameContinue(s[i]) {
                    name.append(s[i])
                    i += 1
                }
                out.append(Token(kind: .name(String(name)), position: at))
            } else if c == "\"" || c == "'" {
                out.append(Token(kind: .string(try string(quote: c), raw: c == "'"), position: at))
            } else if c == "=" || c == "!" {
                guard i + 1 < s.count, s[i + 1] == "=" else {
                    throw MappingError(position: at, c == "=" ? "expected '==' (a single '=' is not an operator)" : "expected '!=' (use 'not' for negation)")
                }
                out.append(Token(kind: .symbol(c == "=" ? "==" : "!="), position: at))
                i += 2
            } else if "()[]{},:|".unicodeScalars.contains(c) {
                out.append(Token(kind: .symbol(String(c)), position: at))
                i += 1
            } else {
                throw MappingError(position: at, "unexpected character '\(c.escaped(asASCII: true))'")
            }
            guard out.count <= 2 * MappingExpression.maximumNodes else {
                throw MappingError(position: at, "an expression has at most \(MappingExpression.maximumNodes) parts")
            }
        }
    }

    mutating func string(quote: Unicode.Scalar) throws(MappingError) -> String {
        let start = i + 1
        i += 1
        var out = String.UnicodeScalarView()
        while i < s.count {
            let c = s[i]
            if c == quote {
                i += 1
                return String(out)
            }
            if c == "\\" && quote == "\"" {
                guard i + 1 < s.count else { break }
                switch s[i + 1] {
                case "\"": out.append("\"")
                case "\\": out.append("\\")
                case "n": out.append("\n")
                case "t": out.append("\t")
                default: throw MappingError(position: i + 1, "unknown escape '\\\(s[i + 1])' (use single quotes for regular expressions)")
                }
                i += 2
                continue
            }
            out.append(c)
            i += 1
        }
        throw MappingError(position: start, "unterminated string")
    }
}

// MARK: Parsing

struct ExpressionParser {
    let tokens: [Token]
    var index = 0
    var depth = 0
    var nodes = 0

    init(tokens: [Token]) { self.tokens = tokens }

    var current: Token { tokens[index] }

    func fail(_ reason: String, at position: Int? = nil) -> MappingError {
        MappingError(position: position ?? current.position, reason)
    }

    func describe(_ t: Token) -> String {
        switch t.kind {
        case .name(let n): return "'\(n)'"
        case .string: return "a string"
        case .symbol(let s): return "'\(s)'"
        case .end: return "the end"
        }
    }

    mutating func node(_ kind: Node.Kind, _ type: ValueType, _ position: Int) throws(MappingError) -> Node {
        nodes += 1
        guard nodes <= MappingExpression.maximumNodes else {
            throw fail("an expression has at most \(MappingExpression.maximumNodes) parts", at: position)
        }
        return Node(kind, type: type, position: position)
    }

    func isSymbol(_ s: String) -> Bool { current.kind == .symbol(s) }
    func isKeyword(_ k: String) -> Bool { current.kind == .name(k) }

    mutating func expect(_ s: String) throws(MappingError) {
        guard isSymbol(s) else { throw fail("expected '\(s)' but found \(describe(current))") }
        index += 1
    }

    mutating func expectKeyword(_ k: String) throws(MappingError) {
        guard isKeyword(k) else { throw fail("expected '\(k)' but found \(describe(current))") }
        index += 1
    }

    mutating func parse() throws(MappingError) -> Node {
        let root = try expression()
        guard current.kind == .end else { throw fail("unexpected \(describe(current)) after a complete expression") }
        return root
    }

    mutating func enter(_ position: Int) throws(MappingError) {
        depth += 1
        guard depth <= MappingExpression.maximumDepth else {
            throw fail("expressions nest at most \(MappingExpression.maximumDepth) deep", at: position)
        }
    }

    mutating func expression() throws(MappingError) -> Node {
        let at = current.position
        try enter(at)
        defer { depth -= 1 }
        if isKeyword("if") {
            index += 1
            let condition = try expression()
            try requireBoolean(condition, "the condition of 'if'")
            try expectKeyword("then")
            let yes = try expression()
            try expectKeyword("else")
            let no = try expression()
            guard yes.type == no.type else { throw fail("both branches of 'if' must be text or both conditions", at: no.position) }
            return try node(.conditional(condition, yes, no), yes.type, at)
        }
        return try pipe()
    }

    mutating func pipe() throws(MappingError) -> Node {
        var value = try or()
        while isSymbol("|") {
            index += 1
            guard case .name(let name) = current.kind else { throw fail("expected a function name after '|'") }
            let at = current.position
            index += 1
            var args = [value]
            if isSymbol("(") { args += try arguments() }
            value = try call(name, args, at: at)
        }
        return value
    }

    mutating func or() throws(MappingError) -> Node {
        try chain("or", operand: { (p: inout ExpressionParser) throws(MappingError) in try p.and() }, combine: Node.Kind.or)
    }

    mutating func and() throws(MappingError) -> Node {
        try chain("and", operand: { (p: inout ExpressionParser) throws(MappingError) in try p.unary() }, combine: Node.Kind.and)
    }

    /// `operand (keyword operand)*`, left-associative, every operand a condition.
    mutating func chain(
        _ keyword: String, operand: (inout ExpressionParser) throws(MappingError) -> Node, combine: (Node, Node) -> Node.Kind
    ) throws(MappingError) -> Node {
        var left = try operand(&self)
        while isKeyword(keyword) {
            let at = current.position
            index += 1
            let right = try operand(&self)
            try requireBoolean(left, "'\(keyword)'")
            try requireBoolean(right, "'\(keyword)'")
            left = try node(combine(left, right), .boolean, at)
        }
        return left
    }

    mutating func unary() throws(MappingError) -> Node {
        if isKeyword("not") {
            let at = current.position
            try enter(at)
            defer { depth -= 1 }
            index += 1
            let inner = try unary()
            try requireBoolean(inner, "'not'")
            return try node(.not(inner), .boolean, at)
        }
        return try compare()
    }

    mutating func compare() throws(MappingError) -> Node {
        let left = try primary()
        let at = current.position
        let op: String
        switch current.kind {
        case .symbol("=="), .symbol("!="): op = isSymbol("==") ? "==" : "!="
        case .name("contains"), .name("matches"): op = isKeyword("contains") ? "contains" : "matches"
        default: return left
        }
        index += 1
        let right = try primary()
        guard left.type == .text, right.type == .text else { throw fail("'\(op)' compares text, not conditions", at: at) }
        switch op {
        case "==": return try node(.compare(.equal, left, right), .boolean, at)
        case "!=": return try node(.compare(.notEqual, left, right), .boolean, at)
        case "contains": return try node(.compare(.contains, left, right), .boolean, at)
        default:
            guard case .text(let p) = right.kind, p.count == 1 else { throw fail("the right side of 'matches' must be a regular expression written as a string", at: right.position) }
            return try node(.matches(left, try regex(p[0], at: right.position)), .boolean, at)
        }
    }

    mutating func regex(_ pattern: String, at position: Int) throws(MappingError) -> SafeRegex {
        do {
            return try SafeRegex(pattern)
        } catch {
            throw fail("invalid regular expression: \(error)", at: position)
        }
    }

    static let keywords: Set<String> = ["if", "then", "else", "and", "or", "not", "contains", "matches", "true", "false"]

    mutating func primary() throws(MappingError) -> Node {
        let token = current
        let at = token.position
        switch token.kind {
        case .string(let value, let raw):
            index += 1
            if raw || !value.contains("{{") { return try node(.text([value]), .text, at) }
            return try node(.template(try Self.template(value, at: at)), .text, at)
        case .name("true"), .name("false"):
            index += 1
            return try node(.boolean(token.kind == .name("true")), .boolean, at)
        case .name(let name):
            guard !Self.keywords.contains(name) else { throw fail("unexpected '\(name)'") }
            index += 1
            if isSymbol("(") { return try call(name, try arguments(), at: at) }
            return try node(.attribute(name), .text, at)
        case .symbol("("):
            index += 1
            let inner = try expression()
            try expect(")")
            return inner
        case .symbol("["):
            try enter(at)
            defer { depth -= 1 }
            index += 1
            var items: [Node] = []
            if !isSymbol("]") {
                repeat {
                    if !items.isEmpty { index += 1 }
                    let item = try expression()
                    guard item.type == .text else { throw fail("a list holds text, not conditions", at: item.position) }
                    items.append(item)
                } while isSymbol(",")
            }
            try expect("]")
            return try node(.list(items), .text, at)
        case .symbol("{"):
            index += 1
            var table: [String: String] = [:]
            if !isSymbol("}") {
                repeat {
                    if !table.isEmpty { index += 1 }
                    guard case .string(let key, _) = current.kind else { throw fail("a table maps strings to strings: expected a string key") }
                    let keyAt = current.position
                    index += 1
                    try expect(":")
                    guard case .string(let value, _) = current.kind else { throw fail("a table maps strings to strings: expected a string value") }
                    index += 1
                    guard table.updateValue(value, forKey: key) == nil else { throw fail("the key \"\(key)\" appears twice", at: keyAt) }
                    guard table.count <= 1024 else { throw fail("a table has at most 1024 entries", at: keyAt) }
                } while isSymbol(",")
            }
            try expect("}")
            return try node(.table(table), .text, at)
        default:
            throw fail("expected a value but found \(describe(token))")
        }
    }

    mutating func arguments() throws(MappingError) -> [Node] {
        try enter(current.position)
        defer { depth -= 1 }
        try expect("(")
        var args: [Node] = []
        if !isSymbol(")") {
            repeat {
                if !args.isEmpty { index += 1 }
                args.append(try expression())
            } while isSymbol(",")
        }
        try expect(")")
        return args
    }

    static func template(_ text: String, at position: Int) throws(MappingError) -> [TemplatePiece] {
        var pieces: [TemplatePiece] = []
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                throw MappingError(position: position, "'{{' without '}}' in a template")
            }
            let name = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: " ")
            guard !name.isEmpty else { throw MappingError(position: position, "an empty '{{}}' in a template") }
            pieces.append(TemplatePiece(literal: String(rest[..<open.lowerBound]), attribute: name))
            rest = rest[close.upperBound...]
        }
        if !rest.isEmpty { pieces.append(TemplatePiece(literal: String(rest), attribute: nil)) }
        return pieces
    }

    func requireBoolean(_ n: Node, _ context: String) throws(MappingError) {
        guard n.type == .boolean else {
            throw fail("\(context) needs a condition (a comparison, 'contains', 'matches', present(…), true or false), not text", at: n.position)
        }
    }

    func requireText(_ n: Node, _ name: String) throws(MappingError) {
        guard n.type == .text else { throw fail("\(name)() takes text, not a condition", at: n.position) }
    }

    func literalString(_ n: Node, _ what: String) throws(MappingError) -> String {
        guard case .text(let v) = n.kind, v.count == 1 else { throw fail("\(what) must be a string literal", at: n.position) }
        return v[0]
    }

    mutating func call(_ name: String, _ args: [Node], at: Int) throws(MappingError) -> Node {
        guard let f = Function(rawValue: name) else {
            throw fail("unknown function '\(name)' (known: \(Function.allCases.map(\.rawValue).joined(separator: ", ")))", at: at)
        }
        func arity(_ range: ClosedRange<Int>) throws(MappingError) {
            guard range.contains(args.count) else {
                let expected = range.lowerBound == range.upperBound ? "\(range.lowerBound)" : "\(range.lowerBound) to \(range.upperBound)"
                throw fail("\(name)() takes \(expected) argument\(range.upperBound == 1 ? "" : "s"), not \(args.count)", at: at)
            }
        }
        switch f {
        case .attr:
            try arity(1...1)
            return try node(.attribute(try literalString(args[0], "the name given to attr()")), .text, at)
        case .first:
            try arity(1...16)
            for a in args { try requireText(a, name) }
        case .head, .lower, .upper, .trim:
            try arity(1...1)
            try requireText(args[0], name)
        case .present:
            try arity(1...1)
            try requireText(args[0], name)
            return try node(.call(f, args), .boolean, at)
        case .split, .join:
            try arity(2...2)
            try requireText(args[0], name)
            _ = try literalString(args[1], "the separator")
        case .extract:
            try arity(2...2)
            try requireText(args[0], name)
            let r = try regex(try literalString(args[1], "the regular expression"), at: args[1].position)
            return try node(.call(f, [args[0], try node(.regex(r), .text, args[1].position)]), .text, at)
        case .replace:
            try arity(3...3)
            try requireText(args[0], name)
            let r = try regex(try literalString(args[1], "the regular expression"), at: args[1].position)
            let replacement = SafeRegex.Replacement(try literalString(args[2], "the replacement"))
            return try node(.call(f, [args[0], try node(.regex(r), .text, args[1].position), try node(.replacement(replacement), .text, args[2].position)]), .text, at)
        case .map:
            try arity(2...3)
            try requireText(args[0], name)
            guard case .table = args[1].kind else { throw fail("map() takes a table such as {\"upstream\": \"pool\"} as its second argument", at: args[1].position) }
            if args.count == 3 { _ = try literalString(args[2], "the default of map()") }
        }
        return try node(.call(f, args), .text, at)
    }
}

extension Substring {
    func trimmingCharacters(in set: Character) -> String {
        var s = self
        while s.first == set { s.removeFirst() }
        while s.last == set { s.removeLast() }
        return String(s)
    }
}
