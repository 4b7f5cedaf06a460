public import Foundation
public import Logging
internal import SQLKit
internal import PostgresKit
import NIOPosix
import NIOCore

/// Opens the Directory on one of its backends.
public enum DirectoryFactory {
    /// The embedded default: one SQLite file (created if missing, WAL mode).
    public static func sqlite(path: String, logger: Logger = Logger(label: "gatehouse.directory")) async throws -> SQLDirectory {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let sessions = try await SQLiteSessions.open(path: path, logger: logger)
        return SQLDirectory(sessions: sessions)
    }

    /// PostgreSQL from a URL: `postgres://user[:password]@host[:port]/database`.
    /// `?sslmode=disable` turns TLS off (only for loopback); otherwise TLS is required.
    public static func postgres(url: String, logger: Logger = Logger(label: "gatehouse.directory")) async throws -> SQLDirectory {
        guard let c = URLComponents(string: url), ["postgres", "postgresql"].contains(c.scheme ?? ""),
            let host = c.host, let user = c.user
        else { throw DirectoryDatabaseURLError() }
        let database = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        let tlsOff = c.queryItems?.contains { $0.name == "sslmode" && $0.value == "disable" } ?? false
        var config = PostgresClient.Configuration(
            host: host, port: c.port ?? 5432, username: user, password: c.password,
            database: database.isEmpty ? nil : database,
            tls: tlsOff ? .disable : .require(.makeClientConfiguration()))
        config.options.maximumConnections = 16
        let sessions = PostgresSessions(client: PostgresClient(configuration: config, backgroundLogger: logger))
        return SQLDirectory(sessions: sessions)
    }
}

/// A database URL that cannot be used. Its text never echoes the URL, which may hold a password.
public struct DirectoryDatabaseURLError: Error, CustomStringConvertible {
    public var description: String { "the database URL must look like postgres://user:password@host:port/database" }
}

/// One SQLite connection, serialised by an async lock; statements run on the session's task (see
/// `SQLiteHandle`).
final class SQLiteSessions: SQLSessionProvider {
    let backend = SQLBackend.sqlite
    private let handle: SQLiteHandle
    private let logger: Logger
    private let gate = AsyncLock()

    private init(handle: SQLiteHandle, logger: Logger) {
        self.handle = handle
        self.logger = logger
    }

    static func open(path: String, logger: Logger) async throws -> SQLiteSessions {
        let sessions = SQLiteSessions(handle: try SQLiteHandle(path: path), logger: logger)
        try await sessions.withSession { db in
            for pragma in ["PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL", "PRAGMA foreign_keys = ON"] {
                try await db.raw("\(unsafeRaw: pragma)").run()
            }
        }
        return sessions
    }

    func withSession<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        await gate.lock()
        do {
            let result = try await body(SQLiteDirectDatabase(handle: handle, logger: logger, eventLoop: MultiThreadedEventLoopGroup.singleton.any()))
            await gate.unlock()
            return result
        } catch {
            await gate.unlock()
            throw error
        }
    }

    func shutdown() async throws {
        await gate.lock()
        handle.close()
        await gate.unlock()
    }
}

/// A PostgresNIO client pool; its `run()` loop lives in a task owned by this object until `shutdown`.
final class PostgresSessions: SQLSessionProvider {
    let backend = SQLBackend.postgresql
    private let client: PostgresClient
    private let runner: Task<Void, Never>

    init(client: PostgresClient) {
        self.client = client
        self.runner = Task { await client.run() }
    }

    func withSession<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await client.withConnection { connection in
            try await body(connection.sql(queryLogLevel: nil))
        }
    }

    func shutdown() async throws {
        runner.cancel()
        await runner.value
    }
}
