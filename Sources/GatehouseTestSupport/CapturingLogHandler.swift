public import Logging
import Synchronization

/// A log handler that keeps every line (message and metadata, rendered) in a shared `Sink`, so tests
/// can check what Gatehouse logs and, above all, what it never logs. A value type, as log handlers
/// must be: each logger copy has its own metadata.
public struct CapturingLogHandler: LogHandler {
    public final class Sink: Sendable {
        private let lines = Mutex<[String]>([])
        public init() {}
        public var captured: [String] { lines.withLock { $0 } }
        func append(_ line: String) { lines.withLock { $0.append(line) } }
    }

    public let sink: Sink
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info

    public init(sink: Sink) { self.sink = sink }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let rendered = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        sink.append("\(event.level) \(event.message) \(rendered)")
    }
}
