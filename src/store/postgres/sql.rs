//! The SQL a [`PostgresStore`](super::PostgresStore) sends, built once per
//! table name.
//!
//! Every statement names the table through [`quote_ident`], so a table name
//! is data, never SQL: whatever it holds, it names one table.

/// The table a [`PostgresStore`](super::PostgresStore) uses unless told
/// otherwise.
pub const DEFAULT_TABLE: &str = "latchkey_sessions";

/// The schema for the default table, exactly what
/// [`PostgresStore::migrate`](super::PostgresStore::migrate) runs for it
/// (see "Schema" in the [module docs](super)).
pub const MIGRATION_SQL: &str = "\
CREATE TABLE IF NOT EXISTS \"latchkey_sessions\" (
    key        bytea  PRIMARY KEY CHECK (octet_length(key) = 32),
    version    bigint NOT NULL,
    expires_at bigint NOT NULL,
    last_seen  bigint NULL,
    user_name  bytea  NULL,
    record     text   NOT NULL
);
CREATE INDEX IF NOT EXISTS \"latchkey_sessions_user_name\"
    ON \"latchkey_sessions\" (user_name) WHERE user_name IS NOT NULL;
CREATE INDEX IF NOT EXISTS \"latchkey_sessions_expires_at\"
    ON \"latchkey_sessions\" (expires_at);
";

/// `name` as a quoted SQL identifier: `"` around it, each `"` in it
/// doubled. PostgreSQL cuts identifiers at 63 bytes (with a notice).
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The statements for one table.
#[derive(Debug, Clone)]
pub(super) struct Sql {
    pub(super) migrate: String,
    pub(super) insert: String,
    pub(super) get: String,
    pub(super) replace: String,
    pub(super) exists: String,
    pub(super) touch: String,
    pub(super) remove: String,
    pub(super) sessions_of: String,
    pub(super) purge: String,
}

/// The columns a read returns, in the order `super::row_record` takes
/// them.
const COLUMNS: &str = "key, version, expires_at, last_seen, record";

impl Sql {
    pub(super) fn new(table: &str) -> Sql {
        let t = quote_ident(table);
        let user_idx = quote_ident(&format!("{table}_user_name"));
        let expires_idx = quote_ident(&format!("{table}_expires_at"));
        Sql {
            migrate: MIGRATION_SQL
                .replace("\"latchkey_sessions_user_name\"", &user_idx)
                .replace("\"latchkey_sessions_expires_at\"", &expires_idx)
                .replace("\"latchkey_sessions\"", &t),
            insert: format!(
                "INSERT INTO {t} (key, version, expires_at, last_seen, user_name, record) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key) DO NOTHING"
            ),
            get: format!("SELECT {COLUMNS} FROM {t} WHERE key = $1"),
            replace: format!(
                "UPDATE {t} SET version = $3, expires_at = $4, last_seen = $5, user_name = $6, \
                 record = $7 WHERE key = $1 AND version = $2"
            ),
            exists: format!("SELECT 1 FROM {t} WHERE key = $1"),
            // `last_seen IS NOT NULL` is "the record is live": only live
            // records have activity to record.
            touch: format!(
                "UPDATE {t} SET last_seen = GREATEST(last_seen, $2), \
                 expires_at = GREATEST(expires_at, $3) \
                 WHERE key = $1 AND last_seen IS NOT NULL"
            ),
            remove: format!("DELETE FROM {t} WHERE key = $1"),
            sessions_of: format!("SELECT {COLUMNS} FROM {t} WHERE user_name = $1"),
            purge: format!("DELETE FROM {t} WHERE expires_at <= $1"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_table_migrates_with_exactly_the_published_sql() {
        assert_eq!(Sql::new(DEFAULT_TABLE).migrate, MIGRATION_SQL);
    }

    #[test]
    fn a_table_name_is_quoted_never_spliced() {
        assert_eq!(
            quote_ident("a\"; DROP TABLE x; --"),
            "\"a\"\"; DROP TABLE x; --\""
        );
        let sql = Sql::new("app\"x");
        assert!(sql.get.contains("FROM \"app\"\"x\" WHERE"), "{}", sql.get);
        assert!(
            sql.migrate.contains("\"app\"\"x_expires_at\""),
            "{}",
            sql.migrate
        );
        assert!(
            !sql.migrate.contains("latchkey_sessions"),
            "{}",
            sql.migrate
        );
    }
}
