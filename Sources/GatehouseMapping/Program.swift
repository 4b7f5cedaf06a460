import Foundation

/// An expression lowered for evaluation: a flat array of plain instructions whose operands are
/// indices (of other instructions, of the expression's inputs, of its constants), so running it
/// walks integers instead of the syntax tree's objects.
///
/// Its literal text (constants, separators, template pieces, table keys and values) is kept as
/// UTF-8 in one pool that evaluation reads in place. Built once when the expression is compiled;
/// immutable and shared, so a class. It owns its tables as raw memory, so reading them during
/// evaluation counts no references (an array property of a class is retained around each read).
final class Program: @unchecked Sendable {  // immutable after init
    struct Op: Sendable {
        enum Code: UInt8, Sendable {
            /// The texts `texts[a..<a+b]`.
            case constant
            /// `a != 0`.
            case boolean
            /// The values of input `a` (an index into `MappingExpression.inputs`).
            case attribute
            /// The pieces `pieces[a..<a+b]`.
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
            /// Op `a`, split by / joined with `literals[b]`.
            case split, join
            /// Op `a` through `regexes[b]`.
            case extract
            /// Op `a` through `regexes[b]`, replaced by `replacements[c]`.
            case replace
            /// Op `a` through `tables[b]`, with `literals[c]` for others when `c >= 0`.
            case map
        }
        var code: Code
        var a: Int32 = 0
        var b: Int32 = 0
        var c: Int32 = 0
    }

    /// A template's piece: literal text, then input `input`'s first value when `input >= 0`.
    struct Piece: Sendable {
        let literal: Text
        let input: Int32
    }

    let ops: UnsafeMutableBufferPointer<Op>
    /// The instruction that computes the expression's value.
    let root: Int
    let children: UnsafeMutableBufferPointer<Int32>
    let texts: UnsafeMutableBufferPointer<Text>
    let literals: UnsafeMutableBufferPointer<Text>
    let pieces: UnsafeMutableBufferPointer<Piece>
    let regexes: UnsafeMutableBufferPointer<Unmanaged<SafeRegex>>
    let replacements: UnsafeMutableBufferPointer<SafeRegex.Replacement>
    let tables: UnsafeMutableBufferPointer<Unmanaged<ByteTable<Text>>>
    let pool: UnsafeMutableBufferPointer<UInt8>

    /// "true" and "false", which begin every pool: a condition read as text.
    static let trueText = Text(start: 0, count: 4, inPool: true)
    static let falseText = Text(start: 4, count: 5, inPool: true)

    /// Lowers `root`, whose attribute names are numbered by their place in `inputs`.
    init(_ root: Node, inputs: [String]) {
        var b = Builder(inputs: Dictionary(inputs.enumerated().map { ($1, Int32($0)) }, uniquingKeysWith: { a, _ in a }))
        _ = b.text("true")
        _ = b.text("false")
        self.root = Int(b.lower(root))
        ops = Self.owned(b.ops)
        children = Self.owned(b.children)
        texts = Self.owned(b.texts)
        literals = Self.owned(b.literals)
        pieces = Self.owned(b.pieces)
        regexes = Self.owned(b.regexes.map { Unmanaged.passRetained($0) })
        replacements = Self.owned(b.replacements)
        tables = Self.owned(b.tables.map { Unmanaged.passRetained($0) })
        pool = Self.owned(b.pool)
    }

    deinit {
        for r in regexes { r.release() }
        for t in tables { t.release() }
        replacements.deinitialize()
        for buffer in [UnsafeMutableRawPointer(ops.baseAddress!), UnsafeMutableRawPointer(children.baseAddress!), UnsafeMutableRawPointer(texts.baseAddress!),
            UnsafeMutableRawPointer(literals.baseAddress!), UnsafeMutableRawPointer(pieces.baseAddress!), UnsafeMutableRawPointer(regexes.baseAddress!),
            UnsafeMutableRawPointer(replacements.baseAddress!), UnsafeMutableRawPointer(tables.baseAddress!), UnsafeMutableRawPointer(pool.baseAddress!)]
        {
            buffer.deallocate()
        }
    }

    /// A copy of `list` in memory this program owns (never empty, so every buffer has an address).
    private static func owned<T>(_ list: [T]) -> UnsafeMutableBufferPointer<T> {
        let buffer = UnsafeMutableBufferPointer<T>.allocate(capacity: max(list.count, 1))
        _ = buffer.initialize(from: list)
        return UnsafeMutableBufferPointer(rebasing: buffer[0..<list.count])
    }

    private struct Builder {
        let inputs: [String: Int32]
        var ops: [Op] = []
        var children: [Int32] = []
        var texts: [Text] = []
        var literals: [Text] = []
        var pieces: [Piece] = []
        var regexes: [SafeRegex] = []
        var replacements: [SafeRegex.Replacement] = []
        var tables: [ByteTable<Text>] = []
        var pool: [UInt8] = []

        mutating func emit(_ code: Op.Code, _ a: Int32 = 0, _ b: Int32 = 0, _ c: Int32 = 0) -> Int32 {
            ops.append(Op(code: code, a: a, b: b, c: c))
            return Int32(ops.count - 1)
        }

        static func add<T>(_ value: T, to list: inout [T]) -> Int32 {
            list.append(value)
            return Int32(list.count - 1)
        }

        /// `s`'s UTF-8 in the pool, as written.
        mutating func text(_ s: String) -> Text {
            let start = pool.count
            pool += s.utf8
            return Text(start: Int32(start), count: Int32(pool.count - start), inPool: true)
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
            var s = ""
            if case .text(let v) = node.kind, let first = v.first { s = first }
            let t = text(s)
            return Self.add(t, to: &literals)
        }

        /// An instruction for the constant texts `strings`.
        mutating func constant(_ strings: [String]) -> Int32 {
            let lowered = strings.map { text($0) }
            let start = Int32(texts.count)
            texts += lowered
            return emit(.constant, start, Int32(lowered.count))
        }

        mutating func lower(_ node: Node) -> Int32 {
            switch node.kind {
            case .text(let v): return constant(v)
            case .boolean(let v): return emit(.boolean, v ? 1 : 0)
            case .attribute(let name): return emit(.attribute, inputs[name] ?? -1)
            case .template(let pieces):
                let lowered = pieces.map { Piece(literal: text($0.literal), input: $0.attribute.flatMap { inputs[$0] } ?? -1) }
                let start = Int32(self.pieces.count)
                self.pieces += lowered
                return emit(.template, start, Int32(lowered.count))
            case .list(let items):
                let (start, count) = lowerAll(items)
                return emit(.list, start, count)
            case .table, .regex, .replacement:
                // Only ever arguments of map(), extract() and replace(), lowered with them.
                return constant([])
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
                return constant([])  // the parser made it an attribute read
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
                guard case .regex(let r) = args[1].kind else { return constant([]) }
                return emit(.extract, x, Self.add(r, to: &regexes))
            case .replace:
                let x = lower(args[0])
                guard case .regex(let r) = args[1].kind, case .replacement(let t) = args[2].kind else {
                    return constant([])
                }
                return emit(.replace, x, Self.add(r, to: &regexes), Self.add(t, to: &replacements))
            case .map:
                let x = lower(args[0])
                guard case .table(let table) = args[1].kind else { return constant([]) }
                // Keys composed (NFC), as evaluation looks values up; values as written.
                let entries = table.sorted { $0.key < $1.key }.map { (key: text($0.key.precomposedStringWithCanonicalMapping), value: text($0.value)) }
                let lowered = ByteTable(entries, pool: pool)
                let fallback = args.count == 3 ? literal(args[2]) : -1
                return emit(.map, x, Self.add(lowered, to: &tables), fallback)
            }
        }
    }
}

/// A piece of text during one evaluation: UTF-8 in its program's pool, or in the login's scratch.
/// Plain values, so passing text around counts no references.
struct Text: Sendable {
    var start: Int32
    var count: Int32
    var inPool: Bool
}

/// A table keyed by UTF-8 bytes, so a value is looked up without making a string of it: `map()`
/// tables (keys and values in the program's pool) and a mapping's upstream names (keys in their own
/// pool). Open addressing at most half full; a class owning raw memory, for the same reason as
/// `Program`.
///
/// The hash is fast, not keyed: the table holds only keys an admin wrote, so input that collides
/// on purpose can at worst walk the whole (small) table, never make it grow.
final class ByteTable<Payload>: @unchecked Sendable {  // immutable after init
    struct Entry {
        let hash: UInt64
        let key: Text
        let value: Payload
    }
    /// Exactly the entries (its memory holds at least one, so it always has an address).
    let entries: UnsafeMutableBufferPointer<Entry>
    /// Entry index + 1 per bucket, 0 when empty; a power of two at least twice the entries.
    let buckets: UnsafeMutableBufferPointer<Int32>

    /// A table of `pairs`, whose keys are in `pool`.
    init(_ pairs: [(key: Text, value: Payload)], pool: [UInt8]) {
        var size = 4
        while size < 2 * pairs.count { size *= 2 }
        buckets = .allocate(capacity: size)
        buckets.initialize(repeating: 0)
        entries = UnsafeMutableBufferPointer(rebasing: UnsafeMutableBufferPointer<Entry>.allocate(capacity: max(pairs.count, 1))[0..<pairs.count])
        for (n, (key, value)) in pairs.enumerated() {
            let hash = pool.withUnsafeBufferPointer { Self.hash(UnsafeBufferPointer(rebasing: $0[Int(key.start)..<Int(key.start + key.count)])) }
            (entries.baseAddress! + n).initialize(to: Entry(hash: hash, key: key, value: value))
            var b = Int(hash & UInt64(size - 1))
            while buckets[b] != 0 { b = (b + 1) & (size - 1) }
            buckets[b] = Int32(n + 1)
        }
    }

    deinit {
        entries.baseAddress!.deinitialize(count: entries.count)
        entries.baseAddress!.deallocate()
        buckets.deallocate()
    }

    /// The length, the first eight and the last sixteen bytes, each word mixed by its own multiply.
    /// Keys that agree on all of these (long names with a common prefix and suffix) only probe
    /// one more bucket: a match is always decided by comparing the whole key.
    @inline(__always)
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        let n = bytes.count
        guard n > 0, let base = bytes.baseAddress else { return 0x9E37_79B9_7F4A_7C15 }
        let raw = UnsafeRawPointer(base)
        var a: UInt64 = 0, b: UInt64 = 0, c: UInt64 = 0
        if n >= 8 {
            a = raw.loadUnaligned(as: UInt64.self)
            b = raw.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
            if n >= 16 { c = raw.loadUnaligned(fromByteOffset: n - 16, as: UInt64.self) }
        } else {
            for k in 0..<n { a |= UInt64(base[k]) &<< UInt64(8 * k) }
        }
        var h = (a &* 0xFF51_AFD7_ED55_8CCD) ^ (b &* 0xC4CE_B9FE_1A85_EC53) ^ (c &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(truncatingIfNeeded: n)
        h ^= h >> 32
        h = h &* 0xD6E8_FEB8_6659_FD93
        return h ^ (h >> 29)
    }

    /// The value for `key`, if the table has it; the table's keys are in `pool`.
    func value(for key: UnsafeBufferPointer<UInt8>, pool: UnsafePointer<UInt8>?) -> Payload? {
        let hash = Self.hash(key)
        let mask = buckets.count - 1
        var b = Int(hash & UInt64(mask))
        while buckets[b] != 0 {
            let e = entries[Int(buckets[b]) - 1]
            if e.hash == hash, Int(e.key.count) == key.count,
                key.count == 0 || memcmp(pool.unsafelyUnwrapped + Int(e.key.start), key.baseAddress!, key.count) == 0
            {
                return e.value
            }
            b = (b + 1) & mask
        }
        return nil
    }
}
