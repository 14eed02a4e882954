//! The columns of pc-host's tables, in order, as every sink lays them out and checks them.
//! SQLite's `runs` also keeps `first_id` and `last_id` (for its id-range count), so it states
//! its own list; the server sinks use [`RUNS`].

/// `runs` in the server sinks: the run, then its summary (kept when it ends).
pub const RUNS: &[&str] = &[
    "run_id",
    "started_at",
    "finished_at",
    "completed",
    "producers",
    "produced",
    "config",
    "stored",
    "dead_lettered",
    "not_stored",
    "retries",
    "latency_p50_ns",
    "latency_p99_ns",
    "latency_p999_ns",
    "latency_max_ns",
    "elapsed_s",
    "duplicates",
];

pub const RUN_PRODUCERS: &[&str] = &["run_id", "producer", "produced"];

/// The seed program's columns first (id, message, created_at).
pub const MESSAGES: &[&str] = &["id", "message", "created_at", "producer", "seq", "run_id"];

/// The file's identity, its committed position, and the mark of the bytes before it (added
/// last, by an upgrade: the sinks' older versions have the columns before it).
pub const INPUTS: &[&str] = &[
    "input_id", "path", "dev", "ino", "born", "offset", "line", "tail", "mark",
];

pub const RUN_INPUTS: &[&str] = &["run_id", "input_id"];

pub const RUN_INTERVALS: &[&str] = &[
    "run_id",
    "t_s",
    "produced",
    "stored",
    "rejected",
    "queue_depth",
    "latency_p50_ns",
    "latency_p99_ns",
    "latency_max_ns",
    "commit_p99_ns",
    "consumers",
];

/// The delivery tables of a broker source's runs and their one unique key each, as its columns
/// in alphabetical order joined by `,`: the key that makes a claim of a key already there do
/// nothing (`ON CONFLICT DO NOTHING`, `INSERT IGNORE`, `INSERT OR IGNORE`).
pub const DELIVERY_KEYS: [(&str, &str); 2] = [
    ("delivered", "key_run,producer,seq"),
    ("nats_origins", "origin"),
];

/// Why the delivery table `table`, with the columns `have` (each `name type`, in order), is
/// not pc-host's, whose has `want`; `None` when they are the same.
pub fn wrong_delivery_columns<S: AsRef<str>>(
    table: &str,
    have: &[S],
    want: &[&str],
) -> Option<String> {
    if have.iter().map(AsRef::as_ref).eq(want.iter().copied()) {
        return None;
    }
    let have: Vec<&str> = have.iter().map(AsRef::as_ref).collect();
    Some(format!(
        "table `{table}` has columns ({}) but pc-host's has ({}): it is not pc-host's; pc-host \
         will not write to it: use another database",
        have.join(", "),
        want.join(", ")
    ))
}

/// Why `table`, whose unique keys are `keys` (each as its columns in alphabetical order
/// joined by `,`, with anything that keeps it from standing for pc-host's key said after
/// them), cannot hold pc-host's delivery keys; `None` when its keys are exactly pc-host's one
/// ([`DELIVERY_KEYS`]), and for any other table. Without that key a record delivered twice
/// would be stored twice; with another one, a new record could be taken for a duplicate and
/// never stored.
pub fn wrong_delivery_keys(table: &str, keys: &[String]) -> Option<String> {
    let want = DELIVERY_KEYS.iter().find(|(name, _)| *name == table)?.1;
    if !keys.is_empty() && keys.iter().all(|k| k == want) {
        return None;
    }
    let has = if keys.is_empty() {
        "none".to_string()
    } else {
        keys.iter()
            .map(|k| format!("({k})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(format!(
        "table `{table}` has unique keys {has} but pc-host's has one, on ({want}): it is not \
         pc-host's (a record delivered twice could be stored twice, or a new one taken for a \
         duplicate); pc-host will not write to it: use another database"
    ))
}

/// "a table named messages that is" or "tables named messages, runs that are": the words for
/// tables a server database holds under pc-host's names without pc-host's mark table.
pub fn named_tables(names: &[impl AsRef<str>]) -> String {
    let list: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
    match list.as_slice() {
        [one] => format!("a table named {one} that is"),
        _ => format!("tables named {} that are", list.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_table_needs_exactly_its_one_unique_key() {
        let keys = |k: &[&str]| k.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
        assert_eq!(
            wrong_delivery_keys("delivered", &keys(&["key_run,producer,seq"])),
            None
        );
        // The same key twice (a primary key and a unique index on the same columns) is fine.
        assert_eq!(
            wrong_delivery_keys("nats_origins", &keys(&["origin", "origin"])),
            None
        );
        let none = wrong_delivery_keys("delivered", &[]).unwrap();
        assert!(none.contains("has unique keys none"), "{none}");
        assert!(none.contains("on (key_run,producer,seq)"), "{none}");
        let narrower = wrong_delivery_keys("delivered", &keys(&["key_run,producer,seq", "seq"]));
        assert!(narrower.unwrap().contains("(key_run,producer,seq), (seq)"));
        assert!(wrong_delivery_keys("nats_origins", &keys(&["origin,run_id"])).is_some());
        assert!(
            wrong_delivery_keys("delivered", &keys(&["key_run,producer,seq (partial)"])).is_some()
        );
        assert_eq!(wrong_delivery_keys("messages", &[]), None);
    }

    #[test]
    fn one_foreign_table_is_named_in_the_singular() {
        assert_eq!(
            named_tables(&["messages"]),
            "a table named messages that is"
        );
        assert_eq!(
            named_tables(&["messages", "runs"]),
            "tables named messages, runs that are"
        );
    }
}
