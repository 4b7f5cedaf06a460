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
    /// requires of request parameters, malformed percent-encoding, and a name or value with a run
    /// of combining marks longer than `StreamSafeText` allows.
    public static func decode(_ text: String) -> [String: String]? {
        var text = text
        return text.withUTF8 { decode(bytes: $0) }
    }

    /// `decode(_:)` over the raw bytes of a body, without making a `String` of it first. Pairs are
    /// split on the bytes `&` and `=` (never inside a UTF-8 sequence); each piece must decode to
    /// valid UTF-8.
    public static func decode(bytes: UnsafeBufferPointer<UInt8>) -> [String: String]? {
        var out: [String: String] = [:]
        var start = 0
        let end = bytes.count
        while start <= end {
            var stop = start
            while stop < end && bytes[stop] != UInt8(ascii: "&") { stop += 1 }
            if stop > start {
                var equals = start
                while equals < stop && bytes[equals] != UInt8(ascii: "=") { equals += 1 }
                guard let name = unescape(UnsafeBufferPointer(rebasing: bytes[start..<equals])),
                    let value = unescape(UnsafeBufferPointer(rebasing: bytes[min(equals + 1, stop)..<stop]))
                else { return nil }
                if out.updateValue(value, forKey: name) != nil { return nil }
            }
            start = stop + 1
        }
        return out
    }

    /// Decodes one form-encoded component (`+` is a space, `%XX` two hex digits); `nil` if malformed.
    public static func decodeComponent(_ s: Substring) -> String? { unescape(s) }

    /// `decodeComponent` over bytes.
    public static func decodeComponent(bytes: UnsafeBufferPointer<UInt8>) -> String? { unescape(bytes) }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x41...0x46: c - 0x41 + 10
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }

    static func unescape(_ s: Substring) -> String? {
        var s = s
        return s.withUTF8 { unescape($0) }
    }

    static func unescape(_ s: UnsafeBufferPointer<UInt8>) -> String? {
        // Most pieces carry no escape: validate them as they are, without a copy.
        if !s.contains(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "%") }) {
            return String(validating: s, as: UTF8.self).flatMap(streamSafe)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(s.count)
        var i = 0
        while i < s.count {
            let b = s[i]
            if b == UInt8(ascii: "+") {
                bytes.append(0x20)
            } else if b == UInt8(ascii: "%") {
                guard i + 2 < s.count, let h = hexValue(s[i + 1]), let l = hexValue(s[i + 2]) else { return nil }
                bytes.append(h << 4 | l)
                i += 2
            } else {
                bytes.append(b)
            }
            i += 1
        }
        return String(validating: bytes, as: UTF8.self).flatMap(streamSafe)
    }

    /// `s`, unless it runs more combining marks together than `StreamSafeText` allows.
    static func streamSafe(_ s: String) -> String? {
        var s = s
        return s.withUTF8 { StreamSafeText.check(utf8: $0) } ? s : nil
    }
}
