import Hummingbird
import Logging
import ServiceLifecycle

/// Runs a Hummingbird application for a test or a benchmark and stops it gracefully: the listener
/// closes and connections already accepted are served or closed. Cancelling `run()` instead drops
/// any connection still waiting in the accept queue, which NIO treats as a programming error and
/// traps on; a server that the test's own client or Gatehouse's background refresh is connecting
/// to at that moment would crash the whole test run.
final class GracefulServer: Sendable {
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    init(_ app: some ApplicationProtocol, logger: Logger) {
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        self.group = group
        self.task = Task { try await group.run() }
    }

    /// Shuts down gracefully; after `deadline` a server still draining is cancelled.
    func stop(deadline: Duration = .seconds(10)) async {
        await group.triggerGracefulShutdown()
        let task = self.task
        let watchdog = Task {
            try await Task.sleep(for: deadline)
            task.cancel()
        }
        _ = await task.result
        watchdog.cancel()
    }
}
