public import Foundation

/// A JSON value: what a claim or an upstream attribute can be before it is flattened.
public enum JSONValue: Sendable, Equatable, Codable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case array([JSONValue])
    case object([String: JSONValue])
    case null

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .number(let n):
            if n.rounded() == n, abs(n) < 1e15 { try c.encode(Int64(n)) } else { try c.encode(n) }
        case .bool(let b): try c.encode(b)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        case .null: try c.encodeNil()
        }
    }

    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    public var numberValue: Double? { if case .number(let n) = self { n } else { nil } }

    /// The value as text for attribute mapping: numbers without a trailing `.0`, booleans as `true`/`false`.
    public var scalarText: String? {
        switch self {
        case .string(let s): s
        case .number(let n): (n.rounded() == n && abs(n) < 1e15) ? String(Int64(n)) : String(n)
        case .bool(let b): b ? "true" : "false"
        default: nil
        }
    }

    /// Flattens claims into `[name: [values]]`: nested objects by dotted path, arrays as several values.
    public static func flatten(_ claims: [String: JSONValue]) -> [String: [String]] {
        var out: [String: [String]] = [:]
        func walk(_ prefix: String, _ v: JSONValue, depth: Int) {
            guard depth < 8 else { return }
            switch v {
            case .null: return
            case .object(let o): for (k, x) in o { walk(prefix.isEmpty ? k : "\(prefix).\(k)", x, depth: depth + 1) }
            case .array(let a):
                for x in a {
                    if let s = x.scalarText { out[prefix, default: []].append(s) }
                }
            default: if let s = v.scalarText { out[prefix, default: []].append(s) }
            }
        }
        for (k, v) in claims { walk(k, v, depth: 0) }
        return out
    }
}

extension JSONValue {
    /// Compact JSON text of an object, written directly (no Foundation encoder on the token hot path).
    public static func serialize(object: [String: JSONValue]) -> String {
        serialize(.object(object))
    }

    /// Compact JSON text of any value; `sortedKeys` for a canonical text (diffs, comparisons).
    public static func serialize(_ value: JSONValue, sortedKeys: Bool = false) -> String {
        var out = ""
        out.reserveCapacity(512)
        write(value, into: &out, sortedKeys: sortedKeys)
        return out
    }

    static func write(_ v: JSONValue, into out: inout String, sortedKeys: Bool) {
        switch v {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n):
            if n.rounded() == n, abs(n) < 1e15 { out += String(Int64(n)) } else if n.isFinite { out += String(n) } else { out += "null" }
        case .string(let s): writeString(s, into: &out)
        case .array(let a):
            out += "["
            for (i, x) in a.enumerated() {
                if i > 0 { out += "," }
                write(x, into: &out, sortedKeys: sortedKeys)
            }
            out += "]"
        case .object(let o):
            out += "{"
            var first = true
            let members = sortedKeys ? o.sorted { $0.key < $1.key } : Array(o)
            for (k, x) in members {
                if !first { out += "," }
                first = false
                writeString(k, into: &out)
                out += ":"
                write(x, into: &out, sortedKeys: sortedKeys)
            }
            out += "}"
        }
    }

    static func writeString(_ s: String, into out: inout String) {
        out += "\""
        // Most strings need no escape: copy them whole rather than scalar by scalar.
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            out += s
            out += "\""
            return
        }
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
