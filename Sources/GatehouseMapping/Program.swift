/// An expression lowered for evaluation: a flat array of plain instructions whose operands are
/// indices (of other instructions, of the expression's inputs, of its constants), so running it
/// walks integers instead of the syntax tree's objects and copies nothing but the values it makes.
///
/// Built once when the expression is compiled; immutable and shared, so a class.
final class Program: Sendable {
    struct Op: Sendable {
        enum Code: UInt8, Sendable {
            /// `constants[a]`.
            case constant
            /// `a != 0`.
            case boolean
            /// The values of input `a` (an index into `MappingExpression.inputs`).
            case attribute
            /// `templates[a]`.
            case template
            /// Every value of `children[a..<a+b]`, in order.
            case list
            case not, and, or
            case equal, notEqual, contains
            /// Op `a` matches `regexes[b]`.
            case matches
            /// If op `a` then op `b` else op `c`.
            case conditional
            /// The first of `children[a..<a+b]` with a non-empty value.
            case first
            case present, head, lower, upper, trim
            /// Op `a`, split by / joined with `strings[b]`.
            case split, join
            /// Op `a` through `regexes[b]`.
            case extract
            /// Op `a` through `regexes[b]`, replaced by `replacements[c]`.
            case replace
            /// Op `a` through `tables[b]`, with `strings[c]` for others when `c >= 0`.
            case map
        }
        var code: Code
        var a: Int32 = 0
        var b: Int32 = 0
        var c: Int32 = 0
    }

    /// A template's piece: literal text, then input `input`'s first value when `input >= 0`.
    struct Piece: Sendable {
        let literal: String
        let input: Int32
    }

    let ops: [Op]
    /// The instruction that computes the expression's value.
    let root: Int
    let children: [Int32]
    let constants: [Value]
    let strings: [String]
    let templates: [[Piece]]
    let regexes: [SafeRegex]
    let replacements: [SafeRegex.Replacement]
    let tables: [[String: String]]

    /// Lowers `root`, whose attribute names are numbered by their place in `inputs`.
    init(_ root: Node, inputs: [String]) {
        var b = Builder(inputs: Dictionary(inputs.enumerated().map { ($1, Int32($0)) }, uniquingKeysWith: { a, _ in a }))
        self.root = Int(b.lower(root))
        ops = b.ops
        children = b.children
        constants = b.constants
        strings = b.strings
        templates = b.templates
        regexes = b.regexes
        replacements = b.replacements
        tables = b.tables
    }

    private struct Builder {
        let inputs: [String: Int32]
        var ops: [Op] = []
        var children: [Int32] = []
        var constants: [Value] = []
        var strings: [String] = []
        var templates: [[Piece]] = []
        var regexes: [SafeRegex] = []
        var replacements: [SafeRegex.Replacement] = []
        var tables: [[String: String]] = []

        mutating func emit(_ code: Op.Code, _ a: Int32 = 0, _ b: Int32 = 0, _ c: Int32 = 0) -> Int32 {
            ops.append(Op(code: code, a: a, b: b, c: c))
            return Int32(ops.count - 1)
        }

        static func add<T>(_ value: T, to pool: inout [T]) -> Int32 {
            pool.append(value)
            return Int32(pool.count - 1)
        }

        /// `nodes` lowered, their instructions listed together in `children`: (start, count).
        mutating func lowerAll(_ nodes: [Node]) -> (Int32, Int32) {
            let lowered = nodes.map { lower($0) }
            let start = Int32(children.count)
            children += lowered
            return (start, Int32(lowered.count))
        }

        /// A string literal argument (a separator, a default): the parser admits only those.
        mutating func literal(_ node: Node) -> Int32 {
            guard case .text(let v) = node.kind, let s = v.first else { return Self.add("", to: &strings) }
            return Self.add(s, to: &strings)
        }

        mutating func lower(_ node: Node) -> Int32 {
            switch node.kind {
            case .text(let v): return emit(.constant, Self.add(Value(v), to: &constants))
            case .boolean(let v): return emit(.boolean, v ? 1 : 0)
            case .attribute(let name): return emit(.attribute, inputs[name] ?? -1)
            case .template(let pieces):
                let lowered = pieces.map { Piece(literal: $0.literal, input: $0.attribute.flatMap { inputs[$0] } ?? -1) }
                return emit(.template, Self.add(lowered, to: &templates))
            case .list(let items):
                let (start, count) = lowerAll(items)
                return emit(.list, start, count)
            case .table, .regex, .replacement:
                // Only ever arguments of map(), extract() and replace(), lowered with them.
                return emit(.constant, Self.add(Value.none, to: &constants))
            case .not(let a): return emit(.not, lower(a))
            case .and(let a, let b):
                let (x, y) = (lower(a), lower(b))
                return emit(.and, x, y)
            case .or(let a, let b):
                let (x, y) = (lower(a), lower(b))
                return emit(.or, x, y)
            case .compare(let op, let a, let b):
                let (x, y) = (lower(a), lower(b))
                switch op {
                case .equal: return emit(.equal, x, y)
                case .notEqual: return emit(.notEqual, x, y)
                case .contains: return emit(.contains, x, y)
                }
            case .matches(let a, let regex):
                let x = lower(a)
                return emit(.matches, x, Self.add(regex, to: &regexes))
            case .conditional(let c, let yes, let no):
                let (x, y, z) = (lower(c), lower(yes), lower(no))
                return emit(.conditional, x, y, z)
            case .call(let f, let args):
                return call(f, args)
            }
        }

        mutating func call(_ f: Function, _ args: [Node]) -> Int32 {
            switch f {
            case .attr:
                return emit(.constant, Self.add(Value.none, to: &constants))  // the parser made it an attribute read
            case .first:
                let (start, count) = lowerAll(args)
                return emit(.first, start, count)
            case .present: return emit(.present, lower(args[0]))
            case .head: return emit(.head, lower(args[0]))
            case .lower: return emit(.lower, lower(args[0]))
            case .upper: return emit(.upper, lower(args[0]))
            case .trim: return emit(.trim, lower(args[0]))
            case .split, .join:
                let x = lower(args[0])
                return emit(f == .split ? .split : .join, x, literal(args[1]))
            case .extract:
                let x = lower(args[0])
                guard case .regex(let r) = args[1].kind else { return emit(.constant, Self.add(Value.none, to: &constants)) }
                return emit(.extract, x, Self.add(r, to: &regexes))
            case .replace:
                let x = lower(args[0])
                guard case .regex(let r) = args[1].kind, case .replacement(let t) = args[2].kind else {
                    return emit(.constant, Self.add(Value.none, to: &constants))
                }
                return emit(.replace, x, Self.add(r, to: &regexes), Self.add(t, to: &replacements))
            case .map:
                let x = lower(args[0])
                guard case .table(let table) = args[1].kind else { return emit(.constant, Self.add(Value.none, to: &constants)) }
                let fallback = args.count == 3 ? literal(args[2]) : -1
                return emit(.map, x, Self.add(table, to: &tables), fallback)
            }
        }
    }
}
