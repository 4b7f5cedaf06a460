public import Hummingbird
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
