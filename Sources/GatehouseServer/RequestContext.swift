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
    /// The credential of an `Authorization: Bearer …` header (the scheme is case-insensitive, RFC
    /// 7235 §2.1), or `nil` when there is none, it is empty, or the header is longer than
    /// `maximumLength` bytes. The one reading of bearer credentials: admin API, `/metrics` and
    /// the user's own link endpoints.
    func bearerCredential(maximumLength: Int) -> String? {
        guard let header = headers[.authorization], header.utf8.count <= maximumLength + 7,
            header.utf8.count > 7, header.prefix(7).lowercased() == "bearer "
        else { return nil }
        let credential = header.dropFirst(7).trimmingCharacters(in: .whitespaces)
        return credential.isEmpty ? nil : credential
    }
}
