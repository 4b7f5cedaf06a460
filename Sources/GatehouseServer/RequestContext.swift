public import Hummingbird
import Foundation
import HTTPTypes
public import NIOCore
import Logging

/// The per-request context: Hummingbird's core storage plus the peer address (for trusted-proxy
/// decisions) and a small upload limit, since no Gatehouse endpoint takes a large body.
public struct GatehouseRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let peerAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.peerAddress = source.channel.remoteAddress
    }

    /// Request bodies larger than this are refused (413) before any parsing.
    public var maxUploadSize: Int { 64 * 1024 }
}

extension Request {
    /// Whether the `Content-Type` names `type` (lower-case ASCII), in any letter case, parameters
    /// ignored. Compared as bytes, for the reason given at `cookie(named:)`.
    func hasMediaType(_ type: StaticString) -> Bool {
        guard var header = headers[.contentType] else { return false }
        return header.withUTF8 { bytes in
            func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }
            var a = 0, b = 0
            while b < bytes.count && bytes[b] != UInt8(ascii: ";") { b += 1 }
            while a < b && isSpace(bytes[a]) { a += 1 }
            while b > a && isSpace(bytes[b - 1]) { b -= 1 }
            guard b - a == type.utf8CodeUnitCount else { return false }
            for k in 0..<(b - a) {
                var c = bytes[a + k]
                if c >= 0x41 && c <= 0x5A { c |= 0x20 }
                guard c == type.utf8Start[k] else { return false }
            }
            return true
        }
    }

    /// The value of the first cookie called `name` in the request's `Cookie` headers (surrounding
    /// quotes removed), read as bytes. Cookie names are ASCII tokens (RFC 6265 §4.1.1), so they are
    /// compared byte for byte, never as Unicode strings, whose comparison sorts runs of combining
    /// marks in time growing with the square of the run.
    func cookie(named name: String) -> String? {
        let wanted = Array(name.utf8)
        for header in headers[values: .cookie] {
            var header = header
            let found = header.withUTF8 { bytes -> String? in
                func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }
                var start = 0
                while start < bytes.count {
                    var end = start
                    while end < bytes.count && bytes[end] != UInt8(ascii: ";") { end += 1 }
                    var from = start
                    while from < end && isSpace(bytes[from]) { from += 1 }
                    var equals = from
                    while equals < end && bytes[equals] != UInt8(ascii: "=") { equals += 1 }
                    if equals < end, UnsafeBufferPointer(rebasing: bytes[from..<equals]).elementsEqual(wanted) {
                        var a = equals + 1, b = end
                        while a < b && isSpace(bytes[a]) { a += 1 }
                        while b > a && isSpace(bytes[b - 1]) { b -= 1 }
                        if b - a >= 2 && bytes[a] == UInt8(ascii: "\"") && bytes[b - 1] == UInt8(ascii: "\"") { a += 1; b -= 1 }
                        return String(decoding: UnsafeBufferPointer(rebasing: bytes[a..<b]), as: UTF8.self)
                    }
                    start = end + 1
                }
                return nil
            }
            if let found { return found }
        }
        return nil
    }

    /// The credential of an `Authorization: Bearer …` header (the scheme is case-insensitive, RFC
    /// 7235 §2.1), or `nil` when there is none, it is empty, or the header is longer than
    /// `maximumLength` bytes. The one reading of bearer credentials: admin API, `/metrics` and
    /// the user's own link endpoints.
    func bearerCredential(maximumLength: Int) -> String? {
        guard let header = headers[.authorization], header.utf8.count <= maximumLength + 7 else { return nil }
        return credentials(scheme: "bearer ")
    }

    /// What follows `scheme` (lower-case ASCII with its space, matched in any letter case) in the
    /// `Authorization` header, without surrounding spaces and tabs; `nil` when the header is
    /// missing, of another scheme, or empty after it. Read as bytes, for the reason given at
    /// `cookie(named:)`.
    func credentials(scheme: StaticString) -> String? {
        guard var header = headers[.authorization] else { return nil }
        return header.withUTF8 { bytes -> String? in
            let n = scheme.utf8CodeUnitCount
            guard bytes.count > n else { return nil }
            for k in 0..<n {
                var c = bytes[k]
                if c >= 0x41 && c <= 0x5A { c |= 0x20 }
                guard c == scheme.utf8Start[k] else { return nil }
            }
            var a = n, b = bytes.count
            while a < b && (bytes[a] == 0x20 || bytes[a] == 0x09) { a += 1 }
            while b > a && (bytes[b - 1] == 0x20 || bytes[b - 1] == 0x09) { b -= 1 }
            return a < b ? String(decoding: UnsafeBufferPointer(rebasing: bytes[a..<b]), as: UTF8.self) : nil
        }
    }
}
