import Foundation
import Testing
@testable import GatehouseDirectory

/// The embedded SQLite driver below the conformance suite: what it refuses rather than guesses.
@Suite struct SQLiteHandleTests {
    func withHandle(_ body: (SQLiteHandle) throws -> Void) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("gh-sqlite-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let handle = try SQLiteHandle(path: folder.appendingPathComponent("t.sqlite").path)
        defer {
            handle.close()
            try? FileManager.default.removeItem(at: folder)
        }
        try body(handle)
    }

    func rows(_ handle: SQLiteHandle, _ sql: String, _ binds: [any Encodable & Sendable] = []) throws -> [SQLiteDirectRow] {
        var out: [SQLiteDirectRow] = []
        try handle.execute(sql, binds) { out.append($0) }
        return out
    }

    @Test func valuesRoundTripAndNullsReadAsNil() throws {
        try withHandle { h in
            _ = try rows(h, "CREATE TABLE t (s TEXT, n BIGINT, o TEXT)")
            _ = try rows(h, "INSERT INTO t (s, n, o) VALUES (?1, ?2, ?3)", ["é\u{0}x", Int64(-7), String?.none])
            let row = try #require(try rows(h, "SELECT s, n, o FROM t").first)
            #expect(try row.decode(column: "s", as: String.self) == "é\u{0}x", "text is read by length, so an embedded NUL stays")
            #expect(try row.decode(column: "n", as: Int64.self) == -7)
            #expect(try row.decode(column: "o", as: String?.self) == nil)
            #expect(try row.decodeNil(column: "o"))
            #expect(throws: SQLiteStatementError.self) { try row.decode(column: "o", as: String.self) }
            #expect(throws: SQLiteStatementError.self) { try row.decode(column: "n", as: String.self) }
            #expect(throws: SQLiteStatementError.self) { try row.decode(column: "missing", as: String.self) }
            #expect(throws: SQLiteStatementError.self) { try row.decode(column: "s", as: Date.self) }
            // An empty text is a value, not NULL.
            _ = try rows(h, "INSERT INTO t (s, n, o) VALUES (?1, ?2, ?3)", ["", Int64(0), ""])
            let empty = try #require(try rows(h, "SELECT o FROM t WHERE n = 0").first)
            #expect(try empty.decode(column: "o", as: String?.self) == "")
        }
    }

    @Test func everyBoundTypeReadsBackAsItself() throws {
        try withHandle { h in
            _ = try rows(h, "CREATE TABLE v (i INTEGER, b INTEGER, d REAL, x BLOB, n INTEGER)")
            _ = try rows(h, "INSERT INTO v VALUES (?1, ?2, ?3, ?4, ?5)", [42, true, 2.5, [UInt8]([0, 1, 255]), Int?.none])
            let row = try #require(try rows(h, "SELECT i, b, d, x, n FROM v").first)
            #expect(try row.decode(column: "i", as: Int.self) == 42)
            #expect(try row.decode(column: "b", as: Bool.self) == true)
            #expect(try row.decode(column: "d", as: Double.self) == 2.5)
            #expect(try row.decode(column: "x", as: [UInt8].self) == [0, 1, 255])
            #expect(try row.decode(column: "n", as: Int?.self) == nil)
            #expect(try row.decode(column: "i", as: Int?.self) == 42)
            #expect(throws: SQLiteStatementError.self, "a real is not read as an integer") { try row.decode(column: "d", as: Int.self) }
            #expect(throws: SQLiteStatementError.self, "a blob is not read as text") { try row.decode(column: "x", as: String.self) }
        }
    }

    @Test func whatItCannotDoExactlyIsRefused() throws {
        try withHandle { h in
            _ = try rows(h, "CREATE TABLE t (k TEXT PRIMARY KEY)")
            #expect(throws: SQLiteStatementError.self, "a second statement would be skipped") { try rows(h, "INSERT INTO t VALUES ('a'); DROP TABLE t") }
            #expect(try rows(h, "SELECT k FROM t").isEmpty)
            #expect(throws: SQLiteStatementError.self, "no type is bound by guesswork") { try rows(h, "INSERT INTO t VALUES (?1)", [Date()]) }
            #expect(throws: SQLiteStatementError.self, "every placeholder needs its value") { try rows(h, "INSERT INTO t VALUES (?1)", []) }
            _ = try rows(h, "INSERT INTO t VALUES (?1)", ["a"])
            #expect { try rows(h, "INSERT INTO t VALUES (?1)", ["a"]) } throws: { ($0 as? SQLiteStatementError)?.isUniqueViolation == true }
            // The failed statement was reset: the same text runs again at once.
            _ = try rows(h, "INSERT INTO t VALUES (?1)", ["b"])
            #expect(try rows(h, "SELECT k FROM t ORDER BY k").map { try $0.decode(column: "k", as: String.self) } == ["a", "b"])
        }
    }

    @Test func moreStatementsThanTheCacheHoldsStillRun() throws {
        try withHandle { h in
            for i in 0..<(SQLiteHandle.maximumCachedStatements + 10) {
                let row = try #require(try rows(h, "SELECT \(i) AS v").first)
                #expect(try row.decode(column: "v", as: Int64.self) == Int64(i))
            }
        }
    }

    @Test func aSecondConnectionWaitsForTheWriteLockInsteadOfFailing() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("gh-sqlite-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent("t.sqlite").path
        let first = try SQLiteHandle(path: path)
        _ = try rows(first, "PRAGMA journal_mode = WAL")
        _ = try rows(first, "CREATE TABLE t (k TEXT)")
        _ = try rows(first, "BEGIN IMMEDIATE")
        // Another process's connection (the CLI beside the server): it must wait for the lock.
        let second = try SQLiteHandle(path: path)
        Thread.detachNewThread {
            usleep(300_000)
            try? first.execute("COMMIT", []) { _ in }
        }
        let started = Date()
        _ = try rows(second, "BEGIN IMMEDIATE")
        _ = try rows(second, "INSERT INTO t VALUES ('b')")
        _ = try rows(second, "COMMIT")
        #expect(Date().timeIntervalSince(started) >= 0.2, "it waited for the first connection's commit")
        #expect(try rows(second, "SELECT k FROM t").count == 1)
        first.close()
        second.close()
        try? FileManager.default.removeItem(at: folder)
    }

    @Test func aClosedHandleRefusesStatements() throws {
        try withHandle { h in
            h.close()
            #expect(throws: SQLiteStatementError.self) { try rows(h, "SELECT 1") }
        }
    }
}
