import Foundation
public import GatehouseDirectory
import Logging
import Synchronization

/// Fresh, empty Directories for tests: a SQLite file in a temporary folder, or a new database on the
/// PostgreSQL server named by `GATEHOUSE_TEST_DATABASE_URL` (the test command starts one).
/// `discard` removes what `make` made, so a developer's own server or temporary folder does not
/// fill up with test databases.
public enum TestDatabases {
    /// What `make` made for a directory, by the directory's identity.
    enum Made {
        case folder(URL)
        case database(name: String, server: String)
    }
    static let made = Mutex<[ObjectIdentifier: Made]>([:])

    public enum Backend: String, Sendable, CaseIterable, CustomStringConvertible {
        case sqlite
        case postgresql
        public var description: String { rawValue }
    }

    public static var postgresURL: String? {
        let v = ProcessInfo.processInfo.environment["GATEHOUSE_TEST_DATABASE_URL"]
        return (v?.isEmpty ?? true) ? nil : v
    }

    /// The backends this run tests: SQLite always; PostgreSQL when a server is configured, or when
    /// `GATEHOUSE_TEST_REQUIRE_POSTGRES` is set (then a missing server fails the tests, not skips them).
    public static var available: [Backend] {
        let required = ProcessInfo.processInfo.environment["GATEHOUSE_TEST_REQUIRE_POSTGRES"] == "1"
        return postgresURL == nil && !required ? [.sqlite] : [.sqlite, .postgresql]
    }

    public static func make(_ backend: Backend) async throws -> SQLDirectory {
        var logger = Logger(label: "gatehouse.test.directory")
        logger.logLevel = .critical
        let directory: SQLDirectory
        switch backend {
        case .sqlite:
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-test-\(UUID().uuidString)")
            directory = try await DirectoryFactory.sqlite(path: folder.appendingPathComponent("test.sqlite").path, logger: logger)
            made.withLock { $0[ObjectIdentifier(directory)] = .folder(folder) }
        case .postgresql:
            guard let base = postgresURL, var components = URLComponents(string: base) else {
                throw TestDatabaseError(reason: "GATEHOUSE_TEST_DATABASE_URL is not set")
            }
            let name = "gh_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(20)
            let admin = try await DirectoryFactory.postgres(url: base, logger: logger)
            do { try await admin.execute(unsafeSQL: "CREATE DATABASE \(name)") } catch {
                try? await admin.shutdown()
                throw error
            }
            try await admin.shutdown()
            components.path = "/" + name
            guard let url = components.string else { throw TestDatabaseError(reason: "bad database URL") }
            directory = try await DirectoryFactory.postgres(url: url, logger: logger)
            made.withLock { $0[ObjectIdentifier(directory)] = .database(name: name, server: base) }
        }
        do { try await directory.migrate() } catch {
            await discard(directory)
            throw error
        }
        return directory
    }

    /// Whether `discard` drops PostgreSQL databases: not on the test command's throwaway server,
    /// which is deleted whole afterwards (dropping one by one costs the suite about 20 s).
    public static var dropsDatabases: Bool {
        ProcessInfo.processInfo.environment["GATEHOUSE_TEST_DATABASE_THROWAWAY"] != "1"
    }

    /// Shuts `directory` down (if it is still running) and deletes its SQLite folder, and drops its
    /// PostgreSQL database when `drop` says so.
    public static func discard(_ directory: SQLDirectory, drop: Bool = dropsDatabases) async {
        try? await directory.shutdown()
        guard let what = made.withLock({ $0.removeValue(forKey: ObjectIdentifier(directory)) }) else { return }
        switch what {
        case .folder(let folder):
            try? FileManager.default.removeItem(at: folder)
        case .database(let name, let server):
            guard drop else { return }
            var logger = Logger(label: "gatehouse.test.directory")
            logger.logLevel = .critical
            guard let admin = try? await DirectoryFactory.postgres(url: server, logger: logger) else { return }
            try? await admin.execute(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
            try? await admin.shutdown()
        }
    }
}

public struct TestDatabaseError: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}
