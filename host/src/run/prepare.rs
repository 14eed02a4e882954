//! Before any thread starts: open the inputs, then the database (recording the run), allocate
//! the ring, make the bucket, position each input where its last run committed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::anyhow;
use pc_core::{Clock, TokenBucket};

use super::pinning::{self, PinPlan};
use crate::config::{Config, Format, SourceSpec};
use crate::dead_letter::DeadLetters;
use crate::observe::latency_log::LatencyLog;
use crate::observe::profile::Profile;
use crate::paths::SIDE_FILES;
use crate::paths::sibling;
use crate::position::InputStart;
use crate::queue::Queue;
use crate::sink::sqlite::checkpoint::Checkpointer;
use crate::sink::{self, AnySink, Connector, RunEnd, RunStart, Sink as _};
use crate::source::input::{OpenFile, open_file};
use crate::source::lines::{Input, file_input, line_limit, stdin_input};
use crate::source::nats;
use crate::telemetry::NatsStats;

/// Why a run could not start.
#[derive(Debug)]
pub enum PrepareError {
    /// Bad input named by the user (a missing file, a directory...): exit 2.
    Input(String),
    /// The database or the machine: exit 1.
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for PrepareError {
    fn from(e: anyhow::Error) -> Self {
        Self::Failed(e)
    }
}

/// A line source, opened and positioned.
#[derive(Debug)]
pub struct LineInput {
    pub input: Input,
    pub start: InputStart,
    pub format: Format,
    /// Bytes left to read, for a file that is not followed (`None`: no known end).
    pub left: Option<u64>,
}

/// Everything a run needs, opened and checked before any thread starts.
#[derive(Debug)]
pub struct Prepared {
    pub run_id: i64,
    /// The first writer (positions and the run's row go through it) and any more, one per
    /// consumer where the sink takes parallel writes and no file input needs ring order: MIN
    /// of them in a scaled run, whose scaler opens more (`connector`) as it adds consumers.
    pub writers: Vec<AnySink>,
    /// What opens more writers; `None` where there is only the first (the sink has one
    /// writer, or commits must keep ring order).
    pub connector: Option<Connector>,
    /// SQLite: the checkpoint thread's connection.
    pub checkpointer: Option<Checkpointer>,
    pub ring: Queue,
    /// Unlimited rate: `None`.
    pub bucket: Option<TokenBucket>,
    pub burst: u64,
    pub chunk: u64,
    pub clock: Clock,
    /// Unix ns at the clock's 0.
    pub unix_base: i64,
    pub pins: PinPlan,
    pub lines: Vec<LineInput>,
    pub dead_letters: Option<Arc<DeadLetters>>,
    pub latency_log: Option<LatencyLog>,
    /// NATS sources, connected, with their streams' input ids.
    pub nats_inputs: Vec<NatsInput>,
    /// The NATS counters, when the run reads from or publishes to NATS.
    pub nats: Option<Arc<NatsStats>>,
    /// More about the sink for the header (NATS: the stream and its settings).
    pub sink_desc: Option<String>,
    /// `--lanes`: each lane's bucket and producers; empty without lanes.
    pub lanes: Vec<super::lanes::Lane>,
}

/// A NATS source, connected and registered with the sink.
#[derive(Debug)]
pub struct NatsInput {
    pub opened: nats::Opened,
    pub until_empty: bool,
    /// The stream's input id in the sink.
    pub stream_input: u32,
}

/// Opens the inputs, then the database (recording the run), allocates the ring and makes the
/// bucket. Nothing is written to the database if an input cannot be opened; a NATS source's
/// durable consumer is bound only once the database is ready, so a refused database leaves
/// nothing on the NATS server (a consumer JetStream refuses fails the run recorded by then, and
/// its end is recorded as failed: [`record_failed_start`]).
///
/// # Errors
/// [`PrepareError::Input`] for an input the user named that cannot be read;
/// [`PrepareError::Failed`] for the database.
pub fn prepare(cfg: &Config) -> Result<Prepared, PrepareError> {
    let files = open_files(cfg)?;
    // Before the database: a NATS stream that cannot be read writes nothing. Its consumer is
    // bound after the database is ready: a run refused there makes nothing on the server.
    let mut nats_found = Vec::new();
    for spec in &cfg.sources {
        if let SourceSpec::Nats(n) = spec {
            nats_found.push((nats::find(n)?, n));
        }
    }
    let nats_stats = Arc::new(NatsStats::default());
    let dead_letter_existed = check_outputs(cfg)?;
    let mut latency_log = create_latency_log(cfg)?;
    let clock = Clock::new();
    let unix_base = unix_now_ns().saturating_sub(clock.now() as i64);
    let threads = cfg.source_threads();
    let chunk = crate::flow::chunk(cfg.rps, threads, cfg.capacity);
    let (bucket, burst) = rate_bucket(cfg.rps, chunk)?;
    let lanes = super::lanes::plan(cfg)?;
    let ring = match cfg.lanes.len() {
        0 => Queue::ring(cfg.capacity),
        k => Queue::lanes(cfg.capacity, k),
    }
    .map_err(|e| anyhow!("--capacity {}: {e}", cfg.capacity))?;
    let started_at = unix_base.saturating_add(clock.now() as i64);
    let config_json = cfg.to_json().to_string();
    let opened = sink::open(
        &cfg.sink,
        &RunStart {
            producers: cfg.producers,
            config_json: &config_json,
            started_at,
            busy: cfg.busy_timeout,
            retry_for: cfg.retry_for,
            synchronous: cfg.synchronous,
            page_size: cfg.page_size.as_ref(),
            rps: cfg.rps,
            delivered: cfg.reads_nats(),
            nats: &nats_stats,
        },
    )?;
    let run_id = opened.run_id;
    let mut writers = vec![opened.sink];
    let started = (|| {
        // Before any is registered: a file one source reads is not called unread at another's.
        crate::position::read_by_this_run(
            files
                .iter()
                .flatten()
                .map(|opened| (opened.key.dev, opened.key.ino)),
        );
        let lines = position_inputs(cfg, files, &mut writers[0])?;
        let nats_inputs = bind_nats(cfg, nats_found, &mut writers[0])?;
        let connector = more_writers(cfg, &mut writers)?;
        if let Some(log) = &mut latency_log {
            log.start(run_id, SystemTime::now()).map_err(|e| {
                anyhow!(
                    "--latency-log {}: cannot write it: {e}",
                    log.path().display()
                )
            })?;
        }
        Ok::<_, PrepareError>((lines, nats_inputs, connector))
    })();
    let (lines, nats_inputs, connector) = match started {
        Ok(parts) => parts,
        Err(e) => {
            record_failed_start(cfg, &mut writers[0]);
            return Err(e);
        }
    };
    let uses_nats = !nats_inputs.is_empty() || matches!(cfg.sink, crate::config::SinkSpec::Nats(_));
    let pins = pinning::plan(cfg.pin, cfg.consumers, threads);
    let dead_letters = cfg.dead_letter.as_ref().map(|path| {
        let dl = DeadLetters::new(path, dead_letter_existed, run_id);
        name_inputs(&dl, &lines, &nats_inputs);
        Arc::new(dl)
    });
    Ok(Prepared {
        run_id,
        writers,
        connector,
        checkpointer: opened.checkpointer,
        ring,
        bucket,
        burst,
        chunk,
        clock,
        unix_base,
        pins,
        lines,
        dead_letters,
        latency_log,
        nats_inputs,
        nats: uses_nats.then_some(nats_stats),
        sink_desc: opened.desc,
        lanes,
    })
}

/// A run recorded in the sink that could not start after all (an input another process
/// moved, a NATS consumer JetStream refused, a further writer that cannot connect, a signal):
/// its end is recorded, as failed with nothing produced, so that `verify` says it ended with
/// an error instead of that it may still be running. If that fails too, a warning says so.
fn record_failed_start(cfg: &Config, sink: &mut AnySink) {
    // Generated runs record a count per producer (verify checks there are that many).
    let per_producer = vec![0; if cfg.generated() { cfg.producers } else { 0 }];
    let end = RunEnd::nothing(unix_now_ns(), &per_producer);
    if let Err(e) = sink.finish_run(&end) {
        tracing::warn!("the run could not record its end either: {e}");
    }
}

/// `--latency-log`, created (`None` without it).
fn create_latency_log(cfg: &Config) -> Result<Option<LatencyLog>, PrepareError> {
    let Some(path) = &cfg.latency_log else {
        return Ok(None);
    };
    LatencyLog::create(path)
        .map(Some)
        .map_err(|e| PrepareError::Input(format!("--latency-log {}: {e}", path.display())))
}

/// The run's bucket for `--rps` (none at 0, unlimited), and its burst. The bucket holds
/// 100 ms of tokens (at least a `chunk`): a stall shorter than that is caught up afterwards,
/// with the records keeping their scheduled times (so the stall shows in the latency).
fn rate_bucket(rps: u64, chunk: u64) -> Result<(Option<TokenBucket>, u64), PrepareError> {
    let burst = (rps / 10).max(chunk);
    let bucket = match rps {
        0 => None,
        rps => {
            Some(TokenBucket::try_per_second(rps, burst).map_err(|e| anyhow!("--rps {rps}: {e}"))?)
        }
    };
    Ok((bucket, burst))
}

/// Registers each NATS stream found with the sink, then binds its durable consumer.
fn bind_nats(
    cfg: &Config,
    found: Vec<(nats::Found, &crate::config::url::NatsSource)>,
    sink: &mut AnySink,
) -> Result<Vec<NatsInput>, PrepareError> {
    let mut inputs = Vec::new();
    for (found, spec) in found {
        let stream_input = sink
            .register(Some(&found.stream_key))
            .map_err(|e| e.error)?
            .input;
        let max_ack_pending = cfg.capacity.saturating_mul(4).max(20_000);
        inputs.push(NatsInput {
            opened: found.bind(spec, max_ack_pending)?,
            until_empty: spec.until_empty,
            stream_input,
        });
    }
    Ok(inputs)
}

/// A sink that writes in parallel gets a writer per starting consumer, and keeps its
/// connector for the writers a scaler adds; file inputs need their records committed in ring
/// order, so they keep one writer (and no connector).
fn more_writers(
    cfg: &Config,
    writers: &mut Vec<AnySink>,
) -> Result<Option<Connector>, PrepareError> {
    let in_order = cfg.follows()
        || cfg
            .sources
            .iter()
            .any(|s| matches!(s, SourceSpec::File { .. }));
    let parallel = if in_order { 1 } else { cfg.consumers_max };
    let connector = writers[0].connector().filter(|_| parallel > 1);
    if let Some(connector) = &connector {
        while writers.len() < cfg.consumers {
            writers.push(connector.connect()?);
        }
    }
    Ok(connector)
}

/// Tells the dead-letter file each input's name, for its entries.
fn name_inputs(dl: &DeadLetters, lines: &[LineInput], nats_inputs: &[NatsInput]) {
    for line in lines {
        dl.name_input(line.start.resume.input, line.start.name.clone());
    }
    for input in nats_inputs {
        let name = input.opened.stream_key.path.display().to_string();
        dl.name_input(input.stream_input, name);
    }
}

/// Checks the files the run writes besides the sink (`--dead-letter`, `--latency-log`,
/// `--profile`) before anything is written: each is writable, pc-host's own if it exists, and
/// none is the database (or its `-wal`, `-shm`, `-journal`), an input (standard input's file
/// too, when it is one), or another of them: an output that is also an input would read back
/// what it writes, for as long as the run lasts. Returns whether the dead-letter file exists
/// already.
fn check_outputs(cfg: &Config) -> Result<bool, PrepareError> {
    let mut taken: Vec<PathBuf> = cfg.sqlite_path().into_iter().map(PathBuf::from).collect();
    taken.extend(cfg.sources.iter().filter_map(|s| match s {
        SourceSpec::File { path, .. } => Some(path.clone()),
        // The file (or pipe) on fd 0, through the kernel's link to it.
        SourceSpec::Stdin { .. } => Some(PathBuf::from("/dev/stdin")),
        _ => None,
    }));
    taken.extend(
        taken
            .clone()
            .iter()
            .flat_map(|p| SIDE_FILES.map(|x| sibling(p, x))),
    );
    let mut existed = false;
    if let Some(path) = &cfg.dead_letter {
        existed = DeadLetters::check(path, &taken).map_err(PrepareError::Input)?;
        taken.push(path.clone());
    }
    if let Some(path) = &cfg.latency_log {
        LatencyLog::check(path, &taken).map_err(PrepareError::Input)?;
        taken.push(path.clone());
    }
    if let Some(path) = &cfg.profile {
        Profile::check(path, &taken).map_err(PrepareError::Input)?;
    }
    Ok(existed)
}

/// Opens every file source (in `cfg.sources` order; `None` for other sources).
fn open_files(cfg: &Config) -> Result<Vec<Option<OpenFile>>, PrepareError> {
    let mut files: Vec<Option<OpenFile>> = Vec::new();
    // Stdin's file, if it is a regular file: no file source may be it too.
    let mut stdin_file = None;
    for spec in &cfg.sources {
        let SourceSpec::File { path, .. } = spec else {
            if matches!(spec, SourceSpec::Stdin { .. }) {
                stdin_file = check_stdin(cfg)?;
            }
            files.push(None);
            continue;
        };
        let opened = open_file(path).map_err(|why| PrepareError::Input(cfg.source_error(&why)))?;
        let (dev, ino) = (opened.key.dev, opened.key.ino);
        if let Some(db) = cfg
            .sqlite_path()
            .filter(|db| is_database_file(dev, ino, db))
        {
            return Err(PrepareError::Input(cfg.source_error(&format!(
                "file:{} is the database this run writes ({}), or one of its files: give \
                 another input",
                path.display(),
                db.display()
            ))));
        }
        if let Some(twin) = opened_as(&files, (dev, ino)) {
            return Err(PrepareError::Input(cfg.source_error(&format!(
                "file:{} and file:{} are the same file: give it once",
                twin.key.path.display(),
                path.display()
            ))));
        }
        files.push(Some(opened));
    }
    if let Some(twin) = stdin_file.and_then(|id| opened_as(&files, id)) {
        return Err(PrepareError::Input(cfg.source_error(&format!(
            "stdin and file:{} are the same file: give it once",
            twin.key.path.display()
        ))));
    }
    Ok(files)
}

/// The file source among `files` that opened the file with device and inode `id`, if any.
fn opened_as(files: &[Option<OpenFile>], id: (u64, u64)) -> Option<&OpenFile> {
    files
        .iter()
        .flatten()
        .find(|f| (f.key.dev, f.key.ino) == id)
}

/// Refuses a standard input that cannot be a source, before the run is recorded: a directory
/// (`pc-host --source - < DIR`, which opens but fails at the first read), or the database this
/// run writes or one of its files (`< pc-host.db`: the run would read its own pages as lines,
/// and with them what it writes). Returns stdin's device and inode if it is a regular file.
fn check_stdin(cfg: &Config) -> Result<Option<(u64, u64)>, PrepareError> {
    use std::os::fd::AsFd as _;
    use std::os::unix::fs::MetadataExt as _;
    let Ok(meta) = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .and_then(|fd| std::fs::File::from(fd).metadata())
    else {
        return Ok(None);
    };
    if meta.is_dir() {
        return Err(PrepareError::Input(cfg.source_error(
            "stdin is a directory: pipe a file in, or give it with --source file:PATH",
        )));
    }
    if let Some(db) = cfg
        .sqlite_path()
        .filter(|db| is_database_file(meta.dev(), meta.ino(), db))
    {
        return Err(PrepareError::Input(cfg.source_error(&format!(
            "stdin is the database this run writes ({}), or one of its files: give another input",
            db.display()
        ))));
    }
    Ok(meta.is_file().then(|| (meta.dev(), meta.ino())))
}

/// Whether the file with device `dev` and inode `ino` is the SQLite database `db` or its
/// `-wal`, `-shm` or `-journal` (by device and inode, so a link or another spelling of the path
/// is caught too).
fn is_database_file(dev: u64, ino: u64, db: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::iter::once("").chain(SIDE_FILES).any(|suffix| {
        std::fs::metadata(sibling(db, suffix)).is_ok_and(|m| m.dev() == dev && m.ino() == ino)
    })
}

/// Registers each line source with the sink and positions it where its last run committed.
fn position_inputs(
    cfg: &Config,
    files: Vec<Option<OpenFile>>,
    writer: &mut AnySink,
) -> anyhow::Result<Vec<LineInput>> {
    let mut lines = Vec::new();
    for (spec, file) in cfg.sources.iter().zip(files) {
        let line = match (spec, file) {
            (SourceSpec::Stdin { format, .. }, _) => {
                let resume = writer.register(None).map_err(|e| e.error)?;
                LineInput {
                    left: None,
                    input: stdin_input(line_limit(*format, cfg.max_record_bytes)),
                    start: InputStart {
                        name: "stdin".into(),
                        resume,
                    },
                    format: *format,
                }
            }
            (
                SourceSpec::File {
                    path,
                    follow,
                    rotate_wait,
                    format,
                    ..
                },
                Some(opened),
            ) => {
                let mut resume = writer.register(Some(&opened.key)).map_err(|e| e.error)?;
                let name = opened.key.path.display().to_string();
                let size = opened.file.metadata().map(|m| m.len()).ok();
                let left = size
                    .filter(|_| !*follow)
                    .map(|len| len.saturating_sub(resume.offset));
                let input = file_input(
                    opened,
                    path.clone(),
                    follow.then_some(*rotate_wait),
                    &mut resume,
                    line_limit(*format, cfg.max_record_bytes),
                )?;
                LineInput {
                    input,
                    start: InputStart { name, resume },
                    format: *format,
                    left,
                }
            }
            _ => continue,
        };
        lines.push(line);
    }
    Ok(lines)
}

fn unix_now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
