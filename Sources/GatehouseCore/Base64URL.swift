public import Foundation

/// Base64url without padding (RFC 4648 §5), as used by JOSE and PKCE. Table-driven: it is on the
/// hot path of every token signed or verified.
public enum Base64URL {
    static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    static let reverse: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()

    public static func encode<D: DataProtocol>(_ data: D) -> String {
        let input = Array(data)
        let alphabet = Self.alphabet
        let outputCount = (input.count * 4 + 2) / 3
        return String(unsafeUninitializedCapacity: outputCount) { out in
            var o = 0
            var i = 0
            while i + 3 <= input.count {
                let v = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
                out[o] = alphabet[Int(v >> 18 & 63)]
                out[o + 1] = alphabet[Int(v >> 12 & 63)]
                out[o + 2] = alphabet[Int(v >> 6 & 63)]
                out[o + 3] = alphabet[Int(v & 63)]
                i += 3
                o += 4
            }
            let rest = input.count - i
            if rest == 1 {
                let v = UInt32(input[i]) << 16
                out[o] = alphabet[Int(v >> 18 & 63)]
                out[o + 1] = alphabet[Int(v >> 12 & 63)]
                o += 2
            } else if rest == 2 {
                let v = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8
                out[o] = alphabet[Int(v >> 18 & 63)]
                out[o + 1] = alphabet[Int(v >> 12 & 63)]
                out[o + 2] = alphabet[Int(v >> 6 & 63)]
                o += 3
            }
            return o
        }
    }

    /// Decodes base64url; refuses padding, whitespace, the standard alphabet's `+` and `/`, an
    /// impossible length, and non-zero trailing bits (so one value has one encoding).
    public static func decode<S: StringProtocol>(_ text: S) -> Data? {
        let utf8 = Array(text.utf8)
        return utf8.withUnsafeBufferPointer { decode(bytes: $0) }
    }

    public static func decode(bytes: UnsafeBufferPointer<UInt8>) -> Data? {
        decodeToArray(bytes: bytes).map { Data($0) }
    }

    /// The same decoding into a byte array (no `Data` on the token hot path). Four characters at a
    /// time: the hot path of every token verification.
    public static func decodeToArray(bytes: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        let n = bytes.count
        let rest = n % 4
        if rest == 1 { return nil }
        let outputCount = n / 4 * 3 + (rest == 0 ? 0 : rest - 1)
        var valid = true
        let out = [UInt8](unsafeUninitializedCapacity: outputCount) { buffer, written in
            Self.reverse.withUnsafeBufferPointer { reverse in
                var i = 0
                var o = 0
                while i + 4 <= n {
                    let a = UInt32(reverse[Int(bytes[i])]), b = UInt32(reverse[Int(bytes[i + 1])])
                    let c = UInt32(reverse[Int(bytes[i + 2])]), d = UInt32(reverse[Int(bytes[i + 3])])
                    // Invalid characters map to 0xFF: any of them sets a bit above the sixth.
                    if (a | b | c | d) & 0xC0 != 0 { valid = false; return }
                    let v = a << 18 | b << 12 | c << 6 | d
                    buffer[o] = UInt8(truncatingIfNeeded: v >> 16)
                    buffer[o + 1] = UInt8(truncatingIfNeeded: v >> 8)
                    buffer[o + 2] = UInt8(truncatingIfNeeded: v)
                    i += 4
                    o += 3
                }
                if rest == 0 { return }
                let a = UInt32(reverse[Int(bytes[i])]), b = UInt32(reverse[Int(bytes[i + 1])])
                let c = rest == 3 ? UInt32(reverse[Int(bytes[i + 2])]) : 0
                if (a | b | c) & 0xC0 != 0 { valid = false; return }
                let v = a << 18 | b << 12 | c << 6
                buffer[o] = UInt8(truncatingIfNeeded: v >> 16)
                // Trailing bits beyond the last whole byte must be zero, so one value has one encoding.
                if rest == 2 {
                    if v & 0xFFFF != 0 { valid = false }
                } else {
                    buffer[o + 1] = UInt8(truncatingIfNeeded: v >> 8)
                    if v & 0xFF != 0 { valid = false }
                }
            }
            written = valid ? outputCount : 0
        }
        return valid ? out : nil
    }
}
