public import Foundation

/// An error raised by the Directory (storage) layer.
///
/// A struct over an extensible code, with a reason meant for logs. The reason never holds a secret
/// (no token, no key material, no client secret).
public struct DirectoryError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The record asked for does not exist.
        public static let notFound = Code("not_found")
        /// A unique key is already taken.
        public static let conflict = Code("conflict")
        /// A single-use record (login transaction, code, refresh token) was already used or has expired.
        public static let alreadyConsumed = Code("already_consumed")
        /// The input violates a rule of the model (bad pool name, unknown grant, …).
        public static let invalid = Code("invalid")
        /// The database could not be reached or failed.
        public static let unavailable = Code("unavailable")
    }

    public let code: Code
    public let reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(code): \(reason)" }
}

/// Why a verifier refused its input.
///
/// Every verifier in Gatehouse collects all the checks that failed (not only the first) so that an
/// admin sees the whole picture; the list is never empty when thrown.
public struct VerificationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// One failed check: a stable machine-readable `check` name (used as a metrics label) and a reason.
    public struct Failure: Sendable, Equatable, Codable, CustomStringConvertible {
        public let check: String
        public let reason: String
        public init(check: String, reason: String) {
            self.check = check
            self.reason = reason
        }
        public var description: String { "\(check): \(reason)" }
    }

    public let failures: [Failure]

    public init(_ failures: [Failure]) {
        precondition(!failures.isEmpty, "a VerificationError always names at least one failed check")
        self.failures = failures
    }

    public init(check: String, reason: String) {
        self.failures = [Failure(check: check, reason: reason)]
    }

    public var description: String { failures.map(\.description).joined(separator: "; ") }
}

/// An error in Gatehouse configuration or admin input (bad URL, unknown algorithm, …).
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
