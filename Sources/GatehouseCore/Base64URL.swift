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

    /// The same decoding into a byte array (no `Data` on the token hot path).
    public static func decodeToArray(bytes: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        let n = bytes.count
        if n % 4 == 1 { return nil }
        var valid = true
        let out = [UInt8](unsafeUninitializedCapacity: n * 3 / 4) { buffer, written in
            var o = 0
            var acc: UInt32 = 0
            var bits: UInt32 = 0
            Self.reverse.withUnsafeBufferPointer { reverse in
            for i in 0..<n {
                let v = reverse[Int(bytes[i])]
                if v == 0xFF {
                    valid = false
                    break
                }
                acc = acc << 6 | UInt32(v)
                bits += 6
                if bits >= 8 {
                    bits -= 8
                    buffer[o] = UInt8(truncatingIfNeeded: acc >> bits)
                    o += 1
                }
            }
            }
            if valid, bits > 0, acc & ((1 << bits) - 1) != 0 { valid = false }
            written = o
        }
        return valid ? out : nil
    }
}
