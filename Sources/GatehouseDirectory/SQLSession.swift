import Foundation
internal import SQLKit
import GatehouseCore
import Synchronization

/// The two SQL engines the Directory runs on.
enum SQLBackend: String, Sendable {
    case sqlite
    case postgresql
}

/// Hands out a database session: a single connection for the duration of `withSession`, so the
/// statements of one transaction never interleave with another's.
protocol SQLSessionProvider: Sendable {
    var backend: SQLBackend { get }
    func withSession<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R
    func shutdown() async throws
}

/// A FIFO async lock: the embedded SQLite backend shares one connection, so every session takes
/// this lock. (SQLite has one writer at a time anyway; the lock keeps transactions whole.)
actor AsyncLock {
    private var locked = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func lock() async {
        if !locked {
            locked = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func unlock() {
        if waiters.isEmpty {
            locked = false
        } else {
            waiters.removeFirst().resume()
        }
    }
}

extension SQLRow {
    func string(_ column: String) throws -> String { try decode(column: column, as: String.self) }
    func optionalString(_ column: String) throws -> String? { try decode(column: column, as: String?.self) }
    func int(_ column: String) throws -> Int64 { try decode(column: column, as: Int64.self) }
    func optionalInt(_ column: String) throws -> Int64? { try decode(column: column, as: Int64?.self) }
}

/// JSON coding of the record bodies the Directory stores as text.
enum Body {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .secondsSince1970
        e.outputFormatting = [.sortedKeys]
        return e
    }()
    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .secondsSince1970
        return d
    }()

    static func encode(_ value: some Encodable) throws -> String {
        String(decoding: try encoder.encode(value), as: UTF8.self)
    }
    static func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
        try decoder.decode(type, from: Data(text.utf8))
    }

    /// App clients and providers are read on every login and change rarely.
    static let clients = DecodedBodies<AppClient>()
    static let providers = DecodedBodies<IdentityProvider>()
    /// A code is read to check its binding, then redeemed with `RETURNING body`: the same text, so
    /// the redemption does not decode it again. Small: codes live for minutes and are used once.
    static let codes = DecodedBodies<AuthorizationCode>(capacity: 256, maximumBytes: 1 << 20)
}

/// Configuration rows decoded before, by their stored text: a row read again unchanged is not
/// decoded again. Keyed by the whole text, so any change to a row is a miss and a decode; nothing
/// can be served stale. Bounded in entries and in the bytes of text it holds (SAML providers carry
/// metadata and certificates): when either is full it starts over.
final class DecodedBodies<T: Decodable & Sendable>: Sendable {
    private struct Entries {
        var values: [String: T] = [:]
        var bytes = 0
    }
    private let entries = Mutex(Entries())
    private let capacity: Int
    private let maximumBytes: Int

    init(capacity: Int = 512, maximumBytes: Int = 4 << 20) {
        self.capacity = capacity
        self.maximumBytes = maximumBytes
    }

    func decode(_ text: String) throws -> T {
        if let hit = entries.withLock({ $0.values[text] }) { return hit }
        let value = try Body.decode(T.self, text)
        let size = text.utf8.count
        guard size <= maximumBytes / 4 else { return value }  // a huge row is decoded each time, never kept
        entries.withLock {
            if $0.values.count >= capacity || $0.bytes + size > maximumBytes { $0 = Entries() }
            if $0.values.updateValue(value, forKey: text) == nil { $0.bytes += size }
        }
        return value
    }
}
