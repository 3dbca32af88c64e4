//! The schema as numbered migrations, applied at open inside one transaction and recorded in `schema_migrations`.

use postgres::Client;

use crate::error::{pg, Fail};

/// Every migration, in order: (version, name, SQL). Applied ones are never edited; a change
/// is a new file with the next number.
pub(crate) const MIGRATIONS: &[(i32, &str, &str)] =
    &[(1, "initial", include_str!("../migrations/0001_initial.sql"))];

/// Brings the database to the newest schema. Replicas starting together serialise on a lock of
/// `schema_migrations`, so each migration runs once.
pub(crate) fn migrate(client: &mut Client) -> Result<Vec<i32>, Fail> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version int PRIMARY KEY,
                 name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .map_err(pg("creating schema_migrations"))?;
    let mut tx = client.transaction().map_err(pg("migrating"))?;
    tx.batch_execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
        .map_err(pg("locking schema_migrations"))?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .map_err(pg("reading schema_migrations"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let newest = MIGRATIONS.last().map_or(0, |m| m.0);
    if let Some(unknown) = applied.iter().find(|v| **v > newest) {
        return Err(Fail::Store(liftlab_store::StoreError::Corrupt {
            tree: "schema_migrations",
            key: unknown.to_string(),
            reason: format!(
                "the database has schema version {unknown}, newer than this liftlab knows ({newest})"
            ),
        }));
    }
    let mut ran = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).map_err(pg("applying a migration"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .map_err(pg("recording a migration"))?;
        ran.push(*version);
    }
    tx.commit().map_err(pg("committing migrations"))?;
    Ok(ran)
}
