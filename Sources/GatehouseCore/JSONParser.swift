public import Foundation

extension JSONValue {
    /// Parses one JSON text (RFC 8259) strictly: no trailing data, no comments, nesting at most
    /// `maximumDepth`, and a member name repeated in one object is an error (a token whose claims a
    /// second parser would read differently is refused, not guessed at).
    ///
    /// Written by hand because it is on the hot path of every token verification.
    public static func parse<D: DataProtocol>(_ data: D, maximumDepth: Int = 32) throws -> JSONValue {
        try parse(bytes: Array(data), maximumDepth: maximumDepth)
    }

    /// `parse` for a byte array: not generic, so callers in other modules pay no generic dispatch.
    public static func parse(bytes: [UInt8], maximumDepth: Int = 32) throws -> JSONValue {
        var parser = JSONByteParser(bytes: bytes, maximumDepth: maximumDepth)
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw JSONParseError(offset: parser.index, reason: "trailing data") }
        return value
    }

    /// Parses a JSON object into its members; anything else is an error.
    public static func parseObject<D: DataProtocol>(_ data: D) throws -> [String: JSONValue] {
        try parseObject(bytes: Array(data))
    }

    public static func parseObject(bytes: [UInt8]) throws -> [String: JSONValue] {
        guard case .object(let o) = try parse(bytes: bytes) else { throw JSONParseError(offset: 0, reason: "not an object") }
        return o
    }
}

public struct JSONParseError: Error, Sendable, CustomStringConvertible {
    public let offset: Int
    public let reason: String
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

struct JSONByteParser {
    let bytes: [UInt8]
    let maximumDepth: Int
    var index = 0

    init(bytes: [UInt8], maximumDepth: Int) {
        self.bytes = bytes
        self.maximumDepth = maximumDepth
    }

    func fail(_ reason: String) -> JSONParseError { JSONParseError(offset: index, reason: reason) }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    mutating func expect(_ literal: StaticString) throws {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw fail("truncated literal") }
        let ok = literal.withUTF8Buffer { lit in (0..<count).allSatisfy { bytes[index + $0] == lit[$0] } }
        guard ok else { throw fail("unexpected literal") }
        index += count
    }

    mutating func value(depth: Int) throws -> JSONValue {
        guard depth <= maximumDepth else { throw fail("nested too deeply") }
        guard index < bytes.count else { throw fail("unexpected end") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        default: return .number(try number())
        }
    }

    mutating func object(depth: Int) throws -> JSONValue {
        index += 1
        var members = [String: JSONValue](minimumCapacity: 16)
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a member name") }
            let name = try string()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            index += 1
            skipWhitespace()
            let v = try value(depth: depth + 1)
            guard members.updateValue(v, forKey: name) == nil else { throw fail("member \(name) appears twice") }
            skipWhitespace()
            guard index < bytes.count else { throw fail("unterminated object") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
            throw fail("expected ',' or '}'")
        }
    }

    mutating func array(depth: Int) throws -> JSONValue {
        index += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            items.append(try value(depth: depth + 1))
            skipWhitespace()
            guard index < bytes.count else { throw fail("unterminated array") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
            throw fail("expected ',' or ']'")
        }
    }

    mutating func hex4() throws -> UInt32 {
        guard index + 4 <= bytes.count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[index]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("bad hex digit")
            }
            v = v << 4 | d
            index += 1
        }
        return v
    }

    mutating func string() throws -> String {
        index += 1
        let start = index
        // Fast path: no escapes; pure ASCII needs no UTF-8 validation.
        var ascii = true
        while index < bytes.count {
            let c = bytes[index]
            if c == UInt8(ascii: "\"") {
                let end = index
                let isASCII = ascii
                let s: String? = bytes.withUnsafeBufferPointer { all in
                    let slice = UnsafeBufferPointer(rebasing: all[start..<end])
                    return isASCII ? String(decoding: slice, as: UTF8.self) : String(validating: slice, as: UTF8.self)
                }
                guard let s else { throw fail("invalid UTF-8") }
                if !isASCII, !StreamSafeText.check(s) { throw fail("more than \(StreamSafeText.maximumRun) combining marks in a row") }
                index += 1
                return s
            }
            if c >= 0x80 { ascii = false }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw fail("control character in string") }
            index += 1
        }
        var out = Array(bytes[start..<index])
        while index < bytes.count {
            let c = bytes[index]
            if c == UInt8(ascii: "\"") {
                index += 1
                guard let s = String(validating: out, as: UTF8.self) else { throw fail("invalid UTF-8") }
                guard StreamSafeText.check(s) else { throw fail("more than \(StreamSafeText.maximumRun) combining marks in a row") }
                return s
            }
            if c < 0x20 { throw fail("control character in string") }
            if c != UInt8(ascii: "\\") {
                out.append(c)
                index += 1
                continue
            }
            index += 1
            guard index < bytes.count else { break }
            let e = bytes[index]
            index += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard index + 2 <= bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                        throw fail("lone surrogate")
                    }
                    index += 2
                    let low = try hex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw fail("bad surrogate pair") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw fail("lone surrogate")
                }
                guard let u = Unicode.Scalar(scalar) else { throw fail("bad code point") }
                out.append(contentsOf: Array(String(Character(u)).utf8))
            default: throw fail("bad escape")
            }
        }
        throw fail("unterminated string")
    }

    mutating func number() throws -> Double {
        let start = index
        var negative = false
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        guard index < bytes.count, (0x30...0x39).contains(bytes[index]) else { throw fail("unexpected character") }
        var integer: Int64 = 0
        var digits = 0
        if bytes[index] == 0x30 { index += 1; digits = 1 } else {
            while index < bytes.count, (0x30...0x39).contains(bytes[index]) {
                if digits < 18 { integer = integer * 10 + Int64(bytes[index] - 0x30) }
                digits += 1
                index += 1
            }
        }
        // Fast path: a plain integer of up to 15 digits is exact as a Double.
        if digits <= 15, index == bytes.count || (bytes[index] != UInt8(ascii: ".") && bytes[index] != UInt8(ascii: "e") && bytes[index] != UInt8(ascii: "E")) {
            return Double(negative ? -integer : integer)
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard index < bytes.count, (0x30...0x39).contains(bytes[index]) else { throw fail("bad fraction") }
            while index < bytes.count, (0x30...0x39).contains(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, (0x30...0x39).contains(bytes[index]) else { throw fail("bad exponent") }
            while index < bytes.count, (0x30...0x39).contains(bytes[index]) { index += 1 }
        }
        guard index - start <= 64, let d = Double(String(decoding: bytes[start..<index], as: UTF8.self)), d.isFinite else {
            throw fail("number out of range")
        }
        return d
    }
}
