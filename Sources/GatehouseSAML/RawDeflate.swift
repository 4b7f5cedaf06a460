internal import CXMLSec
import Foundation
import GatehouseCore

/// Raw DEFLATE (RFC 1951, no zlib header), as the HTTP-Redirect binding carries messages.
package enum RawDeflate {
    /// Nil only if zlib fails (out of memory).
    package static func compress(_ input: [UInt8]) -> [UInt8]? {
        var stream = z_stream()
        guard gh_deflate_init_raw(&stream) == Z_OK else { return nil }
        defer { deflateEnd(&stream) }
        let capacity = Int(deflateBound(&stream, uLong(input.count))) + 16
        return run(&stream, input, capacity: capacity) { deflate(&$0, Z_FINISH) }
    }

    /// Inflates at most `limit` bytes; more (a compression bomb) or a malformed stream is nil.
    package static func decompress(_ input: [UInt8], limit: Int) -> [UInt8]? {
        var stream = z_stream()
        guard gh_inflate_init_raw(&stream) == Z_OK else { return nil }
        defer { inflateEnd(&stream) }
        guard let out = run(&stream, input, capacity: limit + 1, { inflate(&$0, Z_FINISH) }), out.count <= limit else { return nil }
        return out
    }

    /// Feeds all of `input` to `step` in one call, into a buffer of `capacity` bytes.
    private static func run(_ stream: inout z_stream, _ input: [UInt8], capacity: Int, _ step: (inout z_stream) -> Int32) -> [UInt8]? {
        var output = [UInt8](repeating: 0, count: capacity)
        var input = input
        let status = input.withUnsafeMutableBufferPointer { inBuf in
            output.withUnsafeMutableBufferPointer { outBuf in
                stream.next_in = inBuf.baseAddress
                stream.avail_in = uInt(inBuf.count)
                stream.next_out = outBuf.baseAddress
                stream.avail_out = uInt(outBuf.count)
                return step(&stream)
            }
        }
        guard status == Z_STREAM_END else { return nil }
        return Array(output[0..<Int(stream.total_out)])
    }
}

/// Escapes text for XML content and attribute values.
func xmlEscaped(_ s: String) -> String { Markup.escape(s) }
