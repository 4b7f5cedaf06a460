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
    /// Clamped to ±9e15 (about 285 million years) so a hostile value can never trap the conversion.
    public var epochSeconds: Int64 {
        let t = timeIntervalSince1970
        guard t.isFinite else { return 0 }
        return Int64(min(max(t, -9e15), 9e15).rounded(.down))
    }
    public init(epochSeconds: Int64) { self.init(timeIntervalSince1970: TimeInterval(epochSeconds)) }
}
