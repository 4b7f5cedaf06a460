import Foundation
import GatehouseCore
import Logging

/// Keeps each provider's recent verified logins, redacted, for mapping previews, without a write
/// on every login's path.
///
/// A login hands over its attributes and goes on. They wait in memory for `delay` at most; then only
/// the newest `keep` of each provider are redacted and written, all in one transaction. Anything
/// older would be dropped by the Directory anyway. Reading the samples (a preview) calls `flush()`
/// first, so a preview sees every login that finished before it. A failed write is logged and
/// never fails a login.
actor LoginSampleRecorder {
    private struct Pending {
        let seenAt: Date
        let capturedAt: Date
        let attributes: [String: [String]]
    }

    private struct Key: Hashable {
        let pool: PoolID
        let provider: String
    }

    private let directory: any Directory
    private let keep: Int
    private let delay: Duration
    private let logger: Logger
    private var pending: [Key: [Pending]] = [:]
    private var timer: Task<Void, Never>?
    /// The write in flight; the next one waits for it, so a flush returns only after every earlier
    /// batch is stored.
    private var writing: Task<Void, Never>?

    init(directory: any Directory, keep: Int, delay: Duration = .seconds(1), logger: Logger) {
        self.directory = directory
        self.keep = max(1, keep)
        self.delay = delay
        self.logger = logger
    }

    /// Takes one verified login's attributes (unredacted; they are redacted before they are stored).
    func record(pool: PoolID, provider: String, attributes: [String: [String]], capturedAt: Date) {
        let key = Key(pool: pool, provider: provider)
        pending[key, default: []].append(Pending(seenAt: Date(), capturedAt: capturedAt, attributes: attributes))
        if let count = pending[key]?.count, count > keep { pending[key]?.removeFirst(count - keep) }
        if timer == nil {
            let delay = self.delay
            timer = Task { [weak self] in
                try? await Task.sleep(for: delay)
                await self?.flush()
            }
        }
    }

    /// Stores everything recorded so far; returns when it is stored (or its write failed).
    func flush() async {
        timer = nil
        let batch = pending
        pending = [:]
        let previous = writing
        let directory = self.directory, keep = self.keep, logger = self.logger
        let write = Task {
            await previous?.value
            guard !batch.isEmpty else { return }
            let samples = batch.flatMap { key, logins in
                logins.map { LoginSample(poolID: key.pool, providerName: key.provider, id: LoginSample.newID(at: $0.seenAt), capturedAt: $0.capturedAt, attributes: LoginSample.redact($0.attributes)) }
            }
            do {
                try await directory.recordLoginSamples(samples, keep: keep)
            } catch {
                logger.warning("login samples not kept", metadata: ["count": "\(samples.count)", "reason": "\(error)"])
            }
        }
        writing = write
        await write.value
    }
}
