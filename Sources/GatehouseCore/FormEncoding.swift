import Foundation

/// `application/x-www-form-urlencoded`, as HTML and RFC 6749 Appendix B define it.
public enum FormEncoding {
    static let unreserved: Set<UInt8> = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._*".utf8))

    public static func escape(_ s: String) -> String {
        let hex: [UInt8] = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count + s.utf8.count / 8)
        for b in s.utf8 {
            if unreservedTable[Int(b)] { out.append(b) }
            else if b == 0x20 { out.append(UInt8(ascii: "+")) }
            else { out += [UInt8(ascii: "%"), hex[Int(b >> 4)], hex[Int(b & 0x0F)]] }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static let unreservedTable: [Bool] = (0..<256).map { unreserved.contains(UInt8($0)) }

    public static func encode(_ pairs: [(String, String)]) -> String {
        pairs.map { escape($0.0) + "=" + escape($0.1) }.joined(separator: "&")
    }

    /// Parses a form or query string. Refuses (returns `nil`) a name given twice, as RFC 6749 §3.1
    /// requires of request parameters, and malformed percent-encoding.
    public static func decode(_ text: String) -> [String: String]? {
        var out: [String: String] = [:]
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = unescape(parts[0]), let value = unescape(parts.count > 1 ? parts[1] : "") else { return nil }
            if out[name] != nil { return nil }
            out[name] = value
        }
        return out
    }

    /// Decodes one form-encoded component (`+` is a space, `%XX` two hex digits); `nil` if malformed.
    public static func decodeComponent(_ s: Substring) -> String? { unescape(s) }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x41...0x46: c - 0x41 + 10
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }

    static func unescape(_ s: Substring) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(s.utf8.count)
        var it = s.utf8.makeIterator()
        while let b = it.next() {
            if b == UInt8(ascii: "+") { bytes.append(0x20) }
            else if b == UInt8(ascii: "%") {
                guard let h = it.next().flatMap(hexValue), let l = it.next().flatMap(hexValue) else { return nil }
                bytes.append(h << 4 | l)
            } else { bytes.append(b) }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
