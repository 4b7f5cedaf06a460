import Foundation
import Logging
import Testing
import GatehouseCore
@testable import GatehouseServer
import GatehouseTestSupport

@Suite struct LoginSampleRecorderTests {
    let t0 = Date(epochSeconds: 1_800_000_000)

    @Test func keepsEachProvidersNewestRedactedAndWritesThemOnFlush() async throws {
        let directory = try await TestDatabases.make(.sqlite)
        let pool = try PoolID("acme")
        try await directory.createPool(Pool(id: pool, displayName: "Acme", createdAt: t0))
        // A delay no test waits for: only flush() writes.
        let recorder = LoginSampleRecorder(directory: directory, keep: 3, delay: .seconds(3600), logger: Logger(label: "test"))
        for i in 0..<7 {
            await recorder.record(pool: pool, provider: "Okta", attributes: ["email": ["user\(i)@example.com"], "groups": ["g\(i)"]], capturedAt: t0)
        }
        await recorder.record(pool: pool, provider: "Corp", attributes: ["name": ["Ada Lovelace"]], capturedAt: t0)
        #expect(try await directory.loginSamples(pool: pool, provider: "Okta", limit: 10).isEmpty, "nothing is written before a flush")

        await recorder.flush()
        let okta = try await directory.loginSamples(pool: pool, provider: "Okta", limit: 10)
        #expect(okta.map { $0.attributes["groups"] ?? [] } == [["g6"], ["g5"], ["g4"]], "the newest three, newest first")
        #expect(okta.first?.attributes["email"] == ["xxxx9@example.com"], "stored redacted")
        #expect(try await directory.loginSamples(pool: pool, provider: "Corp", limit: 10).first?.attributes["name"] == ["xxx xxxxxxxx"])

        // Later logins push out the older ones across flushes, as the Directory keeps them.
        await recorder.record(pool: pool, provider: "Okta", attributes: ["groups": ["g7"]], capturedAt: t0)
        await recorder.flush()
        #expect(try await directory.loginSamples(pool: pool, provider: "Okta", limit: 10).map { $0.attributes["groups"] ?? [] } == [["g7"], ["g6"], ["g5"]])
        await TestDatabases.discard(directory)
    }

    @Test func theDelayedFlushWritesWithoutBeingAsked() async throws {
        let directory = try await TestDatabases.make(.sqlite)
        let pool = try PoolID("acme")
        try await directory.createPool(Pool(id: pool, displayName: "Acme", createdAt: t0))
        let recorder = LoginSampleRecorder(directory: directory, keep: 3, delay: .milliseconds(10), logger: Logger(label: "test"))
        await recorder.record(pool: pool, provider: "Okta", attributes: ["groups": ["g"]], capturedAt: t0)
        var stored: [LoginSample] = []
        for _ in 0..<500 where stored.isEmpty {
            try await Task.sleep(for: .milliseconds(10))
            stored = try await directory.loginSamples(pool: pool, provider: "Okta", limit: 10)
        }
        #expect(stored.count == 1)
        await TestDatabases.discard(directory)
    }

    @Test func aFailedWriteIsLoggedAndNeverThrown() async throws {
        let directory = try await TestDatabases.make(.sqlite)
        let sink = CapturingLogHandler.Sink()
        let recorder = LoginSampleRecorder(directory: directory, keep: 3, delay: .seconds(3600), logger: Logger(label: "test") { _ in CapturingLogHandler(sink: sink) })
        await recorder.record(pool: try PoolID("acme"), provider: "Okta", attributes: ["email": ["ada@example.com"]], capturedAt: t0)
        // The Directory is gone, so the write fails.
        await TestDatabases.discard(directory)
        await recorder.flush()
        #expect(sink.captured.contains { $0.contains("login samples not kept") })
        #expect(!sink.captured.contains { $0.contains("ada") }, "no value of the login is logged")
    }
}
