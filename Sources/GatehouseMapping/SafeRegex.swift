/// A regular expression that cannot backtrack: compiled to a small program and run by a Pike
/// virtual machine, so matching costs at most (program length × input length) steps whatever the
/// pattern. `(a+)+$`, the classic catastrophe for backtracking engines, is linear here.
///
/// The syntax is the common subset admins know: literals and escapes, `.`, classes (`[a-z]`, `[^,]`,
/// `\d \w \s` and their negations), groups (capturing and `(?:…)`), `|`, the quantifiers `* + ?`
/// and `{n}`, `{n,}`, `{n,m}` (n, m ≤ 100), lazy forms (`*?` …), anchors `^` and `$` (whole value),
/// and a leading `(?i)` for case-insensitive matching. Back-references and look-around, which no
/// linear engine can offer, are refused with their position.
///
/// Immutable and `Sendable` (a class, so passing it around copies nothing); matching works in its
/// own scratch space, so one regex is safe to use from any number of threads.
public final class SafeRegex: Sendable {
    /// Longest pattern accepted, in Unicode scalars.
    public static let maximumPatternLength = 256
    /// Largest compiled program (counted repetition is expanded, so `(a{100}){100}` is refused).
    public static let maximumProgramLength = 2000

    enum Instruction: Sendable {
        case scalar(UInt32)
        case any
        /// Class `classes[k]`.
        case set(Int)
        case split(Int, Int)  // prefer the first
        case jump(Int)
        case save(Int)
        case assertStart
        case assertEnd
        case match
    }

    struct ScalarSet: Sendable {
        var ranges: [ClosedRange<UInt32>]
        var negated: Bool
        func contains(_ c: UInt32) -> Bool {
            var inside = false
            for r in ranges where r.contains(c) {
                inside = true
                break
            }
            return inside != negated
        }
    }

    let program: [Instruction]
    /// The ranges of every class, flattened so instructions stay plain values.
    let ranges: [ClosedRange<UInt32>]
    let classes: [Class]
    /// Whether every match must start at the beginning of the input (the pattern begins with `^`).
    let anchoredAtStart: Bool
    /// What a match must begin with (scalars and sets), or `nil` when that is not so simple.
    let starters: [Instruction]?
    let groupCount: Int
    let caseInsensitive: Bool
    public let pattern: String

    public struct SyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
        /// 1-based position, in Unicode scalars of the pattern.
        public let position: Int
        public let reason: String
        public var description: String { "at \(position) of the pattern: \(reason)" }
    }

    public init(_ pattern: String) throws(SyntaxError) {
        var scalars = Array(pattern.unicodeScalars).map(\.value)
        guard scalars.count <= Self.maximumPatternLength else {
            throw SyntaxError(position: Self.maximumPatternLength + 1, reason: "a pattern is at most \(Self.maximumPatternLength) characters")
        }
        var insensitive = false
        var offset = 0
        if scalars.starts(with: [0x28, 0x3F, 0x69, 0x29]) {  // (?i)
            insensitive = true
            scalars.removeFirst(4)
            offset = 4
        }
        var parser = RegexParser(scalars: scalars, offset: offset)
        let tree = try parser.parseAll()
        var compiler = RegexCompiler(caseInsensitive: insensitive)
        compiler.emit(.save(0))
        try compiler.compile(tree)
        compiler.emit(.save(1))
        compiler.emit(.match)
        guard compiler.program.count <= Self.maximumProgramLength else {
            throw SyntaxError(position: 1, reason: "the pattern expands to more than \(Self.maximumProgramLength) steps; use fewer or smaller counted repetitions")
        }
        self.program = compiler.program
        self.ranges = compiler.ranges
        self.classes = compiler.classes
        self.starters = Self.starters(of: compiler.program)
        self.anchoredAtStart = Self.isAnchoredAtStart(compiler.program)
        self.groupCount = parser.groupCount
        self.caseInsensitive = insensitive
        self.pattern = pattern
    }

    typealias Program = UnsafeBufferPointer<Instruction>
    typealias Ranges = UnsafeBufferPointer<ClosedRange<UInt32>>

    /// A class: its ranges in the range table, and its members below 128 as a bitmap (so ASCII
    /// input, nearly all of it, is tested with one shift).
    struct Class: Sendable {
        let start: Int
        let count: Int
        let negated: Bool
        let low: UInt64
        let high: UInt64

        init(start: Int, count: Int, negated: Bool, ranges: [ClosedRange<UInt32>]) {
            self.start = start
            self.count = count
            self.negated = negated
            var low: UInt64 = 0, high: UInt64 = 0
            for c in UInt32(0)..<128 where ranges[start..<(start + count)].contains(where: { $0.contains(c) }) != negated {
                if c < 64 { low |= 1 << c } else { high |= 1 << (c - 64) }
            }
            self.low = low
            self.high = high
        }
    }

    @inline(__always) static func inSet(_ c: UInt32, _ set: Class, _ ranges: Ranges) -> Bool {
        if c < 64 { return (set.low >> c) & 1 != 0 }
        if c < 128 { return (set.high >> (c - 64)) & 1 != 0 }
        var inside = false
        for k in set.start..<(set.start + set.count) where ranges[k].contains(c) {
            inside = true
            break
        }
        return inside != set.negated
    }

    /// Whether a match could begin with `c`: what the program can consume first, when that is
    /// known (no anchor, `.` or empty match first), lets the search skip hopeless positions.
    private func couldStart(_ c: UInt32, _ starters: [Instruction], _ ranges: Ranges) -> Bool {
        for s in starters {
            switch s {
            case .scalar(let x): if x == c { return true }
            case .set(let k): if Self.inSet(c, classes[k], ranges) { return true }
            default: return true
            }
        }
        return false
    }

    // MARK: Searching

    /// The two engines, which find the same matches with the same groups.
    enum Engine {
        /// A bounded backtracker (RE2's "BitState"): a depth-first search in the pattern's order of
        /// preference that marks each (instruction, position) it visits and never visits one twice,
        /// so it also costs at most program × input steps. It needs one bit per pair, so it serves
        /// short inputs, where it is several times faster than the Pike VM.
        case backtrack
        /// A Pike virtual machine: every thread advanced in step over the input.
        case pike
    }

    /// Largest program × (input + 1) searched by the backtracker; its marks take this many bits
    /// and its stack at most this many words.
    static let maximumBacktrackCells = 4096

    /// Runs `body` with a searcher over `input` and the memory its engine needs, on the stack when
    /// small; a replace-all reuses it for every match. `engine` is for tests; by default the
    /// backtracker takes inputs it can mark and the Pike VM the rest.
    func withSearcher<R>(_ input: UnsafeBufferPointer<UInt32>, engine: Engine? = nil, _ body: (inout Searcher) -> R) -> R {
        let n = program.count, slots = 2 * (groupCount + 1)
        let cells = n * (input.count + 1)
        let engine = engine ?? (cells <= Self.maximumBacktrackCells ? .backtrack : .pike)
        let scratch: Int
        switch engine {
        case .backtrack: scratch = (cells + 63) / 64 + cells + 1  // marks, then the job stack
        case .pike: scratch = 2 * (n + n * slots + n) + 3 * (2 * n + 2)
        }
        return program.withUnsafeBufferPointer { program in
            ranges.withUnsafeBufferPointer { ranges in
                withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * slots + scratch) { buffer in
                    let base = buffer.baseAddress!
                    var searcher = Searcher(
                        program: program, ranges: ranges, input: input, slots: slots, engine: engine,
                        captures: base, matched: base + slots, scratch: base + 2 * slots, programLength: n)
                    return body(&searcher)
                }
            }
        }
    }

    /// One search's view of the pattern, the input and its working memory.
    struct Searcher {
        let program: Program
        let ranges: Ranges
        let input: UnsafeBufferPointer<UInt32>
        let slots: Int
        let engine: Engine
        /// The groups of the path being followed.
        let captures: UnsafeMutablePointer<Int>
        /// The groups of the last match: start and end offsets per group, -1 when it took no part.
        let matched: UnsafeMutablePointer<Int>
        let scratch: UnsafeMutablePointer<Int>
        var machine: Machine?

        init(
            program: Program, ranges: Ranges, input: UnsafeBufferPointer<UInt32>, slots: Int, engine: Engine,
            captures: UnsafeMutablePointer<Int>, matched: UnsafeMutablePointer<Int>, scratch: UnsafeMutablePointer<Int>, programLength n: Int
        ) {
            self.program = program
            self.ranges = ranges
            self.input = input
            self.slots = slots
            self.engine = engine
            self.captures = captures
            self.matched = matched
            self.scratch = scratch
            if engine == .pike {
                let m = Machine(base: scratch, programLength: n, slots: slots)
                // Only the marks are read before they are written.
                m.currentMarks.initialize(repeating: 0, count: n)
                m.nextMarks.initialize(repeating: 0, count: n)
                machine = m
            }
        }

        /// Group `g` of the last match, if it took part.
        func group(_ g: Int) -> Range<Int>? {
            let a = matched[2 * g], b = matched[2 * g + 1]
            return a >= 0 && b >= a ? a..<b : nil
        }
    }

    /// The search's working memory for the Pike VM, carved out of one buffer: two thread lists
    /// (program counters, their captures, and generation marks so each counter is added once per
    /// step), and a stack for following jumps and splits.
    struct Machine {
        let slots: Int
        var currentPCs: UnsafeMutablePointer<Int>
        var currentCaptures: UnsafeMutablePointer<Int>
        var currentMarks: UnsafeMutablePointer<Int>
        var nextPCs: UnsafeMutablePointer<Int>
        var nextCaptures: UnsafeMutablePointer<Int>
        var nextMarks: UnsafeMutablePointer<Int>
        var currentCount = 0
        var nextCount = 0
        var currentStamp = 1
        var nextStamp = 2
        let stack: UnsafeMutablePointer<Int>

        init(base: UnsafeMutablePointer<Int>, programLength n: Int, slots: Int) {
            self.slots = slots
            var p = base
            func take(_ k: Int) -> UnsafeMutablePointer<Int> {
                defer { p += k }
                return p
            }
            currentPCs = take(n); currentCaptures = take(n * slots); currentMarks = take(n)
            nextPCs = take(n); nextCaptures = take(n * slots); nextMarks = take(n)
            stack = take(3 * (2 * n + 2))
        }

        mutating func reset() {
            currentCount = 0
            nextCount = 0
            currentStamp += 2
            nextStamp += 2
        }

        /// The next list becomes the current one; the old current list is emptied to be the next.
        mutating func advance() {
            swap(&currentPCs, &nextPCs)
            swap(&currentCaptures, &nextCaptures)
            swap(&currentMarks, &nextMarks)
            swap(&currentStamp, &nextStamp)
            currentCount = nextCount
            nextCount = 0
            nextStamp += 2
        }
    }

    /// Finds the first (leftmost, then by the pattern's preferences) match at or after `start` and
    /// leaves its groups in `searcher.matched`.
    ///
    /// Each step costs one unit of `budget`; when it runs out the search stops, returning `false`
    /// with `budget` negative.
    func find(_ s: inout Searcher, from start: Int, budget: inout Int) -> Bool {
        let program = s.program, input = s.input
        if program.count == 4, groupCount == 0, case .save(0) = program[0], case .save(1) = program[2], Self.consumes(program[1]) {
            // One scalar or class (`[^0-9]`, `-`): a scan finds the same leftmost match. (Not an
            // anchor alone, which matches the empty text.)
            var position = start
            while position < input.count {
                let c = fold(input[position])
                let hit: Bool
                switch program[1] {
                case .scalar(let x): hit = c == x
                case .set(let k): hit = Self.inSet(c, classes[k], s.ranges)
                default: hit = c != 0x0A  // .any
                }
                budget -= 1
                if hit {
                    s.matched[0] = position
                    s.matched[1] = position + 1
                    return true
                }
                position += 1
            }
            return false
        }
        switch s.engine {
        case .backtrack: return backtrack(&s, from: start, budget: &budget)
        case .pike: return pike(&s, from: start, budget: &budget)
        }
    }

    /// Whether `step` reads one input scalar.
    static func consumes(_ step: Instruction) -> Bool {
        switch step {
        case .scalar, .set, .any: true
        default: false
        }
    }

    /// The backtracker. A job on its stack is either a place to resume (instruction and position)
    /// or, negated, a group to restore (slot and old value) when the search backs out of a save.
    private func backtrack(_ s: inout Searcher, from start: Int, budget: inout Int) -> Bool {
        let program = s.program, ranges = s.ranges, input = s.input, captures = s.captures
        let count = input.count, width = count + 1
        let words = (program.count * width + 63) / 64
        // A pair that failed once fails again from any start (captures do not change whether the
        // rest matches), so the marks are kept across start positions.
        let marks = s.scratch
        marks.update(repeating: 0, count: words)
        let jobs = s.scratch + words
        var position = start
        while position <= count {
            if anchoredAtStart && position > 0 { return false }
            if let starters {
                let from = position
                while position < count && !couldStart(fold(input[position]), starters, ranges) { position += 1 }
                budget -= 1 + (position - from) >> 3  // a unit per eight scalars skipped
                if position >= count { return false }
            }
            for k in 0..<s.slots { captures[k] = -1 }
            jobs[0] = position
            var top = 1
            while top > 0 {
                top -= 1
                let job = jobs[top]
                if job < 0 {
                    let restore = ~job
                    captures[restore >> 32] = (restore & 0xFFFF_FFFF) - 1
                    continue
                }
                var pc = job >> 32, at = job & 0xFFFF_FFFF
                path: while true {
                    let cell = pc * width + at
                    let bit = 1 &<< (cell & 63)
                    if marks[cell >> 6] & bit != 0 { break path }
                    marks[cell >> 6] |= bit
                    budget -= 1
                    if budget < 0 { return false }
                    switch program[pc] {
                    case .match:
                        for k in 0..<s.slots { s.matched[k] = captures[k] }
                        return true
                    case .scalar(let x):
                        guard at < count, fold(input[at]) == x else { break path }
                        pc += 1
                        at += 1
                    case .any:
                        guard at < count, input[at] != 0x0A else { break path }
                        pc += 1
                        at += 1
                    case .set(let k):
                        guard at < count, Self.inSet(fold(input[at]), classes[k], ranges) else { break path }
                        pc += 1
                        at += 1
                    case .split(let preferred, let other):
                        jobs[top] = other << 32 | at
                        top += 1
                        pc = preferred
                    case .jump(let target):
                        pc = target
                    case .save(let slot):
                        jobs[top] = ~(slot << 32 | (captures[slot] + 1))
                        top += 1
                        captures[slot] = at
                        pc += 1
                    case .assertStart:
                        guard at == 0 else { break path }
                        pc += 1
                    case .assertEnd:
                        guard at == count else { break path }
                        pc += 1
                    }
                }
            }
            position += 1
        }
        return false
    }

    private func pike(_ s: inout Searcher, from start: Int, budget: inout Int) -> Bool {
        let program = s.program, ranges = s.ranges, input = s.input, slots = s.slots
        var m = s.machine!
        defer { s.machine = m }
        m.reset()
        var found = false
        var position = start
        let count = input.count
        while true {
            if !found && (!anchoredAtStart || position == 0) {
                if m.currentCount == 0, let starters {
                    // Nothing under way: jump to where a match could begin.
                    let from = position
                    while position < count && !couldStart(fold(input[position]), starters, ranges) { position += 1 }
                    budget -= 1 + (position - from) >> 3  // a unit per eight scalars skipped
                    if position >= count { break }
                }
                for k in 0..<slots { s.captures[k] = -1 }
                addThread(program, &m, s.captures, toNext: false, pc: 0, position: position, count: count)
            }
            if m.currentCount == 0 { break }
            // A thread's step costs a unit, and another per eight capture slots it copies.
            budget -= m.currentCount * (1 + slots >> 3)
            if budget < 0 { return false }
            let c: UInt32 = position < count ? fold(input[position]) : UInt32.max
            var i = 0
            while i < m.currentCount {
                let pc = m.currentPCs[i]
                var step = false
                switch program[pc] {
                case .match:
                    for k in 0..<slots { s.matched[k] = m.currentCaptures[i * slots + k] }
                    found = true
                    // Lower-priority threads are cut off: the leftmost-first match is this one.
                    m.currentCount = i + 1
                case .scalar(let x): step = c == x
                case .any: step = c != UInt32.max && c != 0x0A
                case .set(let k): step = c != UInt32.max && Self.inSet(c, classes[k], ranges)
                default: break
                }
                if step {
                    for k in 0..<slots { s.captures[k] = m.currentCaptures[i * slots + k] }
                    addThread(program, &m, s.captures, toNext: true, pc: pc + 1, position: position + 1, count: count)
                }
                i += 1
            }
            if position >= count { break }
            position += 1
            m.advance()
        }
        return found
    }

    /// Follows jumps, splits, saves and assertions from `pc`, adding every thread that waits on an
    /// input scalar (or matches) to the current or next list, in priority order, each program
    /// counter at most once per list and step.
    private func addThread(_ program: Program, _ m: inout Machine, _ captures: UnsafeMutablePointer<Int>, toNext: Bool, pc start: Int, position: Int, count: Int) {
        // A stack of (pc, slot to restore, old value) triples: recursion depth would follow the
        // pattern. Each program counter is pushed at most twice (split and jump) before it is
        // marked, and each save pushes one restore, so 3 × (2n + 2) Ints suffice.
        let pcs = toNext ? m.nextPCs : m.currentPCs
        let caps = toNext ? m.nextCaptures : m.currentCaptures
        let marks = toNext ? m.nextMarks : m.currentMarks
        let stamp = toNext ? m.nextStamp : m.currentStamp
        var listCount = toNext ? m.nextCount : m.currentCount
        let slots = m.slots
        let stack = m.stack
        var top = 0
        func push(_ pc: Int, _ slot: Int, _ value: Int) {
            stack[top] = pc
            stack[top + 1] = slot
            stack[top + 2] = value
            top += 3
        }
        push(start, -1, 0)
        while top > 0 {
            top -= 3
            let pc = stack[top], slot = stack[top + 1]
            if slot >= 0 {
                captures[slot] = stack[top + 2]
                if pc < 0 { continue }
            }
            if marks[pc] == stamp { continue }
            marks[pc] = stamp
            switch program[pc] {
            case .jump(let target):
                push(target, -1, 0)
            case .split(let first, let second):
                push(second, -1, 0)
                push(first, -1, 0)
            case .save(let s):
                push(-1, s, captures[s])
                captures[s] = position
                push(pc + 1, -1, 0)
            case .assertStart:
                if position == 0 { push(pc + 1, -1, 0) }
            case .assertEnd:
                if position == count { push(pc + 1, -1, 0) }
            default:
                pcs[listCount] = pc
                for k in 0..<slots { caps[listCount * slots + k] = captures[k] }
                listCount += 1
            }
        }
        if toNext { m.nextCount = listCount } else { m.currentCount = listCount }
    }

    /// What the program can do first from the start: the instructions reached by following jumps,
    /// splits and saves (an anchor, a consumer, or the match itself).
    static func firstSteps(of program: [Instruction]) -> [Instruction] {
        var seen = Set<Int>()
        var stack = [0]
        var out: [Instruction] = []
        while let pc = stack.popLast() {
            guard seen.insert(pc).inserted else { continue }
            switch program[pc] {
            case .jump(let t): stack.append(t)
            case .split(let a, let b): stack += [a, b]
            case .save: stack.append(pc + 1)
            default: out.append(program[pc])
            }
        }
        return out
    }

    /// Whether every path from the start meets `^` before consuming anything.
    static func isAnchoredAtStart(_ program: [Instruction]) -> Bool {
        firstSteps(of: program).allSatisfy { if case .assertStart = $0 { true } else { false } }
    }

    /// The instructions that can consume the first scalar of a match; `nil` if an anchor, `.` or the
    /// match itself can come first.
    static func starters(of program: [Instruction]) -> [Instruction]? {
        let first = firstSteps(of: program)
        let simple = first.allSatisfy { step in
            switch step {
            case .scalar, .set: true
            default: false
            }
        }
        return simple ? first : nil
    }

    @inline(__always) private func fold(_ c: UInt32) -> UInt32 {
        guard caseInsensitive else { return c }
        return Self.lowercase(c)
    }

    static func lowercase(_ c: UInt32) -> UInt32 {
        if c >= 0x41 && c <= 0x5A { return c + 0x20 }
        if c < 0x80 { return c }
        guard let s = Unicode.Scalar(c), s.properties.changesWhenLowercased, let l = s.properties.lowercaseMapping.unicodeScalars.first,
            s.properties.lowercaseMapping.unicodeScalars.count == 1
        else { return c }
        return l.value
    }

    /// `s` with the lower-case twin of every upper-case scalar it holds: the input is lowered
    /// before matching, so `(?i)[É]` must hold "é" to match "É" or "é".
    static func folded(_ s: ScalarSet) -> ScalarSet {
        var extra: [ClosedRange<UInt32>] = []
        for r in s.ranges {
            let lo = max(r.lowerBound, 0x41), hi = min(r.upperBound, 0x5A)
            if lo <= hi { extra.append((lo + 0x20)...(hi + 0x20)) }
            guard r.upperBound >= 0x80 else { continue }
            let table = upperToLower
            // The first upper-case scalar at or after the range's start.
            var a = 0, b = table.count
            while a < b {
                let m = (a + b) / 2
                if table[m].upper < r.lowerBound { a = m + 1 } else { b = m }
            }
            while a < table.count && table[a].upper <= r.upperBound {
                extra.append(table[a].lower...table[a].lower)
                a += 1
            }
        }
        var folded = s
        folded.ranges = coalesced(s.ranges + extra)
        return folded
    }

    /// Every scalar above ASCII whose lower case (by `lowercase`) differs from it, sorted: about
    /// 1,400 pairs, made once.
    static let upperToLower: [(upper: UInt32, lower: UInt32)] = {
        var pairs: [(upper: UInt32, lower: UInt32)] = []
        for c in UInt32(0x80)...0x1FFFF where !(0xD800...0xDFFF).contains(c) {
            let l = lowercase(c)
            if l != c { pairs.append((c, l)) }
        }
        return pairs
    }()

    /// `ranges` sorted, with overlapping and adjacent ones merged.
    static func coalesced(_ ranges: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
        var out: [ClosedRange<UInt32>] = []
        for r in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = out.last, r.lowerBound <= last.upperBound &+ 1 {
                out[out.count - 1] = last.lowerBound...max(last.upperBound, r.upperBound)
            } else {
                out.append(r)
            }
        }
        return out
    }

    // MARK: Matching strings

    /// Longest input a search reads, in Unicode scalars; a longer value does not match.
    public static let maximumInput = 4096

    /// Runs `body` over the Unicode scalars of `value`, decoded into memory on the stack when short;
    /// `nil` without calling it when `value` is longer than `maximumInput`.
    static func withScalars<R>(of value: String, _ body: (UnsafeBufferPointer<UInt32>) -> R) -> R? {
        var copy = value
        return copy.withUTF8 { withScalars(utf8: $0, body) }
    }

    /// `withScalars` for UTF-8 that came from a Swift string (so it is valid).
    static func withScalars<R>(utf8: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt32>) -> R) -> R? {
        guard utf8.count <= 4 * maximumInput else { return nil }
        return withUnsafeTemporaryAllocation(of: UInt32.self, capacity: max(utf8.count, 1)) { buffer -> R? in
            var n = 0
            // Valid UTF-8: each lead byte says how many follow.
            var i = 0
            while i < utf8.count {
                let b = UInt32(utf8[i])
                if b < 0x80 {
                    buffer[n] = b
                    i += 1
                } else if b < 0xE0 {
                    buffer[n] = (b & 0x1F) << 6 | UInt32(utf8[i + 1] & 0x3F)
                    i += 2
                } else if b < 0xF0 {
                    buffer[n] = (b & 0x0F) << 12 | UInt32(utf8[i + 1] & 0x3F) << 6 | UInt32(utf8[i + 2] & 0x3F)
                    i += 3
                } else {
                    buffer[n] = (b & 0x07) << 18 | UInt32(utf8[i + 1] & 0x3F) << 12 | UInt32(utf8[i + 2] & 0x3F) << 6 | UInt32(utf8[i + 3] & 0x3F)
                    i += 4
                }
                n += 1
            }
            guard n <= maximumInput else { return nil }
            return body(UnsafeBufferPointer(rebasing: buffer[0..<n]))
        }
    }

    /// Whether the pattern matches anywhere in `value`.
    public func matches(_ value: String) -> Bool {
        var unlimited = Int.max
        return matches(value, budget: &unlimited)
    }

    /// `matches`, spending `budget`; a value longer than `maximumInput` does not match.
    func matches(_ value: String, budget: inout Int) -> Bool {
        Self.withScalars(of: value) { matches(scalars: $0, budget: &budget) } ?? false
    }

    func matches(scalars input: UnsafeBufferPointer<UInt32>, budget: inout Int) -> Bool {
        withSearcher(input) { find(&$0, from: 0, budget: &budget) }
    }

    /// The first capture group of the first match (the whole match if the pattern has no group), or
    /// `nil` when nothing matches.
    public func extract(_ value: String) -> String? {
        var unlimited = Int.max
        return Self.withScalars(of: value) { input -> String? in
            guard let range = extractRange(scalars: input, budget: &unlimited) else { return nil }
            var out = UTF8Output(capacity: range.count)
            out.append(input, range)
            return out.string
        } ?? nil
    }

    /// Where in `input` `extract` finds its text (empty when the group took no part), spending
    /// `budget`; `nil` when nothing matches.
    func extractRange(scalars input: UnsafeBufferPointer<UInt32>, budget: inout Int) -> Range<Int>? {
        withSearcher(input) { s -> Range<Int>? in
            guard find(&s, from: 0, budget: &budget) else { return nil }
            return s.group(groupCount >= 1 ? 1 : 0) ?? 0..<0
        }
    }

    /// Every non-overlapping match replaced by `template`, where `$0`…`$9` insert groups and `$$` a dollar.
    public func replaceAll(in value: String, with template: String) -> String {
        var unlimited = Int.max
        let replacement = Replacement(template)
        return Self.withScalars(of: value) { input -> String in
            var out = UTF8Output(capacity: input.count + 16)
            _ = replaceAll(scalars: input, with: replacement, into: &out, budget: &unlimited)
            return out.string
        } ?? value
    }

    /// A replacement template split once into literals and `$n` groups.
    struct Replacement: Sendable {
        let parts: [TemplatePart]
        init(_ template: String) { parts = SafeRegex.parseTemplate(template) }
    }

    /// How a replacement ended.
    enum ReplaceOutcome: Equatable {
        case done
        /// The search spent its budget; what was written is incomplete.
        case outOfBudget
        /// The output would have passed its limit; what was written is incomplete and within it.
        case tooLong
    }

    /// Writes `input` with every non-overlapping match replaced to `out`, spending `budget` and
    /// writing at most `limit` bytes (each piece is checked before it is written, so a hostile
    /// template never builds more than the limit).
    func replaceAll<Sink: ScalarSink>(scalars input: UnsafeBufferPointer<UInt32>, with replacement: Replacement, into out: inout Sink, budget: inout Int, limit: Int = .max) -> ReplaceOutcome {
        let parts = replacement.parts
        let end = out.byteCount > Int.max - limit ? Int.max : out.byteCount + limit
        return withSearcher(input) { s -> ReplaceOutcome in
            var position = 0
            var copied = 0
            // A scalar is one to four bytes: the check is exact for ASCII and never lets more than
            // four times the limit through.
            func fits(_ bytes: Int) -> Bool { bytes <= end - out.byteCount }
            while position <= input.count, find(&s, from: position, budget: &budget), let whole = s.group(0) {
                guard fits(whole.lowerBound - copied) else { return .tooLong }
                out.append(input, copied..<whole.lowerBound)
                for part in parts {
                    switch part {
                    case .literal(let utf8):
                        guard fits(utf8.count) else { return .tooLong }
                        out.append(utf8: utf8)
                    case .group(let g):
                        if g <= groupCount, let r = s.group(g) {
                            guard fits(r.count) else { return .tooLong }
                            out.append(input, r)
                        }
                    }
                }
                copied = whole.upperBound
                position = whole.isEmpty ? whole.upperBound + 1 : whole.upperBound
                if whole.isEmpty && whole.upperBound < input.count {
                    guard fits(1) else { return .tooLong }
                    out.append(input, whole.upperBound..<(whole.upperBound + 1))
                    copied = whole.upperBound + 1
                }
            }
            if budget < 0 { return .outOfBudget }
            guard fits(input.count - copied) else { return .tooLong }
            out.append(input, copied..<input.count)
            return out.byteCount <= end ? .done : .tooLong
        }
    }

    enum TemplatePart: Sendable {
        case literal([UInt8])
        case group(Int)
    }

    static func parseTemplate(_ template: String) -> [TemplatePart] {
        var parts: [TemplatePart] = []
        var literal = ""
        var it = template.unicodeScalars.makeIterator()
        while let c = it.next() {
            guard c == "$" else {
                literal.unicodeScalars.append(c)
                continue
            }
            guard let d = it.next() else {
                literal.append("$")
                break
            }
            if d == "$" {
                literal.append("$")
            } else if let v = Int(String(d)), d.isASCII {
                if !literal.isEmpty { parts.append(.literal(Array(literal.utf8))) }
                literal = ""
                parts.append(.group(v))
            } else {
                literal.append("$")
                literal.unicodeScalars.append(d)
            }
        }
        if !literal.isEmpty { parts.append(.literal(Array(literal.utf8))) }
        return parts
    }

    /// UTF-8 text built from scalars that came from a Swift string (so each is a valid scalar).
    struct UTF8Output: ScalarSink {
        var bytes: [UInt8] = []

        init(capacity: Int) { bytes.reserveCapacity(capacity) }

        var byteCount: Int { bytes.count }

        mutating func append(_ scalars: UnsafeBufferPointer<UInt32>, _ range: Range<Int>) {
            for k in range { UTF8.encode(Unicode.Scalar(scalars[k]).unsafelyUnwrapped) { bytes.append($0) } }
        }

        mutating func append(utf8: [UInt8]) { bytes += utf8 }

        var string: String { String(decoding: bytes, as: UTF8.self) }
    }

}

/// Where a replacement writes its text: scalars of the input and UTF-8 of the template.
protocol ScalarSink {
    /// Bytes written so far.
    var byteCount: Int { get }
    mutating func append(_ scalars: UnsafeBufferPointer<UInt32>, _ range: Range<Int>)
    mutating func append(utf8: [UInt8])
}

// MARK: Parsing

indirect enum RegexNode {
    case empty
    case scalar(UInt32)
    case any
    case set(SafeRegex.ScalarSet)
    case start
    case end
    case group(RegexNode, capture: Int?)
    case concat([RegexNode])
    case alternate([RegexNode])
    case repeated(RegexNode, min: Int, max: Int?, greedy: Bool)
}

struct RegexParser {
    let scalars: [UInt32]
    let offset: Int
    var index = 0
    var groupCount = 0
    var depth = 0

    init(scalars: [UInt32], offset: Int) {
        self.scalars = scalars
        self.offset = offset
    }

    func fail(_ reason: String, at i: Int? = nil) -> SafeRegex.SyntaxError {
        SafeRegex.SyntaxError(position: (i ?? index) + offset + 1, reason: reason)
    }

    var peek: UInt32? { index < scalars.count ? scalars[index] : nil }

    mutating func parseAll() throws(SafeRegex.SyntaxError) -> RegexNode {
        let node = try parseAlternation()
        if index < scalars.count { throw fail("unbalanced ')'") }
        return node
    }

    mutating func parseAlternation() throws(SafeRegex.SyntaxError) -> RegexNode {
        var branches = [try parseConcat()]
        while peek == 0x7C {  // |
            index += 1
            branches.append(try parseConcat())
        }
        return branches.count == 1 ? branches[0] : .alternate(branches)
    }

    mutating func parseConcat() throws(SafeRegex.SyntaxError) -> RegexNode {
        var items: [RegexNode] = []
        while let c = peek, c != 0x7C, c != 0x29 {
            var atom = try parseAtom()
            atom = try parseQuantifiers(atom)
            items.append(atom)
        }
        return items.count == 1 ? items[0] : (items.isEmpty ? .empty : .concat(items))
    }

    mutating func parseQuantifiers(_ atom: RegexNode) throws(SafeRegex.SyntaxError) -> RegexNode {
        var node = atom
        var quantified = false
        while let c = peek, [0x2A, 0x2B, 0x3F, 0x7B].contains(c) {
            let at = index
            if quantified { throw fail("a quantifier cannot follow another quantifier", at: at) }
            if case .start = node { throw fail("nothing to repeat", at: at) }
            if case .end = node { throw fail("nothing to repeat", at: at) }
            var minimum = 0
            var maximum: Int? = nil
            index += 1
            switch c {
            case 0x2A: break
            case 0x2B: minimum = 1
            case 0x3F: maximum = 1
            default:
                (minimum, maximum) = try parseCount(at: at)
            }
            var greedy = true
            if peek == 0x3F {
                greedy = false
                index += 1
            }
            node = .repeated(node, min: minimum, max: maximum, greedy: greedy)
            quantified = true
        }
        return node
    }

    mutating func parseCount(at start: Int) throws(SafeRegex.SyntaxError) -> (Int, Int?) {
        func number(_ p: inout RegexParser) -> Int? {
            var v = 0
            var digits = 0
            while let c = p.peek, c >= 0x30, c <= 0x39, digits < 4 {
                v = v * 10 + Int(c - 0x30)
                digits += 1
                p.index += 1
            }
            return digits == 0 ? nil : v
        }
        guard let low = number(&self) else { throw fail("expected a number in {n,m}", at: start) }
        var high: Int? = low
        if peek == 0x2C {
            index += 1
            high = number(&self)
        }
        guard peek == 0x7D else { throw fail("expected '}'", at: start) }
        index += 1
        guard low <= 100, (high ?? 0) <= 100, high.map({ $0 >= low }) ?? true else {
            throw fail("counted repetition is limited to {0,100} with n ≤ m", at: start)
        }
        return (low, high)
    }

    mutating func parseAtom() throws(SafeRegex.SyntaxError) -> RegexNode {
        let at = index
        let c = scalars[index]
        index += 1
        switch c {
        case 0x28:  // (
            depth += 1
            guard depth <= 32 else { throw fail("groups nest at most 32 deep", at: at) }
            defer { depth -= 1 }
            var capture: Int? = nil
            if peek == 0x3F {
                guard index + 1 < scalars.count, scalars[index + 1] == 0x3A else {
                    throw fail("only (?:…) groups are supported; look-around and inline flags other than a leading (?i) are not", at: at)
                }
                index += 2
            } else {
                groupCount += 1
                capture = groupCount
            }
            let inner = try parseAlternation()
            guard peek == 0x29 else { throw fail("missing ')'", at: at) }
            index += 1
            return .group(inner, capture: capture)
        case 0x5B: return try parseClass(at: at)
        case 0x2E: return .any
        case 0x5E: return .start
        case 0x24: return .end
        case 0x2A, 0x2B, 0x3F, 0x7B: throw fail("nothing to repeat", at: at)
        case 0x5C: return try parseEscape(at: at, inClass: false).node
        default: return .scalar(c)
        }
    }

    static let digit: [ClosedRange<UInt32>] = [0x30...0x39]
    static let word: [ClosedRange<UInt32>] = [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A]
    static let space: [ClosedRange<UInt32>] = [0x09...0x0D, 0x20...0x20, 0xA0...0xA0, 0x2028...0x2029]

    /// An escape after `\`: a class shorthand, or one literal scalar.
    mutating func parseEscape(at: Int, inClass: Bool) throws(SafeRegex.SyntaxError) -> (node: RegexNode, ranges: [ClosedRange<UInt32>]?, negated: Bool) {
        guard let e = peek else { throw fail("a pattern cannot end with '\\'", at: at) }
        index += 1
        switch e {
        case 0x64: return (.set(.init(ranges: Self.digit, negated: false)), Self.digit, false)  // \d
        case 0x44: return (.set(.init(ranges: Self.digit, negated: true)), Self.digit, true)
        case 0x77: return (.set(.init(ranges: Self.word, negated: false)), Self.word, false)  // \w
        case 0x57: return (.set(.init(ranges: Self.word, negated: true)), Self.word, true)
        case 0x73: return (.set(.init(ranges: Self.space, negated: false)), Self.space, false)  // \s
        case 0x53: return (.set(.init(ranges: Self.space, negated: true)), Self.space, true)
        case 0x6E: return (.scalar(0x0A), [0x0A...0x0A], false)
        case 0x74: return (.scalar(0x09), [0x09...0x09], false)
        case 0x72: return (.scalar(0x0D), [0x0D...0x0D], false)
        case 0x31...0x39: throw fail("back-references are not supported (they cannot be matched in linear time)", at: at)
        case 0x62, 0x42, 0x41, 0x7A, 0x5A, 0x47, 0x6B: throw fail("this escape is not supported", at: at)
        default:
            // Any other escaped punctuation is itself; escaped letters are reserved.
            let isLetter = (e >= 0x41 && e <= 0x5A) || (e >= 0x61 && e <= 0x7A)
            if isLetter { throw fail("unknown escape", at: at) }
            return (.scalar(e), [e...e], false)
        }
    }

    mutating func parseClass(at: Int) throws(SafeRegex.SyntaxError) -> RegexNode {
        var negated = false
        if peek == 0x5E {
            negated = true
            index += 1
        }
        var ranges: [ClosedRange<UInt32>] = []
        var first = true
        while true {
            guard let c = peek else { throw fail("missing ']'", at: at) }
            if c == 0x5D && !first {
                index += 1
                break
            }
            first = false
            let itemAt = index
            index += 1
            var low = c
            if c == 0x5C {
                let escaped = try parseEscape(at: itemAt, inClass: true)
                if escaped.negated { throw fail("a negated shorthand (\\D, \\W, \\S) cannot go inside [...]", at: itemAt) }
                guard let r = escaped.ranges else { throw fail("unsupported escape in [...]", at: itemAt) }
                if r.count != 1 || r[0].count != 1 {
                    ranges.append(contentsOf: r)
                    continue
                }
                low = r[0].lowerBound
            }
            if peek == 0x2D, index + 1 < scalars.count, scalars[index + 1] != 0x5D {
                index += 1
                var high = scalars[index]
                index += 1
                if high == 0x5C {
                    let escaped = try parseEscape(at: index - 1, inClass: true)
                    guard let r = escaped.ranges, r.count == 1, r[0].count == 1 else { throw fail("a range must end with one character", at: itemAt) }
                    high = r[0].lowerBound
                }
                guard low <= high else { throw fail("a range must go from low to high", at: itemAt) }
                ranges.append(low...high)
            } else {
                ranges.append(low...low)
            }
        }
        return .set(.init(ranges: ranges, negated: negated))
    }
}

// MARK: Compiling

struct RegexCompiler {
    var program: [SafeRegex.Instruction] = []
    var ranges: [ClosedRange<UInt32>] = []
    var classes: [SafeRegex.Class] = []

    mutating func emitSet(_ set: SafeRegex.ScalarSet) {
        emit(.set(classes.count))
        let start = ranges.count
        ranges += set.ranges
        classes.append(SafeRegex.Class(start: start, count: set.ranges.count, negated: set.negated, ranges: ranges))
    }
    let caseInsensitive: Bool

    mutating func emit(_ i: SafeRegex.Instruction) { program.append(i) }

    mutating func compile(_ node: RegexNode) throws(SafeRegex.SyntaxError) {
        // Counted repetition multiplies the program; stop early rather than build a huge one.
        guard program.count <= SafeRegex.maximumProgramLength else {
            throw SafeRegex.SyntaxError(position: 1, reason: "the pattern expands to more than \(SafeRegex.maximumProgramLength) steps; use fewer or smaller counted repetitions")
        }
        switch node {
        case .empty: break
        case .scalar(let c):
            if caseInsensitive {
                let lower = SafeRegex.lowercase(c)
                emit(.scalar(lower))
            } else {
                emit(.scalar(c))
            }
        case .any: emit(.any)
        case .set(let s):
            if caseInsensitive {
                emitSet(SafeRegex.folded(s))
            } else {
                emitSet(s)
            }
        case .start: emit(.assertStart)
        case .end: emit(.assertEnd)
        case .group(let inner, let capture):
            if let capture { emit(.save(2 * capture)) }
            try compile(inner)
            if let capture { emit(.save(2 * capture + 1)) }
        case .concat(let items):
            for item in items { try compile(item) }
        case .alternate(let branches):
            var jumps: [Int] = []
            for (k, branch) in branches.enumerated() {
                if k < branches.count - 1 {
                    let split = program.count
                    emit(.split(split + 1, -1))
                    try compile(branch)
                    jumps.append(program.count)
                    emit(.jump(-1))
                    program[split] = .split(split + 1, program.count)
                } else {
                    try compile(branch)
                }
            }
            for j in jumps { program[j] = .jump(program.count) }
        case .repeated(let inner, let minimum, let maximum, let greedy):
            for _ in 0..<minimum { try compile(inner) }
            if let maximum {
                // Each optional copy: split(body, skip-all).
                var exits: [Int] = []
                for _ in minimum..<maximum {
                    let split = program.count
                    emit(.split(-1, -1))
                    exits.append(split)
                    try compile(inner)
                }
                let end = program.count
                for s in exits { program[s] = greedy ? .split(s + 1, end) : .split(end, s + 1) }
            } else {
                let split = program.count
                emit(.split(-1, -1))
                try compile(inner)
                emit(.jump(split))
                let end = program.count
                program[split] = greedy ? .split(split + 1, end) : .split(end, split + 1)
            }
        }
    }
}
