//! pc-host's tables in a PostgreSQL database: recognising them (or refusing tables that are
//! not pc-host's), creating them in a database that has none of them, and upgrading an older
//! pc-host layout in place.
//!
//! pc-host's tables are marked by the table `pc_host_schema` holding its schema version. A
//! database with any of pc-host's table names but without the mark (for instance the seed
//! program's `messages(id, message, created_at)`) is refused, never altered. Other tables in
//! the database are none of pc-host's business and are left alone. Older tables are brought
//! up to date in place: version 2 adds the run's summary columns to `runs` and the table
//! `run_intervals`, version 3 the `consumers` column of `run_intervals`, version 4 the `mark`
//! column of `inputs`, version 5 the `duplicates` column of `runs`; a new database gets the same DDL in the same order, so all end with the
//! same columns.

use crate::sink::tables;
use anyhow::anyhow;
use postgres::GenericClient;

/// The mark's table.
pub const MARK: &str = "pc_host_schema";
/// The version `pc_host_schema` holds: the schema this build writes and reads.
pub const SCHEMA_VERSION: i32 = 5;

/// Version 1: the mark, runs, their rows and inputs, in the order they are created.
const SCHEMA_V1: &str = r#"
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

/// Version 2 keeps what a run did with the data: its summary in `runs` (NULL until the run
/// ends), and one row per report interval in `run_intervals`.
const SCHEMA_V2_ADDS: &str = "
ALTER TABLE runs
    ADD COLUMN stored          BIGINT,       -- counted back at the end
    ADD COLUMN dead_lettered   BIGINT,
    ADD COLUMN not_stored      BIGINT,
    ADD COLUMN retries         BIGINT,
    ADD COLUMN latency_p50_ns  BIGINT,       -- every message, intended -> settled
    ADD COLUMN latency_p99_ns  BIGINT,
    ADD COLUMN latency_p999_ns BIGINT,
    ADD COLUMN latency_max_ns  BIGINT,
    ADD COLUMN elapsed_s       DOUBLE PRECISION;
CREATE TABLE run_intervals (
    run_id         BIGINT NOT NULL REFERENCES runs (run_id),
    t_s            DOUBLE PRECISION NOT NULL, -- the interval's end, seconds into the run
    produced       BIGINT NOT NULL,          -- records accepted in the interval
    stored         BIGINT NOT NULL,          -- records committed in the interval
    rejected       BIGINT NOT NULL,
    queue_depth    BIGINT NOT NULL,          -- ring length at the interval's end
    latency_p50_ns BIGINT,                   -- of messages settled in the interval;
    latency_p99_ns BIGINT,                   -- NULL when none was
    latency_max_ns BIGINT,
    commit_p99_ns  BIGINT,                   -- of commits in the interval
    PRIMARY KEY (run_id, t_s)
);
UPDATE pc_host_schema SET version = 2;
";

/// Version 3 keeps how many consumers ran at each interval's end (`--consumers MIN..MAX`
/// changes it); rows of older runs have NULL.
const SCHEMA_V3_ADDS: &str = "
ALTER TABLE run_intervals ADD COLUMN consumers INT; -- consumers running at the interval's end
UPDATE pc_host_schema SET version = 3;
";

/// Version 4 keeps a mark of the bytes before each input's committed position, so a resume
/// finds a file rewritten in place under it (`position::Window`); NULL until its next commit.
const SCHEMA_V4_ADDS: &str = "
ALTER TABLE inputs ADD COLUMN mark BIGINT;
UPDATE pc_host_schema SET version = 4;
";

/// Version 5 keeps a run's duplicates (deliveries of records the database already held,
/// dropped: a NATS source's), so that its row balances as the summary does: `produced =
/// stored + duplicates + dead_lettered + not_stored`. Runs of older versions have NULL.
const SCHEMA_V5_ADDS: &str = "
ALTER TABLE runs ADD COLUMN duplicates BIGINT; -- deliveries already stored, dropped
UPDATE pc_host_schema SET version = 5;
";

/// Each table's columns, in order; the mark first.
const TABLES: [(&str, &[&str]); 7] = [
    (MARK, &["version"]),
    ("runs", tables::RUNS),
    ("run_producers", tables::RUN_PRODUCERS),
    ("messages", tables::MESSAGES),
    ("inputs", tables::INPUTS),
    ("run_inputs", tables::RUN_INPUTS),
    ("run_intervals", tables::RUN_INTERVALS),
];

/// The columns of `runs` in version 1 (version 2 adds the summary's).
const RUNS_V1_COLUMNS: usize = 7;
/// The columns of `runs` in versions 2 to 4 (version 5 adds `duplicates`).
const RUNS_V2_COLUMNS: usize = 16;
/// The columns of `run_intervals` in version 2 (version 3 adds `consumers`).
const INTERVALS_V2_COLUMNS: usize = 10;
/// The columns of `inputs` in versions 1 to 3 (version 4 adds `mark`).
const INPUTS_V1_COLUMNS: usize = 8;

/// Of the tables named `$1`, those that exist (as the search path finds them), in the order
/// given, each with its columns in order: their names, and with `$2` their types too (`name
/// type`, in `format_type`'s words).
const FIND_TABLES: &str = "
SELECT t.name, ARRAY(SELECT a.attname::text
                            || CASE WHEN $2 THEN ' ' || format_type(a.atttypid, a.atttypmod)
                                    ELSE '' END
                     FROM pg_attribute a
                     WHERE a.attrelid = to_regclass(t.name) AND a.attnum > 0
                       AND NOT a.attisdropped ORDER BY a.attnum)
FROM unnest($1::text[]) WITH ORDINALITY AS t(name, ord)
WHERE to_regclass(t.name) IS NOT NULL ORDER BY t.ord";

/// Of the tables `names`, those that exist, in that order, with their columns (see
/// [`FIND_TABLES`]; `with_types` adds each column's type).
///
/// # Errors
/// The server's.
pub fn find_tables(
    c: &mut impl GenericClient,
    names: &[&str],
    with_types: bool,
) -> Result<Vec<(String, Vec<String>)>, postgres::Error> {
    Ok(c.query(FIND_TABLES, &[&names, &with_types])?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// What a database holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// None of pc-host's tables.
    Empty,
    /// pc-host's tables of version 1, which [`create_or_upgrade`] brings to this version.
    Version1,
    /// Version 2, likewise.
    Version2,
    /// Version 3, likewise.
    Version3,
    /// Version 4, likewise.
    Version4,
    /// pc-host's tables, of this version.
    Current,
}

/// Why a database cannot be used: a read failed, or a reason of pc-host's (it holds tables
/// pc-host refuses, or another process held a lock at the start for too long).
#[derive(Debug)]
pub enum Refused {
    Db(postgres::Error),
    /// What is wrong, for "URL: ...".
    Reason(String),
    /// Another client held a lock the start waited for past the wait it was given: what it
    /// held, for "URL: ... held ... for longer than --busy-timeout-ms".
    Held(String),
}

impl From<postgres::Error> for Refused {
    fn from(e: postgres::Error) -> Self {
        Self::Db(e)
    }
}

/// Recognises what the database holds: none of pc-host's tables, its tables of version 1 (to
/// upgrade), or of this version; reads only.
///
/// # Errors
/// [`Refused::Reason`] for tables with pc-host's names that are not (or no longer) pc-host's
/// own, or another version; [`Refused::Db`] if reading fails.
pub fn check(c: &mut impl GenericClient) -> Result<Found, Refused> {
    let names: Vec<&str> = TABLES.iter().map(|(name, _)| *name).collect();
    let found = find_tables(c, &names, false)?;
    if found.is_empty() {
        return Ok(Found::Empty);
    }
    if found[0].0 != MARK {
        let list: Vec<&str> = found.iter().map(|(name, _)| name.as_str()).collect();
        return Err(Refused::Reason(format!(
            "the database has {} not pc-host's (no {MARK} table); pc-host leaves it as it is: \
             use another database",
            crate::sink::tables::named_tables(&list)
        )));
    }
    let not_the_mark = || {
        Refused::Reason(format!(
            "table `{MARK}` is not pc-host's (pc-host's has one column, `version integer`); \
             pc-host will not write to this database's tables: use another database"
        ))
    };
    if found[0].1 != ["version"] {
        return Err(not_the_mark());
    }
    let versions: Vec<i32> = c
        .query(&format!("SELECT version FROM {MARK}"), &[])?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(|_| not_the_mark())?;
    let found_version = match versions[..] {
        [1] => Found::Version1,
        [2] => Found::Version2,
        [3] => Found::Version3,
        [4] => Found::Version4,
        [SCHEMA_VERSION] => Found::Current,
        _ => {
            return Err(Refused::Reason(format!(
                "{MARK} holds versions {versions:?}, this pc-host reads versions 1 to \
                 {SCHEMA_VERSION}: use a matching pc-host or another database"
            )));
        }
    };
    check_columns(&found, &found_version)?;
    Ok(found_version)
}

/// The columns `table` has in a database of version `v`; `None`: the table is not there.
fn expected(
    table: &str,
    want: &'static [&'static str],
    v: &Found,
) -> Option<&'static [&'static str]> {
    match (v, table) {
        (Found::Current, _) => Some(want),
        (Found::Version1, "run_intervals") => None,
        (Found::Version1, "runs") => Some(&want[..RUNS_V1_COLUMNS]),
        (_, "runs") => Some(&want[..RUNS_V2_COLUMNS]),
        (Found::Version4, _) => Some(want),
        (_, "inputs") => Some(&want[..INPUTS_V1_COLUMNS]),
        (Found::Version2, "run_intervals") => Some(&want[..INTERVALS_V2_COLUMNS]),
        _ => Some(want),
    }
}

/// Checks that each of pc-host's tables `found` (name, columns) has the columns of version
/// `v`, and that the tables `v` lacks are not there.
///
/// # Errors
/// [`Refused::Reason`] naming the first table that differs.
fn check_columns(found: &[(String, Vec<String>)], v: &Found) -> Result<(), Refused> {
    for (table, want) in &TABLES[1..] {
        let have = found.iter().find(|(name, _)| name == table).map(|(_, c)| c);
        match (have, expected(table, want, v)) {
            (Some(have), Some(want)) if have == want => {}
            (None, None) => {}
            (Some(have), Some(want)) => {
                return Err(Refused::Reason(format!(
                    "table `{table}` has columns ({}) but pc-host expects ({}); the tables were \
                     altered: use another database",
                    have.join(", "),
                    want.join(", ")
                )));
            }
            (Some(_), None) => {
                return Err(Refused::Reason(format!(
                    "table `{table}` is there but {MARK} says version 1, which has none; the \
                     tables were altered: use another database"
                )));
            }
            (None, Some(_)) => {
                return Err(Refused::Reason(format!(
                    "table `{table}` of pc-host's tables is missing; the tables were altered: \
                     use another database"
                )));
            }
        }
    }
    Ok(())
}

/// Inside the caller's transaction (all or none of it): creates the tables in a database that
/// has none of them, or upgrades version 1 to 4 ones in place, keeping their rows; does
/// nothing to current ones.
///
/// # Errors
/// The server's (no permission to create or alter tables, a lock on `runs` held by another
/// client past `lock_timeout`).
pub fn create_or_upgrade(c: &mut impl GenericClient, found: &Found) -> Result<(), postgres::Error> {
    // The versions' additions, in order; tables of version N need those after N.
    let from = match found {
        Found::Current => return Ok(()),
        Found::Empty => 0,
        Found::Version1 => 1,
        Found::Version2 => 2,
        Found::Version3 => 3,
        Found::Version4 => 4,
    };
    let adds = [
        SCHEMA_V1,
        SCHEMA_V2_ADDS,
        SCHEMA_V3_ADDS,
        SCHEMA_V4_ADDS,
        SCHEMA_V5_ADDS,
    ];
    for sql in &adds[from..] {
        c.batch_execute(sql)?;
    }
    Ok(())
}

/// `Refused` as the one line the user sees.
pub fn explain(e: Refused, shown: &str) -> anyhow::Error {
    match e {
        Refused::Db(e) => anyhow!("{shown}: {}", super::error::describe(&e)),
        Refused::Reason(why) => anyhow!("{shown}: {why}"),
        Refused::Held(held) => anyhow!(
            "{shown}: {held} for longer than --busy-timeout-ms: nothing was written; try again, \
             or give a longer --busy-timeout-ms"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each table of `TABLES` that version `v` has, with those columns.
    fn layout(v: &Found) -> Vec<(String, Vec<String>)> {
        TABLES
            .iter()
            .filter_map(|(table, want)| {
                let cols = if *table == MARK {
                    Some(*want)
                } else {
                    expected(table, want, v)
                };
                cols.map(|c| (table.to_string(), c.iter().map(|c| c.to_string()).collect()))
            })
            .collect()
    }

    #[test]
    fn each_version_accepts_its_own_layout_and_refuses_the_others() {
        for (v, other) in [
            (Found::Version1, Found::Current),
            (Found::Current, Found::Version1),
            (Found::Version2, Found::Current),
            (Found::Current, Found::Version2),
            (Found::Version1, Found::Version2),
            (Found::Version2, Found::Version1),
            (Found::Version3, Found::Current),
            (Found::Current, Found::Version3),
            (Found::Version2, Found::Version3),
            (Found::Version3, Found::Version2),
            (Found::Version4, Found::Current),
            (Found::Current, Found::Version4),
            (Found::Version3, Found::Version4),
            (Found::Version4, Found::Version3),
        ] {
            assert!(check_columns(&layout(&v), &v).is_ok(), "{v:?}");
            assert!(
                check_columns(&layout(&other), &v).is_err(),
                "{other:?} as {v:?}"
            );
        }
    }

    #[test]
    fn version_1_has_no_run_intervals_and_the_first_columns_of_runs() {
        let v1 = layout(&Found::Version1);
        assert!(v1.iter().all(|(t, _)| t != "run_intervals"));
        let runs = &v1.iter().find(|(t, _)| t == "runs").unwrap().1;
        assert_eq!(runs.last().map(String::as_str), Some("config"));
    }
}
