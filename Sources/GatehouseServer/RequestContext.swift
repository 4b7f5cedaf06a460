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

/// Header values read as bytes, never as Unicode strings: a client fills them, and Swift compares
/// and hashes strings in a normal form, sorting each run of combining marks in time that grows
/// with the square of the run (see `StreamSafeText`).
enum HeaderBytes {
    static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }

    /// `range` without the spaces and tabs at either end.
    static func trimmed(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Range<Int> {
        var a = range.lowerBound, b = range.upperBound
        while a < b && isSpace(bytes[a]) { a += 1 }
        while b > a && isSpace(bytes[b - 1]) { b -= 1 }
        return a..<b
    }

    /// Whether `bytes[range]` spells `lowercase` (lower-case ASCII) in any letter case.
    static func equalsIgnoringCase(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ lowercase: StaticString) -> Bool {
        guard range.count == lowercase.utf8CodeUnitCount else { return false }
        for k in 0..<range.count {
            var c = bytes[range.lowerBound + k]
            if c >= 0x41 && c <= 0x5A { c |= 0x20 }
            guard c == lowercase.utf8Start[k] else { return false }
        }
        return true
    }

    static func string(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }
}

extension Request {
    /// Whether the `Content-Type` names `type` (lower-case ASCII), in any letter case, parameters
    /// ignored. Read as bytes (`HeaderBytes`).
    func hasMediaType(_ type: StaticString) -> Bool {
        guard var header = headers[.contentType] else { return false }
        return header.withUTF8 { bytes in
            let end = bytes.firstIndex(of: UInt8(ascii: ";")) ?? bytes.count
            return HeaderBytes.equalsIgnoringCase(bytes, HeaderBytes.trimmed(bytes, 0..<end), type)
        }
    }

    /// The value of the first cookie called `name` in the request's `Cookie` headers (surrounding
    /// quotes removed). Cookie names are ASCII tokens (RFC 6265 §4.1.1), compared byte for byte
    /// (`HeaderBytes`).
    func cookie(named name: String) -> String? {
        let wanted = Array(name.utf8)
        for header in headers[values: .cookie] {
            var header = header
            let found = header.withUTF8 { bytes -> String? in
                var start = 0
                while start < bytes.count {
                    let end = bytes[start...].firstIndex(of: UInt8(ascii: ";")) ?? bytes.count
                    if let equals = bytes[start..<end].firstIndex(of: UInt8(ascii: "=")),
                        UnsafeBufferPointer(rebasing: bytes[HeaderBytes.trimmed(bytes, start..<equals)]).elementsEqual(wanted) {
                        var value = HeaderBytes.trimmed(bytes, equals + 1..<end)
                        if value.count >= 2 && bytes[value.lowerBound] == UInt8(ascii: "\"") && bytes[value.upperBound - 1] == UInt8(ascii: "\"") {
                            value = value.lowerBound + 1..<value.upperBound - 1
                        }
                        return HeaderBytes.string(bytes, value)
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
    /// missing, of another scheme, or empty after it. Read as bytes (`HeaderBytes`).
    func credentials(scheme: StaticString) -> String? {
        guard var header = headers[.authorization] else { return nil }
        return header.withUTF8 { bytes -> String? in
            let n = scheme.utf8CodeUnitCount
            guard bytes.count > n, HeaderBytes.equalsIgnoringCase(bytes, 0..<n, scheme) else { return nil }
            let credential = HeaderBytes.trimmed(bytes, n..<bytes.count)
            return credential.isEmpty ? nil : HeaderBytes.string(bytes, credential)
        }
    }
}
