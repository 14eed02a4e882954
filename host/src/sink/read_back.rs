//! Reading a sink back, for `verify`: the runs it recorded and every message row; for
//! `verify --source`, one file input's position, runs and rows; for `plot`, a run's report
//! intervals.

use std::time::Duration;

use crate::config::SinkSpec;
use crate::position::FileKey;

/// A run recorded in a sink.
#[derive(Debug, Default)]
pub struct RunInfo {
    pub run_id: i64,
    pub completed: bool,
    pub finished: bool,
    /// Generator threads; 0 in an ingest run.
    pub producers: u32,
    /// Per producer (index = producer id), if the run finished.
    pub produced: Vec<u64>,
    /// The inputs an ingest run read (empty for a generated run).
    pub inputs: Vec<i64>,
    /// Records of the run written to the dead-letter file (`None` where the sink did not
    /// keep the count: a run that did not finish, or an older schema's): a completed
    /// generated run may miss exactly that many seqs.
    pub dead_lettered: Option<u64>,
    /// Accepted records of the run neither stored nor dead-lettered, as its end recorded them
    /// (`None` as for `dead_lettered`): more than 0 only where the sink failed.
    pub not_stored: Option<u64>,
    /// What the run's `runs.config` says of its dead letters.
    pub dead_letters: DeadLetters,
    /// Records the run accepted into the ring (`runs.produced`), and those it counted back
    /// as stored at its end (`runs.stored`): `None` as for `dead_lettered`.
    pub accepted: Option<u64>,
    pub stored: Option<u64>,
    /// Deliveries of records the database already held, dropped (a NATS source's), as the
    /// run's end recorded them: `None` as for `dead_lettered`, and in a database of an older
    /// schema, which keeps no such count.
    pub duplicates: Option<u64>,
    /// The run read from or published to a broker (a `nats://` source or sink, as its
    /// `runs.config` says): its accepted records include redeliveries it stored once, or its
    /// records are rows of the runs that consume the stream.
    pub broker: bool,
    /// A generated run's `--payload-size` (its `runs.config`): each text is padded to it.
    pub payload_size: Option<usize>,
}

/// Where a run's dead-letter entries are, as its `runs.config` (JSON) says.
#[derive(Debug, Default)]
pub struct DeadLetters {
    /// The file the run recorded (absolute, but for runs of older versions, which recorded
    /// it as given), if it had one.
    pub file: Option<std::path::PathBuf>,
    /// The run id its entries carry, where not its own: a run recorded from NATS files its
    /// publisher's rows, whose entries (written on the publisher's host) carry the
    /// publisher's run id.
    pub published_by: Option<i64>,
}

impl DeadLetters {
    fn of_json(config: &serde_json::Value) -> Self {
        Self {
            file: config["dead_letter"].as_str().map(std::path::PathBuf::from),
            published_by: config["published_by_run"].as_i64(),
        }
    }
}

/// What `verify` takes from a run's `runs.config` (JSON), read from it once.
#[derive(Debug, Default)]
pub struct FromConfig {
    pub dead_letters: DeadLetters,
    /// It names a broker (`nats://`) as a source or its sink ([`RunInfo::broker`]).
    pub broker: bool,
    /// [`RunInfo::payload_size`].
    pub payload_size: Option<usize>,
}

impl FromConfig {
    pub fn of(config: Option<&str>) -> Self {
        let Some(config) = config.and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
        else {
            return Self::default();
        };
        let sources = config["sources"].as_array().map_or(&[][..], Vec::as_slice);
        let starts =
            |v: &serde_json::Value, with: &str| v.as_str().is_some_and(|s| s.starts_with(with));
        Self {
            dead_letters: DeadLetters::of_json(&config),
            broker: starts(&config["sink"], "nats:") || sources.iter().any(|s| starts(s, "nats:")),
            payload_size: config["payload_size"]
                .as_u64()
                .and_then(|n| usize::try_from(n).ok()),
        }
    }
}

/// One message row.
#[derive(Debug)]
pub struct Row<'a> {
    pub run_id: i64,
    pub producer: i64,
    pub seq: i64,
    pub message: &'a str,
}

/// One report interval of a run, as `run_intervals` keeps it (the columns `plot` draws).
#[derive(Clone, Debug, PartialEq)]
pub struct Interval {
    /// The interval's end, seconds into the run.
    pub t_s: f64,
    /// Records accepted in the interval.
    pub produced: i64,
    /// Records committed in the interval.
    pub stored: i64,
    /// Latency of the messages settled in the interval; `None` when none was.
    pub p50_ns: Option<i64>,
    pub p99_ns: Option<i64>,
    pub max_ns: Option<i64>,
}

/// The query of one run's intervals, in time order, with `run` the run id's placeholder: the
/// same for every sink.
pub fn intervals_query(run: &str) -> String {
    format!(
        "SELECT t_s, produced, stored, latency_p50_ns, latency_p99_ns, latency_max_ns \
         FROM run_intervals WHERE run_id = {run} ORDER BY t_s"
    )
}

/// The query of the last run that has interval rows (NULL if none has).
pub const LAST_RUN_WITH_INTERVALS: &str = "SELECT MAX(run_id) FROM run_intervals";

/// The query of how many runs were recorded after run `run` (its placeholder).
pub fn runs_after_query(run: &str) -> String {
    format!("SELECT COUNT(*) FROM runs WHERE run_id > {run}")
}

/// A file input as the `inputs` table keeps it: its id and committed position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileInput {
    /// The `input_id` (the `producer` of its rows).
    pub input: i64,
    /// Bytes committed.
    pub offset: i64,
    /// Lines committed: the next line's number (counted over the input's life).
    pub line: i64,
    /// Bytes of a last line committed without its end, just before `offset`.
    pub tail: i64,
}

/// The columns of [`FileInput`], in its order, as a `SELECT` list (`offset` quoted by the
/// caller's dialect).
pub fn file_input_columns(offset: &str) -> String {
    format!("input_id, {offset}, line, tail")
}

/// A sink, opened read-only for `verify` and `plot`.
pub trait ReadBack: std::fmt::Debug {
    /// The runs recorded: one, or all (`None`), by run id.
    ///
    /// # Errors
    /// The sink's.
    fn runs(&mut self, only: Option<i64>) -> anyhow::Result<Vec<RunInfo>>;

    /// Calls `each` for every message row of one run, or of all runs (`None`), in any order.
    ///
    /// # Errors
    /// The sink's.
    fn rows(&mut self, only: Option<i64>, each: &mut dyn FnMut(Row<'_>)) -> anyhow::Result<()>;

    /// The input of the file `key`, found as a run finds it (the same path, device and inode,
    /// or the same device, inode and birth time after a rename), and its committed position;
    /// `None` if no run read it.
    ///
    /// # Errors
    /// The sink's.
    fn file_input(&mut self, key: &FileKey) -> anyhow::Result<Option<FileInput>>;

    /// The runs that read input `input`, by run id, each with its `runs.config` (JSON).
    ///
    /// # Errors
    /// The sink's.
    fn input_runs(&mut self, input: i64) -> anyhow::Result<Vec<(i64, Option<String>)>>;

    /// Calls `each` with the `(run_id, seq, message)` of every row of input `input` that a run
    /// which read it stored, in the order they were stored (by `id`), streamed from the database
    /// (a file may have more lines than fit in memory). The first error `each` returns stops
    /// the rows and is returned as it is.
    ///
    /// # Errors
    /// The sink's, or `each`'s.
    fn input_rows(
        &mut self,
        input: i64,
        each: &mut dyn FnMut(i64, i64, &str) -> anyhow::Result<()>,
    ) -> anyhow::Result<()>;

    /// The last run that has interval rows; `None` if none has (or the sink's schema is one
    /// that keeps none).
    ///
    /// # Errors
    /// The sink's.
    fn last_run_with_intervals(&mut self) -> anyhow::Result<Option<i64>>;

    /// Run `run`'s interval rows, in time order (none if it has none).
    ///
    /// # Errors
    /// The sink's.
    fn intervals(&mut self, run: i64) -> anyhow::Result<Vec<Interval>>;

    /// How many runs were recorded after run `run`.
    ///
    /// # Errors
    /// The sink's.
    fn runs_after(&mut self, run: i64) -> anyhow::Result<i64>;
}

/// Opens the sink `spec` names for reading; it must exist and hold pc-host tables. `busy`:
/// how long to wait for a lock another client holds.
///
/// # Errors
/// One line naming the sink and what is wrong.
pub fn open(spec: &SinkSpec, busy: Duration) -> anyhow::Result<Box<dyn ReadBack>> {
    match spec {
        SinkSpec::Sqlite(path) => Ok(Box::new(super::sqlite::read::SqliteReadBack::open(
            path, busy,
        )?)),
        SinkSpec::Postgres(url) => Ok(Box::new(super::postgres::Reader::open(url, busy)?)),
        SinkSpec::Mysql(url) => Ok(Box::new(super::mysql::Reader::open(url, busy)?)),
        SinkSpec::Nats(_) => Err(anyhow::anyhow!(
            "verify reads a database: give the database the stream is consumed into"
        )),
    }
}
