public import Foundation
import Synchronization

/// The source of "now" for every time-dependent decision (token lifetimes, verification windows).
///
/// Injected everywhere so tests can freeze time. Implementations are thread-safe.
public protocol GatehouseClock: Sendable {
    func now() -> Date
}

/// The wall clock.
public struct SystemClock: GatehouseClock {
    public init() {}
    public func now() -> Date { Date() }
}

/// A clock that only moves when told to: for tests and for `--now` in the verify CLIs.
public final class ManualClock: GatehouseClock {
    private let current: Mutex<Date>
    public init(_ start: Date) { self.current = Mutex(start) }
    public func now() -> Date { current.withLock { $0 } }
    public func set(_ date: Date) { current.withLock { $0 = date } }
    public func advance(by seconds: TimeInterval) { current.withLock { $0 += seconds } }
}

extension Date {
    /// Whole seconds since the Unix epoch, as stored in the Directory and in JWT claims.
    public var epochSeconds: Int64 { Int64(timeIntervalSince1970.rounded(.down)) }
    public init(epochSeconds: Int64) { self.init(timeIntervalSince1970: TimeInterval(epochSeconds)) }
}
