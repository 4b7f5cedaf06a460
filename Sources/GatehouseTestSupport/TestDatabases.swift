import Foundation
public import GatehouseDirectory
import Logging

/// Fresh, empty Directories for tests: a SQLite file in a temporary folder, or a new database on the
/// PostgreSQL server named by `GATEHOUSE_TEST_DATABASE_URL` (the test command starts one).
public enum TestDatabases {
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
        }
        do { try await directory.migrate() } catch {
            try? await directory.shutdown()
            throw error
        }
        return directory
    }
}

public struct TestDatabaseError: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}
