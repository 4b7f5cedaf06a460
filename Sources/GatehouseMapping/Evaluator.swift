import Foundation
import GatehouseCore

/// A value of the mapping language: text (no value, one, or several) or a condition's outcome.
/// Text is referred to by position (`Text`), and several texts by their run in the scratch's list,
/// so values are plain data: evaluating counts no references and allocates nothing per step.
enum Value: Sendable {
    case none
    case one(Text)
    /// `count` texts from `start` in the scratch's text list.
    case many(start: Int32, count: Int32)
    case boolean(Bool)
}

/// Why an evaluation stopped: the rule sets nothing and the reason is reported.
struct EvaluationLimit: Error {
    let reason: String
}

/// One login's working memory for applying a mapping: the UTF-8 of the values the rules read and
/// of every text they build, and the lists of texts. Owned by one `apply`, freed at its end;
/// positions (not pointers) refer into it, so it may grow.
struct Scratch: ScalarSink {
    private(set) var bytes: UnsafeMutablePointer<UInt8>
    private(set) var byteCount = 0
    private var byteCapacity: Int
    private(set) var texts: UnsafeMutablePointer<Text>
    private(set) var textCount = 0
    private var textCapacity: Int
    /// Whether `bytes` and `texts` were allocated here (a scratch may start in memory it was lent,
    /// such as a buffer on the stack, and moves to its own when it outgrows it).
    private var ownsBytes: Bool
    private var ownsTexts: Bool
    /// The pool of the program being run.
    var pool: UnsafeMutableBufferPointer<UInt8>

    init(bytes: Int = 1024, texts: Int = 64) {
        self.init(lending: .allocate(capacity: bytes), .allocate(capacity: texts))
        ownsBytes = true
        ownsTexts = true
    }

    /// A scratch that starts in `bytes` and `texts`, which must outlive it.
    init(lending bytes: UnsafeMutableBufferPointer<UInt8>, _ texts: UnsafeMutableBufferPointer<Text>) {
        self.bytes = bytes.baseAddress!
        byteCapacity = bytes.count
        self.texts = texts.baseAddress!
        textCapacity = texts.count
        ownsBytes = false
        ownsTexts = false
        pool = UnsafeMutableBufferPointer(start: nil, count: 0)
    }

    func deallocate() {
        if ownsBytes { bytes.deallocate() }
        if ownsTexts { texts.deallocate() }
    }

    /// The bytes of `t`; valid until the next write.
    func view(_ t: Text) -> UnsafeBufferPointer<UInt8> {
        let base = t.inPool ? UnsafePointer(pool.baseAddress!) : UnsafePointer(bytes)
        return UnsafeBufferPointer(start: base + Int(t.start), count: Int(t.count))
    }

    func string(_ t: Text) -> String { String(decoding: view(t), as: UTF8.self) }

    /// Whether `a` and `b` are the same text as Swift's strings judge it (canonical equivalence:
    /// a precomposed "é" equals "e" and a combining accent), adding what the comparison cost to
    /// `cost`: a unit, one per 32 bytes of equal-length bytes compared, one per 16 bytes checked
    /// for ASCII when they differ, and one per byte when Unicode has to decide. Text with a run of
    /// combining marks longer than `StreamSafeText` allows is compared by its bytes alone (Swift's
    /// comparison would take time growing with the square of the run).
    func equal(_ a: Text, _ b: Text, cost: inout Int) -> Bool {
        cost += 1
        let x = view(a), y = view(b)
        if a.count == b.count {
            cost += Int(a.count) >> 5
            if a.count == 0 || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 { return true }
        }
        cost += (x.count + y.count) >> 4
        if ASCIIScan.isASCII(x) && ASCIIScan.isASCII(y) { return false }  // ASCII is in every normal form, so equivalent only to itself
        cost += x.count + y.count
        guard StreamSafeText.check(utf8: x), StreamSafeText.check(utf8: y) else { return false }
        return string(a) == string(b)
    }

    mutating func reserveBytes(_ n: Int) {
        guard byteCount + n > byteCapacity else { return }
        var capacity = byteCapacity * 2
        while capacity < byteCount + n { capacity *= 2 }
        let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        grown.update(from: bytes, count: byteCount)
        if ownsBytes { bytes.deallocate() }
        bytes = grown
        ownsBytes = true
        byteCapacity = capacity
    }

    /// Copies `t` (from the pool or from here) to the end of the bytes.
    mutating func append(_ t: Text) {
        reserveBytes(Int(t.count))
        let source = view(t)
        if let from = source.baseAddress { (bytes + byteCount).update(from: from, count: source.count) }
        byteCount += source.count
    }

    mutating func append(_ utf8: UnsafeBufferPointer<UInt8>) {
        reserveBytes(utf8.count)
        if let from = utf8.baseAddress { (bytes + byteCount).update(from: from, count: utf8.count) }
        byteCount += utf8.count
    }

    mutating func append(utf8: [UInt8]) {
        utf8.withUnsafeBufferPointer { append($0) }
    }

    mutating func append(_ scalars: UnsafeBufferPointer<UInt32>, _ range: Range<Int>) {
        reserveBytes(4 * range.count)
        for k in range {
            UTF8.encode(Unicode.Scalar(scalars[k]).unsafelyUnwrapped) { b in
                bytes[byteCount] = b
                byteCount += 1
            }
        }
    }

    /// Copies `t` with the case of its bytes in `range` flipped (A-Z or a-z; ASCII text only).
    mutating func appendFlippingCase(of t: Text, in range: ClosedRange<UInt8>) {
        reserveBytes(Int(t.count))
        let from = view(t), to = bytes + byteCount
        for i in 0..<from.count { to[i] = range.contains(from[i]) ? from[i] ^ 0x20 : from[i] }
        byteCount += from.count
    }

    /// Forgets every byte and text written after `bytes` and `texts` (counts taken earlier): what
    /// one rule wrote, once its outcome has been made into strings.
    mutating func truncate(bytes: Int, texts: Int) {
        precondition(bytes <= byteCount && texts <= textCount)
        byteCount = bytes
        textCount = texts
    }

    /// The text written since `start` (a `byteCount` taken before writing).
    func written(since start: Int) -> Text {
        Text(start: Int32(start), count: Int32(byteCount - start), inPool: false)
    }

    /// A copy of `s` in the bytes, as it is (values are passed on as they came).
    mutating func text(_ s: String) -> Text {
        let start = byteCount
        if s.utf8.withContiguousStorageIfAvailable({ append($0) }) == nil {
            var copy = s
            copy.withUTF8 { append($0) }
        }
        return written(since: start)
    }

    mutating func push(_ t: Text) {
        if textCount == textCapacity {
            let grown = UnsafeMutablePointer<Text>.allocate(capacity: textCapacity * 2)
            grown.initialize(from: texts, count: textCount)
            if ownsTexts { texts.deallocate() }
            texts = grown
            ownsTexts = true
            textCapacity *= 2
        }
        (texts + textCount).initialize(to: t)
        textCount += 1
    }

    /// The texts pushed since `start` (a `textCount` taken before pushing) as one value.
    func list(since start: Int) -> Value {
        switch textCount - start {
        case 0: return .none
        case 1: return .one(texts[start])
        case let n: return .many(start: Int32(start), count: Int32(n))
        }
    }

    /// The value of an upstream attribute: its strings copied in.
    mutating func value(of strings: [String]) -> Value {
        if strings.count == 1 { return .one(text(strings[0])) }
        let start = textCount
        for s in strings { push(text(s)) }
        return list(since: start)
    }

    /// Calls `body` with each text of `v` (a condition reads as "true" or "false").
    func forEach<E: Error>(_ v: Value, _ body: (Text) throws(E) -> Void) throws(E) {
        switch v {
        case .none: return
        case .one(let t): try body(t)
        case .many(let start, let count): for k in Int(start)..<Int(start + count) { try body(texts[k]) }
        case .boolean(let b): try body(b ? Program.trueText : Program.falseText)
        }
    }

    func first(_ v: Value) -> Text? {
        switch v {
        case .none: return nil
        case .one(let t): return t
        case .many(let start, _): return texts[Int(start)]
        case .boolean(let b): return b ? Program.trueText : Program.falseText
        }
    }

    /// Has at least one non-empty text.
    func isPresent(_ v: Value) -> Bool {
        switch v {
        case .none: return false
        case .one(let t): return t.count > 0
        case .many(let start, let count): return (Int(start)..<Int(start + count)).contains { texts[$0].count > 0 }
        case .boolean: return true
        }
    }

    func strings(_ v: Value) -> [String] {
        var out: [String] = []
        forEach(v) { out.append(string($0)) }
        return out
    }
}

/// Runs one lowered expression over one login's attributes, within a budget of work and size.
///
/// The login's attributes arrive as slots, each read once per login for every name the mapping
/// reads (`CompiledMapping.names`); `slotOfInput` says which slot holds each of this expression's
/// inputs.
struct Evaluator {
    /// The rule's program; the caller keeps it alive for the whole evaluation.
    unowned(unsafe) let program: Program
    let slots: UnsafePointer<Value>
    let slotOfInput: UnsafePointer<Int32>
    var scratch: Scratch
    var budget: Int
    /// The scratch's size when its writes were last charged to the budget.
    private var charged: Int

    /// Most values a list may hold while evaluating.
    static let maximumValues = 256
    /// Longest string an evaluation may build, in bytes.
    static let maximumText = 65_536
    static let tooLong = EvaluationLimit(reason: "a value grew past \(maximumText) bytes")

    /// Refuses a value of `count` bytes past `maximumText`.
    static func checkLength(_ count: Int) throws(EvaluationLimit) {
        guard count <= maximumText else { throw tooLong }
    }

    init(program: Program, slots: UnsafePointer<Value>, slotOfInput: UnsafePointer<Int32>, scratch: Scratch, budget: Int) {
        self.program = program
        self.slots = slots
        self.slotOfInput = slotOfInput
        self.scratch = scratch
        self.scratch.pool = program.pool
        self.budget = budget
        self.charged = scratch.byteCount
    }

    /// `expression` evaluated over `attributes` on its own, as strings (tests and one-off checks; a
    /// mapping reads its names once for all its rules).
    static func strings(of expression: MappingExpression, over attributes: [String: [String]]) throws(EvaluationLimit) -> [String] {
        var spent = 0
        return try evaluated(expression, over: attributes, spent: &spent)
    }

    /// The budget units `expression` spends over `attributes`, whether or not it completes (tests).
    static func spent(by expression: MappingExpression, over attributes: [String: [String]]) -> Int {
        var spent = 0
        _ = try? evaluated(expression, over: attributes, spent: &spent)
        return spent
    }

    private static func evaluated(_ expression: MappingExpression, over attributes: [String: [String]], spent: inout Int) throws(EvaluationLimit) -> [String] {
        var scratch = Scratch()
        defer { scratch.deallocate() }
        let slots = expression.inputs.map { name in attributes[name].map { scratch.value(of: $0) } ?? .none } + [.none]
        let identity = (0..<Int32(slots.count)).map { $0 }
        return try withExtendedLifetime(expression) { () throws(EvaluationLimit) -> [String] in
            try slots.withUnsafeBufferPointer { slots throws(EvaluationLimit) -> [String] in
                try identity.withUnsafeBufferPointer { identity throws(EvaluationLimit) -> [String] in
                    var evaluator = Evaluator(
                        program: expression.program, slots: slots.baseAddress!, slotOfInput: identity.baseAddress!, scratch: scratch,
                        budget: CompiledMapping.ruleBudget)
                    defer {
                        scratch = evaluator.scratch
                        spent = CompiledMapping.ruleBudget - evaluator.budget
                    }
                    let value = try evaluator.run()  // first: it may move the scratch's memory
                    return evaluator.scratch.strings(value)
                }
            }
        }
    }

    mutating func run() throws(EvaluationLimit) -> Value {
        let value = try evaluate(program.root)
        try spend(0)  // what the last step wrote
        return value
    }

    /// Charges `units`, and a unit per byte written to the scratch since the last charge, so what
    /// a rule writes in all is bounded by its budget too (each value is also bounded by
    /// `maximumText`, and loops over values charge as they go).
    mutating func spend(_ units: Int) throws(EvaluationLimit) {
        budget -= units + (scratch.byteCount - charged)
        charged = scratch.byteCount
        try overBudget()
    }

    func overBudget() throws(EvaluationLimit) {
        if budget < 0 { throw EvaluationLimit(reason: "the rule did more work than a mapping rule may (\(CompiledMapping.ruleBudget) steps)") }
    }

    /// What reading `bytes` bytes costs: a unit per 16, so long values that need no change are not
    /// free to read again and again.
    @inline(__always) static func scanCost(_ bytes: Int) -> Int { bytes >> 4 }

    func checkCount(since start: Int) throws(EvaluationLimit) {
        guard scratch.textCount - start <= Self.maximumValues else { throw EvaluationLimit(reason: "more than \(Self.maximumValues) values") }
    }

    func checkLength(since start: Int) throws(EvaluationLimit) {
        try Self.checkLength(scratch.byteCount - start)
    }

    func input(_ i: Int32) -> Value {
        i >= 0 ? slots[Int(slotOfInput[Int(i)])] : .none
    }

    mutating func evaluate(_ index: Int) throws(EvaluationLimit) -> Value {
        try spend(1)
        let op = program.ops[index]
        switch op.code {
        case .constant:
            if op.b == 1 { return .one(program.texts[Int(op.a)]) }
            let start = scratch.textCount
            for k in Int(op.a)..<Int(op.a + op.b) { scratch.push(program.texts[k]) }
            return scratch.list(since: start)
        case .boolean: return .boolean(op.a != 0)
        case .attribute: return input(op.a)
        case .template:
            let start = scratch.byteCount
            for k in Int(op.a)..<Int(op.a + op.b) {
                let piece = program.pieces[k]
                scratch.append(piece.literal)
                if piece.input >= 0, let v = scratch.first(input(piece.input)) { scratch.append(v) }
                try checkLength(since: start)
                try spend(0)
            }
            return .one(scratch.written(since: start))
        case .list:
            var parts: [Value] = []
            for k in Int(op.a)..<Int(op.a + op.b) { parts.append(try evaluate(Int(program.children[k]))) }
            let start = scratch.textCount
            for part in parts {
                // Pushing may move the texts: each is read where it is now, by index.
                try eachText(part) { e, t throws(EvaluationLimit) in
                    e.scratch.push(t)
                    try e.checkCount(since: start)
                }
            }
            return scratch.list(since: start)
        case .not: return .boolean(!(try condition(op.a)))
        case .and:
            guard try condition(op.a) else { return .boolean(false) }
            return .boolean(try condition(op.b))
        case .or:
            if try condition(op.a) { return .boolean(true) }
            return .boolean(try condition(op.b))
        case .equal, .notEqual:
            let left = try evaluate(Int(op.a)), right = try evaluate(Int(op.b))
            let empty = Text(start: 0, count: 0, inPool: true)
            var cost = 0
            let same = scratch.equal(scratch.first(left) ?? empty, scratch.first(right) ?? empty, cost: &cost)
            try spend(cost)
            return .boolean(same == (op.code == .equal))
        case .contains:
            let left = try evaluate(Int(op.a)), right = try evaluate(Int(op.b))
            var found = false
            // Each comparison pays for the bytes it reads (see `Scratch.equal`), so two long lists
            // of long values cannot compare without bound.
            var cost = 0
            let affordable = budget
            scratch.forEach(right) { wanted in
                guard !found && cost <= affordable else { return }
                scratch.forEach(left) { t in
                    guard !found && cost <= affordable else { return }  // stops once over budget
                    if scratch.equal(t, wanted, cost: &cost) { found = true }
                }
            }
            try spend(cost)
            return .boolean(found)
        case .matches:
            let regex = program.regexes[Int(op.b)]
            let value = try evaluate(Int(op.a))
            var found = false
            try scratch.forEach(value) { t throws(EvaluationLimit) in
                guard !found else { return }
                budget -= Self.scanCost(Int(t.count))  // decoding to scalars
                found = regex._withUnsafeGuaranteedRef { regex in
                    SafeRegex.withScalars(utf8: scratch.view(t)) { regex.matches(scalars: $0, budget: &budget) } ?? false
                }
                try overBudget()
            }
            return .boolean(found)
        case .conditional:
            return try condition(op.a) ? evaluate(Int(op.b)) : evaluate(Int(op.c))
        case .first:
            for k in Int(op.a)..<Int(op.a + op.b) {
                let v = try evaluate(Int(program.children[k]))
                if scratch.isPresent(v) { return v }
            }
            return .none
        case .present: return .boolean(scratch.isPresent(try evaluate(Int(op.a))))
        case .head: return scratch.first(try evaluate(Int(op.a))).map(Value.one) ?? .none
        case .lower: return try mapEach(try evaluate(Int(op.a))) { e, t throws(EvaluationLimit) in try e.caseMapped(t, upper: false) }
        case .upper: return try mapEach(try evaluate(Int(op.a))) { e, t throws(EvaluationLimit) in try e.caseMapped(t, upper: true) }
        case .trim: return try mapEach(try evaluate(Int(op.a))) { e, t in e.trimmed(t) }
        case .split:
            let separator = program.literals[Int(op.b)]
            let value = try evaluate(Int(op.a))
            let start = scratch.textCount
            try eachText(value) { e, t throws(EvaluationLimit) in
                guard try e.split(t, by: separator, since: start) else {
                    throw EvaluationLimit(reason: "split() made more than \(Self.maximumValues) values")
                }
            }
            return scratch.list(since: start)
        case .join:
            let separator = program.literals[Int(op.b)]
            let value = try evaluate(Int(op.a))
            guard case .many = value else {
                // One value passes as it is, within the same limit as a joined one.
                if case .one(let t) = value { try Self.checkLength(Int(t.count)) }
                return value
            }
            let start = scratch.byteCount
            var firstPart = true
            try eachText(value) { e, t throws(EvaluationLimit) in
                if !firstPart { e.scratch.append(separator) }
                firstPart = false
                e.scratch.append(t)
                try e.checkLength(since: start)
                try e.spend(0)
            }
            return .one(scratch.written(since: start))
        case .extract:
            let regex = program.regexes[Int(op.b)]
            return try mapEach(try evaluate(Int(op.a))) { e, t throws(EvaluationLimit) -> Text? in
                let start = e.scratch.byteCount
                e.budget -= Self.scanCost(Int(t.count))  // decoding to scalars
                let found = regex._withUnsafeGuaranteedRef { regex in
                    SafeRegex.withScalars(utf8: e.scratch.view(t)) { scalars -> Bool in
                        guard let range = regex.extractRange(scalars: scalars, budget: &e.budget) else { return false }
                        e.scratch.append(scalars, range)
                        return true
                    } ?? false
                }
                try e.overBudget()
                return found ? e.scratch.written(since: start) : nil
            }
        case .replace:
            let regex = program.regexes[Int(op.b)], replacement = program.replacements[Int(op.c)]
            return try mapEach(try evaluate(Int(op.a))) { e, t throws(EvaluationLimit) -> Text? in
                let start = e.scratch.byteCount
                e.budget -= Self.scanCost(Int(t.count))  // decoding to scalars
                // A value too long for the regular expression is kept as it is.
                let outcome = regex._withUnsafeGuaranteedRef { regex in
                    SafeRegex.withScalars(utf8: e.scratch.view(t), { scalars in
                        regex.replaceAll(scalars: scalars, with: replacement, into: &e.scratch, budget: &e.budget, limit: Self.maximumText)
                    })
                }
                switch outcome {
                case nil: return t
                case .outOfBudget: throw EvaluationLimit(reason: "the rule did more work than a mapping rule may (\(CompiledMapping.ruleBudget) steps)")
                case .tooLong: throw Self.tooLong
                case .done: break
                }
                try e.checkLength(since: start)
                return e.scratch.written(since: start)
            }
        case .map:
            let table = program.tables[Int(op.b)]
            let fallback: Text? = op.c >= 0 ? program.literals[Int(op.c)] : nil
            return try mapEach(try evaluate(Int(op.a))) { e, t throws(EvaluationLimit) -> Text? in
                // The keys are composed (NFC): a value is looked up as it is, and composed when it
                // is not ASCII and was not found, so every canonically equivalent form finds it.
                let pool = UnsafePointer(e.program.pool.baseAddress)
                let bytes = e.scratch.view(t)
                if let found = table._withUnsafeGuaranteedRef({ $0.value(for: bytes, pool: pool) }) { return found }
                try e.spend(Self.scanCost(bytes.count))
                guard !ASCIIScan.isASCII(bytes) else { return fallback }
                try e.spend(bytes.count)
                guard StreamSafeText.check(utf8: bytes) else { return fallback }  // see `Scratch.equal`
                var composed = e.scratch.string(t).precomposedStringWithCanonicalMapping
                return composed.withUTF8 { c in table._withUnsafeGuaranteedRef { $0.value(for: c, pool: pool) } } ?? fallback
            }
        }
    }

    mutating func condition(_ index: Int32) throws(EvaluationLimit) -> Bool {
        if case .boolean(let b) = try evaluate(Int(index)) { return b }
        return false  // unreachable: the parser admits only conditions here
    }

    /// Calls `body` with each text of `v`, which may write to the scratch as it goes.
    mutating func eachText(_ v: Value, _ body: (inout Evaluator, Text) throws(EvaluationLimit) -> Void) throws(EvaluationLimit) {
        switch v {
        case .none: return
        case .one(let t): try body(&self, t)
        case .many(let from, let count): for k in Int(from)..<Int(from + count) { try body(&self, scratch.texts[k]) }
        case .boolean(let b): try body(&self, b ? Program.trueText : Program.falseText)
        }
    }

    /// `f` applied to each text of `v`, keeping those it returns.
    mutating func mapEach(_ v: Value, _ f: (inout Evaluator, Text) throws(EvaluationLimit) -> Text?) throws(EvaluationLimit) -> Value {
        switch v {
        case .none, .boolean: return v
        case .one(let t): return try f(&self, t).map(Value.one) ?? .none
        case .many(let from, let count):
            let start = scratch.textCount
            for k in Int(from)..<Int(from + count) {
                if let r = try f(&self, scratch.texts[k]) { scratch.push(r) }
                try spend(0)
            }
            return scratch.list(since: start)
        }
    }

    /// Pushes the non-empty pieces of `t` between occurrences of `separator` (each character when
    /// it is empty), stopping once the texts since `start` are more than `maximumValues`.
    /// Byte-wise: UTF-8 never matches inside another character. Pushing writes no bytes, so the
    /// view of `t` stays valid while it goes.
    ///
    /// Paid for before it scans: a unit per 16 bytes of `t` for each byte of the separator and one
    /// more (a separator's first byte can match at every position, and each match compares it all).
    mutating func split(_ t: Text, by separator: Text, since start: Int) throws(EvaluationLimit) -> Bool {
        func full() -> Bool { scratch.textCount - start > Self.maximumValues }
        let (scan, overflow) = Int(t.count).multipliedReportingOverflow(by: 1 + Int(separator.count))
        try spend(overflow ? Int.max / 2 : Self.scanCost(scan))
        if separator.count == 0 {
            for c in scratch.string(t) {
                scratch.push(scratch.text(String(c)))
                if full() { return false }
            }
            return true
        }
        let bytes = scratch.view(t), sep = scratch.view(separator)
        var begin = 0, i = 0
        while i + sep.count <= bytes.count {
            if bytes[i] == sep[0] && memcmp(bytes.baseAddress! + i, sep.baseAddress!, sep.count) == 0 {
                if i > begin {
                    scratch.push(Text(start: t.start + Int32(begin), count: Int32(i - begin), inPool: t.inPool))
                    if full() { return false }
                }
                i += sep.count
                begin = i
            } else {
                i += 1
            }
        }
        if begin < bytes.count { scratch.push(Text(start: t.start + Int32(begin), count: Int32(bytes.count - begin), inPool: t.inPool)) }
        return !full()
    }

    /// `t` lower- or upper-cased: ASCII byte by byte (the same as Unicode's mapping there), the
    /// rest through Swift's Unicode case mapping (which may make a text up to three times longer;
    /// the result is checked before it is written).
    mutating func caseMapped(_ t: Text, upper: Bool) throws(EvaluationLimit) -> Text {
        let range: ClosedRange<UInt8> = upper ? 0x61...0x7A : 0x41...0x5A
        let source = scratch.view(t)
        try spend(Self.scanCost(source.count))
        var needed = false
        for b in source {
            if b >= 0x80 {
                try spend(source.count)  // Unicode case mapping is slower than a scan
                let s = scratch.string(t)
                let mapped = upper ? s.uppercased() : s.lowercased()
                try Self.checkLength(mapped.utf8.count)
                return scratch.text(mapped)
            }
            if range.contains(b) { needed = true }
        }
        guard needed else { return t }
        try Self.checkLength(source.count)
        let start = scratch.byteCount
        scratch.appendFlippingCase(of: t, in: range)
        return scratch.written(since: start)
    }

    /// `t` without surrounding whitespace: a narrower view when the ends are ASCII.
    mutating func trimmed(_ t: Text) -> Text {
        let bytes = scratch.view(t)
        func isASCIISpace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }
        var start = 0, end = bytes.count
        while start < end, isASCIISpace(bytes[start]) { start += 1 }
        while start < end, isASCIISpace(bytes[end - 1]) { end -= 1 }
        if start == end || (bytes[start] < 0x80 && bytes[end - 1] < 0x80) {
            return Text(start: t.start + Int32(start), count: Int32(end - start), inPool: t.inPool)
        }
        budget -= Self.scanCost(bytes.count)  // checked by the caller's next step
        return scratch.text(scratch.string(t).trimmingWhitespace())
    }
}
