/// Text whose runs of combining marks are short enough to compare.
///
/// Swift compares and hashes strings in a normal form, and reaching it sorts each run of combining
/// marks in time that grows with the square of the run's length: a 64 KB value of 32,000 marks took
/// half a second to hash on this project's VM. Unicode's "stream-safe text format" (UAX #15) caps a
/// run at 30 marks, which no written language needs, so text from outside (forms, queries, JSON)
/// is refused past it, and the mapping language compares such text by its bytes alone.
public enum StreamSafeText {
    /// The most combining marks in a row that text may hold.
    public static let maximumRun = 30

    /// Whether no run of marks in `s` is longer than `maximumRun`. A mark is a scalar with a
    /// non-zero canonical combining class or of a mark category (which takes in letters such as
    /// U+0F73 that decompose into marks). Only scalars from U+0300 up are looked at: none below is
    /// a mark, and ASCII is passed over eight bytes at a time.
    public static func check(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { check(utf8: $0) }
    }

    /// `check` over valid UTF-8.
    public static func check(utf8: UnsafeBufferPointer<UInt8>) -> Bool {
        var run = Run()
        return run.feed(utf8: utf8)
    }

    /// A check over text that arrives in pieces (the text nodes of one XML value): a run of marks
    /// continues from one piece into the next.
    public struct Run: Sendable {
        var marks = 0

        public init() {}

        /// Reads `utf8` (valid UTF-8, decoded by its lead bytes; ASCII ends a run); `false` once a
        /// run passes `maximumRun`.
        public mutating func feed(utf8: UnsafeBufferPointer<UInt8>) -> Bool {
            var i = 0
            while true {
                let next = ASCIIScan.nextNonASCII(utf8, from: i)
                if next > i { marks = 0 }
                i = next
                guard i < utf8.count else { return true }
                let b = UInt32(utf8[i])
                var value: UInt32
                if b < 0xE0 {
                    guard i + 1 < utf8.count else { return true }
                    value = (b & 0x1F) << 6 | UInt32(utf8[i + 1] & 0x3F)
                    i += 2
                } else if b < 0xF0 {
                    guard i + 2 < utf8.count else { return true }
                    value = (b & 0x0F) << 12 | UInt32(utf8[i + 1] & 0x3F) << 6 | UInt32(utf8[i + 2] & 0x3F)
                    i += 3
                } else {
                    guard i + 3 < utf8.count else { return true }
                    value = (b & 0x07) << 18 | UInt32(utf8[i + 1] & 0x3F) << 12 | UInt32(utf8[i + 2] & 0x3F) << 6 | UInt32(utf8[i + 3] & 0x3F)
                    i += 4
                }
                guard value >= 0x300, let scalar = Unicode.Scalar(value), isMark(scalar) else {
                    marks = 0
                    continue
                }
                marks += 1
                if marks > maximumRun { return false }
            }
        }
    }

    @inline(__always) static func isMark(_ scalar: Unicode.Scalar) -> Bool {
        let p = scalar.properties
        if p.canonicalCombiningClass != .notReordered { return true }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark: return true
        default: return false
        }
    }
}

/// Byte scans over UTF-8 that pass ASCII eight bytes at a time.
public enum ASCIIScan {
    /// The index of the first byte of `bytes` at or after `start` that is not ASCII, or
    /// `bytes.count` when there is none.
    @inlinable
    public static func nextNonASCII(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        guard let base = bytes.baseAddress else { return bytes.count }
        let raw = UnsafeRawPointer(base), n = bytes.count
        var i = start
        while i + 8 <= n, raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 { i += 8 }
        while i < n, base[i] < 0x80 { i += 1 }
        return i
    }

    /// Whether every byte is ASCII.
    @inlinable
    public static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool { nextNonASCII(bytes, from: 0) == bytes.count }
}
