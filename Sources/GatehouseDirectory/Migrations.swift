/// The one migration list every backend applies, in order. Types are chosen to mean the same on
/// SQLite and PostgreSQL: TEXT, BIGINT (times are Unix seconds, booleans 0/1). Never edit a
/// migration that has shipped; append a new one.
enum Migrations {
    struct Migration: Sendable {
        let version: Int64
        let name: String
        let statements: [String]
    }

    static let all: [Migration] = [
        Migration(version: 1, name: "initial model", statements: [
            """
            CREATE TABLE pools (
                id TEXT PRIMARY KEY, display_name TEXT NOT NULL, signing_alg TEXT NOT NULL, created_at BIGINT NOT NULL)
            """,
            """
            CREATE TABLE app_clients (
                pool_id TEXT NOT NULL, client_id TEXT NOT NULL, body TEXT NOT NULL, created_at BIGINT NOT NULL,
                PRIMARY KEY (pool_id, client_id))
            """,
            """
            CREATE TABLE identity_providers (
                pool_id TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, created_at BIGINT NOT NULL,
                PRIMARY KEY (pool_id, name))
            """,
            """
            CREATE TABLE users (
                pool_id TEXT NOT NULL, id TEXT NOT NULL, username TEXT NOT NULL, email TEXT, attributes TEXT NOT NULL,
                enabled BIGINT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
                PRIMARY KEY (pool_id, id), UNIQUE (pool_id, username))
            """,
            "CREATE INDEX users_by_email ON users (pool_id, email)",
            """
            CREATE TABLE linked_identities (
                pool_id TEXT NOT NULL, provider_name TEXT NOT NULL, upstream_subject TEXT NOT NULL,
                provider_kind TEXT NOT NULL, upstream_issuer TEXT NOT NULL, user_id TEXT NOT NULL, created_at BIGINT NOT NULL,
                PRIMARY KEY (pool_id, provider_name, upstream_issuer, upstream_subject))
            """,
            "CREATE INDEX linked_identities_by_user ON linked_identities (pool_id, user_id)",
            """
            CREATE TABLE pool_groups (
                pool_id TEXT NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL, PRIMARY KEY (pool_id, name))
            """,
            """
            CREATE TABLE group_members (
                pool_id TEXT NOT NULL, group_name TEXT NOT NULL, user_id TEXT NOT NULL,
                PRIMARY KEY (pool_id, group_name, user_id))
            """,
            "CREATE INDEX group_members_by_user ON group_members (pool_id, user_id)",
            """
            CREATE TABLE login_transactions (
                id TEXT PRIMARY KEY, pool_id TEXT NOT NULL, browser_binding_hash TEXT NOT NULL, body TEXT NOT NULL,
                expires_at BIGINT NOT NULL)
            """,
            """
            CREATE TABLE authorization_codes (
                code_hash TEXT PRIMARY KEY, pool_id TEXT NOT NULL, family_id TEXT NOT NULL, body TEXT NOT NULL,
                expires_at BIGINT NOT NULL, consumed_at BIGINT)
            """,
            """
            CREATE TABLE refresh_families (
                id TEXT PRIMARY KEY, pool_id TEXT NOT NULL, client_id TEXT NOT NULL, user_id TEXT NOT NULL, body TEXT NOT NULL,
                expires_at BIGINT NOT NULL, revoked_at BIGINT)
            """,
            "CREATE INDEX refresh_families_by_user ON refresh_families (pool_id, user_id)",
            """
            CREATE TABLE refresh_tokens (
                token_hash TEXT PRIMARY KEY, family_id TEXT NOT NULL, client_id TEXT NOT NULL,
                created_at BIGINT NOT NULL, spent_at BIGINT)
            """,
            "CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id)",
            """
            CREATE TABLE signing_keys (
                pool_id TEXT NOT NULL, kid TEXT NOT NULL, body TEXT NOT NULL, created_at BIGINT NOT NULL,
                PRIMARY KEY (pool_id, kid))
            """,
            """
            CREATE TABLE replay_cache (
                namespace TEXT NOT NULL, entry TEXT NOT NULL, expires_at BIGINT NOT NULL, PRIMARY KEY (namespace, entry))
            """,
        ]),
        Migration(version: 2, name: "mappings: custom attributes, versions, samples; group sources", statements: [
            "ALTER TABLE pools ADD COLUMN settings TEXT NOT NULL DEFAULT '{}'",
            // NULL: added by an admin; otherwise the provider whose mapping added it.
            "ALTER TABLE group_members ADD COLUMN source TEXT",
            """
            CREATE TABLE mapping_versions (
                pool_id TEXT NOT NULL, provider_name TEXT NOT NULL, version BIGINT NOT NULL, body TEXT NOT NULL,
                created_at BIGINT NOT NULL, PRIMARY KEY (pool_id, provider_name, version))
            """,
            """
            CREATE TABLE login_samples (
                pool_id TEXT NOT NULL, provider_name TEXT NOT NULL, id TEXT NOT NULL, captured_at BIGINT NOT NULL,
                body TEXT NOT NULL, PRIMARY KEY (pool_id, provider_name, id))
            """,
        ]),
        Migration(version: 3, name: "account linking and administration: pending links, link intents, audit log, admin credentials", statements: [
            """
            CREATE TABLE pending_links (
                id TEXT PRIMARY KEY, pool_id TEXT NOT NULL, browser_binding_hash TEXT NOT NULL, body TEXT NOT NULL,
                expires_at BIGINT NOT NULL)
            """,
            """
            CREATE TABLE audit_log (
                id TEXT NOT NULL, pool_id TEXT NOT NULL, action TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (pool_id, id))
            """,
            // Email lookups return users in id order: an index that serves both the match and the order
            // (otherwise SQLite walks the primary key to avoid a sort).
            "CREATE INDEX users_by_email_and_id ON users (pool_id, email, id)",
            "DROP INDEX users_by_email",
            // The email a provider trusted to assert email verified for this user (NULL otherwise, or
            // once the email changes): the only address verified-email linking matches.
            "ALTER TABLE users ADD COLUMN trusted_email TEXT",
            "CREATE INDEX users_by_trusted_email ON users (pool_id, trusted_email, id)",
            """
            CREATE TABLE link_intents (
                ticket_hash TEXT PRIMARY KEY, pool_id TEXT NOT NULL, body TEXT NOT NULL, expires_at BIGINT NOT NULL)
            """,
            """
            CREATE TABLE admin_credentials (
                name TEXT PRIMARY KEY, secret_hash TEXT NOT NULL UNIQUE, body TEXT NOT NULL, revoked_at BIGINT)
            """,
        ]),
    ]
}
