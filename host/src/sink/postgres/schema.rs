//! pc-host's tables in a PostgreSQL database: recognising them (or refusing tables that are
//! not pc-host's) and creating them in a database that has none of them.
//!
//! pc-host's tables are marked by the table `pc_host_schema` holding its schema version. A
//! database with any of pc-host's table names but without the mark (for instance the seed
//! program's `messages(id, message, created_at)`) is refused, never altered. Other tables in
//! the database are none of pc-host's business and are left alone.

use anyhow::anyhow;
use postgres::GenericClient;

/// The mark's table.
pub const MARK: &str = "pc_host_schema";
/// The version `pc_host_schema` holds: the schema this build writes and reads.
pub const SCHEMA_VERSION: i32 = 1;

/// The tables, in the order they are created (after the mark).
const SCHEMA: &str = r#"
CREATE TABLE pc_host_schema (
    version INT NOT NULL                     -- the layout of the tables below
);
INSERT INTO pc_host_schema (version) VALUES (1);
COMMENT ON TABLE pc_host_schema IS 'Marks the tables of pc-host (a load host); its schema version.';
CREATE TABLE runs (
    run_id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,                 -- NULL while running or if cut short
    completed   BOOLEAN NOT NULL DEFAULT false, -- drained and committed everything accepted
    producers   INT NOT NULL,                -- generator threads (0 in an ingest run)
    produced    BIGINT,                      -- records accepted into the ring
    config      TEXT NOT NULL                -- the effective configuration, JSON
);
CREATE TABLE run_producers (
    run_id   BIGINT NOT NULL REFERENCES runs (run_id),
    producer INT NOT NULL,
    produced BIGINT NOT NULL,                -- its messages have seq 0 .. produced - 1
    PRIMARY KEY (run_id, producer)
);
CREATE TABLE messages (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,         -- when the record was built or read
    producer   INT NOT NULL,                 -- generator thread, or input_id
    seq        BIGINT NOT NULL,              -- generator count, or line number in the input
    run_id     BIGINT NOT NULL,
    UNIQUE (run_id, producer, seq)           -- a batch retried after a lost reply stores once
);
CREATE TABLE inputs (
    input_id INT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- the producer of its rows
    path     TEXT,                           -- absolute path; NULL for stdin
    dev      BIGINT,                         -- the file's identity: device, inode and
    ino      BIGINT,
    born     BIGINT,                         -- birth time (unix ns; NULL if not recorded)
    "offset" BIGINT NOT NULL DEFAULT 0,      -- bytes committed: a resume reads from here
    line     BIGINT NOT NULL DEFAULT 0,      -- lines committed: the next line's number
    tail     BIGINT NOT NULL DEFAULT 0,      -- bytes of a last line committed without its end
    UNIQUE (path, dev, ino, born)
);
CREATE TABLE run_inputs (
    run_id   BIGINT NOT NULL REFERENCES runs (run_id),
    input_id INT NOT NULL REFERENCES inputs (input_id),
    PRIMARY KEY (run_id, input_id)
);
"#;

/// Each table's columns, in order; the mark first.
const TABLES: [(&str, &[&str]); 6] = [
    (MARK, &["version"]),
    (
        "runs",
        &[
            "run_id",
            "started_at",
            "finished_at",
            "completed",
            "producers",
            "produced",
            "config",
        ],
    ),
    ("run_producers", &["run_id", "producer", "produced"]),
    (
        "messages",
        &["id", "message", "created_at", "producer", "seq", "run_id"],
    ),
    (
        "inputs",
        &[
            "input_id", "path", "dev", "ino", "born", "offset", "line", "tail",
        ],
    ),
    ("run_inputs", &["run_id", "input_id"]),
];

/// The tables of [`TABLES`] that exist (as the search path finds them), with their columns.
const FIND_TABLES: &str = "
SELECT t.name, ARRAY(SELECT a.attname::text FROM pg_attribute a
                     WHERE a.attrelid = to_regclass(t.name) AND a.attnum > 0
                       AND NOT a.attisdropped ORDER BY a.attnum)
FROM unnest($1::text[]) WITH ORDINALITY AS t(name, ord)
WHERE to_regclass(t.name) IS NOT NULL ORDER BY t.ord";

/// What a database holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// None of pc-host's tables.
    Empty,
    /// pc-host's tables, of this version.
    Current,
}

/// Why a database cannot be used: a read failed, or it holds tables pc-host refuses.
#[derive(Debug)]
pub enum Refused {
    Db(postgres::Error),
    /// What is wrong, for "URL: ...".
    Foreign(String),
}

impl From<postgres::Error> for Refused {
    fn from(e: postgres::Error) -> Self {
        Self::Db(e)
    }
}

/// Recognises what the database holds; reads only.
///
/// # Errors
/// [`Refused::Foreign`] for tables with pc-host's names that are not (or no longer) pc-host's
/// own, or another version; [`Refused::Db`] if reading fails.
pub fn check(c: &mut impl GenericClient) -> Result<Found, Refused> {
    let names: Vec<&str> = TABLES.iter().map(|(name, _)| *name).collect();
    let found: Vec<(String, Vec<String>)> = c
        .query(FIND_TABLES, &[&names])?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    if found.is_empty() {
        return Ok(Found::Empty);
    }
    if found[0].0 != MARK {
        let list: Vec<&str> = found.iter().map(|(name, _)| name.as_str()).collect();
        return Err(Refused::Foreign(format!(
            "the database has tables named {} but they are not pc-host's (no {MARK} table); \
             pc-host will not write to them: use another database",
            list.join(", ")
        )));
    }
    let versions: Vec<i32> = c
        .query(&format!("SELECT version FROM {MARK}"), &[])?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if versions != [SCHEMA_VERSION] {
        return Err(Refused::Foreign(format!(
            "{MARK} holds versions {versions:?}, this pc-host reads version {SCHEMA_VERSION}: use \
             a matching pc-host or another database"
        )));
    }
    for (table, want) in &TABLES[1..] {
        let have = found.iter().find(|(name, _)| name == table).map(|(_, c)| c);
        match have {
            Some(have) if have == want => {}
            Some(have) => {
                return Err(Refused::Foreign(format!(
                    "table `{table}` has columns ({}) but pc-host expects ({}); the tables were \
                     altered: use another database",
                    have.join(", "),
                    want.join(", ")
                )));
            }
            None => {
                return Err(Refused::Foreign(format!(
                    "table `{table}` of pc-host's tables is missing; the tables were altered: \
                     use another database"
                )));
            }
        }
    }
    Ok(Found::Current)
}

/// Creates the tables, inside the caller's transaction (all or none of them).
///
/// # Errors
/// The server's (no permission to create tables, a table created meanwhile by another client).
pub fn create(c: &mut impl GenericClient) -> Result<(), postgres::Error> {
    c.batch_execute(SCHEMA)
}

/// `Refused` as the one line the user sees.
pub fn explain(e: Refused, shown: &str) -> anyhow::Error {
    match e {
        Refused::Db(e) => anyhow!("{shown}: {}", super::error::describe(&e)),
        Refused::Foreign(why) => anyhow!("{shown}: {why}"),
    }
}
