import Foundation
internal import Logging
internal import NIOCore
internal import NIOPosix
internal import SQLKit
internal import SQLiteKit
internal import VaporCSQLite

/// The embedded SQLite file, driven through SQLite's C API on the calling task.
///
/// SQLiteNIO runs every statement on a thread pool and prepares it anew each time; a login makes
/// about sixteen statements, so the hops and the parsing cost more than SQLite's work itself. Here a
/// session (which holds `SQLiteSessions`' lock, so one task at a time uses the handle) runs each
/// statement synchronously, from a cache of prepared statements keyed by their SQL text. The handle
/// is opened in SQLite's multi-thread mode and used under a lock of its own as well, so even a
/// misuse (two statements of one session at once) cannot touch it from two threads. Statements are
/// short: the file is in WAL mode with `synchronous = NORMAL` (no fsync per commit), and the busy
/// timeout covers a second process (the CLI) holding the write lock for a moment.
final class SQLiteHandle: @unchecked Sendable {
    private let db: OpaquePointer
    /// Held for every use of the handle and of the fields below.
    private let lock = NSLock()
    /// Prepared statements by SQL text.
    private var statements: [String: OpaquePointer] = [:]
    private var closed = false
    static let maximumCachedStatements = 256

    init(path: String) throws {
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let status = sqlite_nio_sqlite3_open_v2(path, &handle, flags, nil)
        guard status == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite_nio_sqlite3_errmsg($0)) } ?? "out of memory"
            if let handle { sqlite_nio_sqlite3_close_v2(handle) }
            throw SQLiteStatementError(code: status, message: message)
        }
        db = handle
        sqlite_nio_sqlite3_extended_result_codes(db, 1)
        // Before the first statement: switching a fresh file to WAL, or opening one another process
        // is recovering, needs a lock that another process may hold for a moment.
        sqlite_nio_sqlite3_busy_timeout(db, SQLiteHandle.busyTimeoutMilliseconds)
    }

    /// How long a statement waits for another process's lock before failing with SQLITE_BUSY.
    static let busyTimeoutMilliseconds: Int32 = 5000

    deinit { close() }

    func close() {
        lock.lock()
        defer { lock.unlock() }
        guard !closed else { return }
        closed = true
        for statement in statements.values { sqlite_nio_sqlite3_finalize(statement) }
        statements = [:]
        sqlite_nio_sqlite3_close_v2(db)
    }

    /// Runs one statement: binds `binds` to `?1…`, hands each row to `onRow`, and leaves the
    /// statement reset for its next use whatever happens.
    func execute(_ sql: String, _ binds: [any Encodable & Sendable], _ onRow: (SQLiteDirectRow) -> Void) throws {
        lock.lock()
        defer { lock.unlock() }
        guard !closed else { throw SQLiteStatementError(code: SQLITE_MISUSE, message: "the database is closed") }
        try run(try prepared(sql), binds, onRow)
    }

    private func run(_ statement: OpaquePointer, _ binds: [any Encodable & Sendable], _ onRow: (SQLiteDirectRow) -> Void) throws {
        defer {
            sqlite_nio_sqlite3_reset(statement)
            sqlite_nio_sqlite3_clear_bindings(statement)
        }
        guard Int(sqlite_nio_sqlite3_bind_parameter_count(statement)) == binds.count else {
            throw SQLiteStatementError(code: SQLITE_RANGE, message: "the statement has \(sqlite_nio_sqlite3_bind_parameter_count(statement)) parameters, not \(binds.count)")
        }
        for (i, value) in binds.enumerated() { try bind(value, at: Int32(i + 1), in: statement) }
        var columns: [String]?
        while true {
            let status = sqlite_nio_sqlite3_step(statement)
            if status == SQLITE_DONE { return }
            guard status == SQLITE_ROW else { throw lastError() }
            let count = sqlite_nio_sqlite3_column_count(statement)
            if columns == nil { columns = (0..<count).map { String(cString: sqlite_nio_sqlite3_column_name(statement, $0)) } }
            var values: [SQLiteDirectRow.Value] = []
            values.reserveCapacity(Int(count))
            for c in 0..<count { values.append(value(statement, c)) }
            onRow(SQLiteDirectRow(columns: columns!, values: values))
        }
    }

    private func prepared(_ sql: String) throws -> OpaquePointer {
        if let cached = statements[sql] { return cached }
        var statement: OpaquePointer?
        var tail: UnsafePointer<CChar>?
        let status = sql.withCString { sqlite_nio_sqlite3_prepare_v3(db, $0, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, &tail) }
        guard status == SQLITE_OK else { throw lastError() }
        guard let statement else { throw SQLiteStatementError(code: SQLITE_MISUSE, message: "the SQL text holds no statement") }
        // One statement per call: a second one in the text would be silently skipped.
        if let tail, tail.pointee != 0, !String(cString: tail).allSatisfy(\.isWhitespace) {
            sqlite_nio_sqlite3_finalize(statement)
            throw SQLiteStatementError(code: SQLITE_MISUSE, message: "one SQL statement per call")
        }
        if statements.count >= Self.maximumCachedStatements {
            for old in statements.values { sqlite_nio_sqlite3_finalize(old) }
            statements.removeAll(keepingCapacity: true)
        }
        statements[sql] = statement
        return statement
    }

    private func bind(_ value: any Encodable & Sendable, at index: Int32, in statement: OpaquePointer) throws {
        let status: Int32
        if let optional = value as? any OptionalBind, optional.isNone {
            status = sqlite_nio_sqlite3_bind_null(statement, index)
        } else if let text = value as? String {
            // By length, never up to a NUL: a value with an embedded NUL is stored whole.
            guard let length = Int32(exactly: text.utf8.count) else { throw SQLiteStatementError(code: SQLITE_TOOBIG, message: "a text value is too large") }
            status = text.withCString { sqlite_nio_sqlite3_bind_text(statement, index, $0, length, Self.transient) }
        } else if let n = value as? Int64 {
            status = sqlite_nio_sqlite3_bind_int64(statement, index, n)
        } else if let n = value as? Int {
            status = sqlite_nio_sqlite3_bind_int64(statement, index, Int64(n))
        } else if let n = value as? Int32 {
            status = sqlite_nio_sqlite3_bind_int64(statement, index, Int64(n))
        } else if let b = value as? Bool {
            status = sqlite_nio_sqlite3_bind_int64(statement, index, b ? 1 : 0)
        } else if let d = value as? Double {
            status = sqlite_nio_sqlite3_bind_double(statement, index, d)
        } else if let bytes = value as? [UInt8] {
            guard let length = Int32(exactly: bytes.count) else { throw SQLiteStatementError(code: SQLITE_TOOBIG, message: "a blob value is too large") }
            status = bytes.withUnsafeBytes { sqlite_nio_sqlite3_bind_blob(statement, index, $0.baseAddress, length, Self.transient) }
        } else {
            throw SQLiteStatementError(code: SQLITE_MISMATCH, message: "cannot bind a value of type \(type(of: value))")
        }
        guard status == SQLITE_OK else { throw lastError() }
    }

    private func value(_ statement: OpaquePointer, _ column: Int32) -> SQLiteDirectRow.Value {
        switch sqlite_nio_sqlite3_column_type(statement, column) {
        case SQLITE_INTEGER: return .integer(sqlite_nio_sqlite3_column_int64(statement, column))
        case SQLITE_FLOAT: return .real(sqlite_nio_sqlite3_column_double(statement, column))
        case SQLITE_TEXT:
            let count = Int(sqlite_nio_sqlite3_column_bytes(statement, column))
            guard let text = sqlite_nio_sqlite3_column_text(statement, column) else { return .text("") }
            return .text(String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self))
        case SQLITE_BLOB:
            let count = Int(sqlite_nio_sqlite3_column_bytes(statement, column))
            guard let blob = sqlite_nio_sqlite3_column_blob(statement, column) else { return .blob([]) }
            return .blob(Array(UnsafeRawBufferPointer(start: blob, count: count)))
        default: return .null
        }
    }

    /// The connection's last failure, with its extended result code.
    private func lastError() -> SQLiteStatementError {
        SQLiteStatementError(code: sqlite_nio_sqlite3_extended_errcode(db), message: String(cString: sqlite_nio_sqlite3_errmsg(db)))
    }

    /// SQLITE_TRANSIENT: SQLite copies the bound bytes before the call returns.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
}

/// An SQLite failure: the extended result code and SQLite's message (which names tables and
/// constraints, never bound values).
struct SQLiteStatementError: Error, CustomStringConvertible {
    let code: Int32
    let message: String
    var description: String { "SQLite error \(code): \(message)" }
    /// A UNIQUE or PRIMARY KEY constraint failed.
    var isUniqueViolation: Bool { code == 2067 || code == 1555 }  // SQLITE_CONSTRAINT_UNIQUE, _PRIMARYKEY
}

private protocol OptionalBind { var isNone: Bool { get } }
extension Optional: OptionalBind {
    fileprivate var isNone: Bool { self == nil }
}

/// One row, its values copied out of SQLite.
struct SQLiteDirectRow: SQLRow {
    enum Value: Sendable {
        case null
        case integer(Int64)
        case real(Double)
        case text(String)
        case blob([UInt8])
    }

    let columns: [String]
    let values: [Value]

    var allColumns: [String] { columns }

    func contains(column: String) -> Bool { columns.contains(column) }

    private func value(_ column: String) throws -> Value {
        guard let i = columns.firstIndex(of: column) else {
            throw SQLiteStatementError(code: SQLITE_RANGE, message: "no column \(column)")
        }
        return values[i]
    }

    func decodeNil(column: String) throws -> Bool {
        if case .null = try value(column) { return true }
        return false
    }

    /// The column types the Directory stores: text, integers (also as Int and Bool), reals and
    /// blobs, each optionally NULL. Anything else is an error, never a guess.
    func decode<D: Decodable>(column: String, as type: D.Type) throws -> D {
        let v = try value(column)
        let mismatch = SQLiteStatementError(code: SQLITE_MISMATCH, message: "column \(column) is not a \(D.self)")
        func read<T>(_ plain: T.Type, _ extract: (Value) -> T?) throws -> D {
            if D.self == T.self, let x = extract(v) { return x as! D }
            if D.self == T?.self {
                if case .null = v { return T?.none as! D }
                if let x = extract(v) { return T?.some(x) as! D }
            }
            throw mismatch
        }
        switch D.self {
        case is String.Type, is String?.Type: return try read(String.self) { if case .text(let s) = $0 { s } else { nil } }
        case is Int64.Type, is Int64?.Type: return try read(Int64.self) { if case .integer(let n) = $0 { n } else { nil } }
        case is Int.Type, is Int?.Type: return try read(Int.self) { if case .integer(let n) = $0 { Int(n) } else { nil } }
        case is Bool.Type, is Bool?.Type: return try read(Bool.self) { if case .integer(let n) = $0 { n != 0 } else { nil } }
        case is Double.Type, is Double?.Type: return try read(Double.self) { if case .real(let d) = $0 { d } else { nil } }
        case is [UInt8].Type, is [UInt8]?.Type: return try read([UInt8].self) { if case .blob(let b) = $0 { b } else { nil } }
        default: throw mismatch
        }
    }
}

/// `SQLDatabase` over one `SQLiteHandle`, for the duration of a session.
struct SQLiteDirectDatabase: SQLDatabase {
    let handle: SQLiteHandle
    let logger: Logger
    let eventLoop: any EventLoop
    var dialect: any SQLDialect { SQLiteDialect() }
    var queryLogLevel: Logger.Level? { nil }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) -> EventLoopFuture<Void> {
        let (sql, binds) = serialize(query)
        return eventLoop.makeCompletedFuture { try handle.execute(sql, binds) { onRow($0) } }
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) async throws {
        let (sql, binds) = serialize(query)
        try handle.execute(sql, binds) { onRow($0) }
    }
}
