import Foundation
import GatehouseCore
import GatehouseDirectory
import GatehouseTestSupport

/// User lookup in a pool of a million users, by email and by linked identity, on SQLite and (when
/// `GATEHOUSE_TEST_DATABASE_URL` names a server, as `scripts/bench.sh` arranges) PostgreSQL.
/// Prints the median and 99th percentile of single lookups through the Directory.
enum UserLookupBenchmark {
    static func run() async throws {
        let count = Int(ProcessInfo.processInfo.environment["GATEHOUSE_BENCH_USERS"] ?? "") ?? 1_000_000
        print("\nUser lookup in a pool of \(count) users")
        var backends: [TestDatabases.Backend] = [.sqlite]
        if TestDatabases.postgresURL != nil { backends.append(.postgresql) } else { print("  (PostgreSQL skipped: no server; scripts/bench.sh starts one)") }
        for backend in backends {
            let directory = try await TestDatabases.make(backend)
            let pool = try PoolID("bench")
            try await directory.createPool(Pool(id: pool, displayName: "bench", createdAt: Date()))
            let clock = ContinuousClock()
            let seeding = clock.now
            try await directory.seedUsers(pool: pool, count: count)
            print("  \(backend): seeded in \(clock.now - seeding)")
            guard try await directory.countUsers(pool: pool) == count else { throw ConfigurationError("seeding wrote the wrong number of users") }

            func timeLookups(_ name: String, _ lookup: (Int) async throws -> Bool) async throws {
                var samples: [Double] = []
                var generator = SystemRandomNumberGenerator()
                for k in 0..<3000 {
                    let i = Int.random(in: 1...count, using: &generator)
                    let start = clock.now
                    guard try await lookup(i) else { throw ConfigurationError("lookup \(i) found nothing") }
                    let d = clock.now - start
                    if k >= 500 { samples.append(Double(d.components.attoseconds) / 1e12 + Double(d.components.seconds) * 1e6) }
                }
                samples.sort()
                let median = samples[samples.count / 2], p99 = samples[samples.count * 99 / 100]
                print(String(format: "  %-12@ %-34@ median %7.1f µs   p99 %7.1f µs", backend.rawValue as NSString, name as NSString, median, p99))
            }
            try await timeLookups("by email (case-insensitive)") { i in
                try await directory.users(pool: pool, email: "User\(i)@Example.com", limit: 2).first?.id == "id-\(i)"
            }
            try await timeLookups("by linked identity") { i in
                try await directory.userID(pool: pool, providerName: "Corp", upstreamIssuer: "https://corp.example", upstreamSubject: "s\(i)") == "id-\(i)"
            }
            await TestDatabases.discard(directory)
        }
    }
}
