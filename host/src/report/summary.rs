//! The final summary of a run: the figures, as text for people or one JSON object for
//! programs. Both go to stdout, and nothing else does.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde_json::json;

use crate::position::InputStart;
use crate::telemetry::lanes::LaneFigures;
use crate::telemetry::machine::MachineUse;
use crate::telemetry::ms;

/// The version of the `--output json` object; bump it when a key changes meaning.
pub const SCHEMA_VERSION: u32 = 1;

/// Why the sources stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    Duration,
    Messages,
    /// Every source reached the end of its input (a file's or stdin's end; a NATS stream
    /// found empty, with `until=empty`).
    Eof,
    Signal,
    Error,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Duration => "duration",
            Self::Messages => "messages",
            Self::Eof => "eof",
            Self::Signal => "signal",
            Self::Error => "error",
        }
    }
}

/// "input 3: /var/log/x.log resuming at byte 120, after line 7", for the header: lines
/// counted from 1, as every other message counts them (`resume.line` lines are done). An
/// input the sink gave no number (0: stdin published to NATS, which keeps no inputs) is
/// "input: stdin from the start".
pub fn start_line(input: &InputStart) -> String {
    let r = &input.resume;
    if r.input == 0 {
        format!("input: {} from the start", input.name)
    } else if r.offset == 0 && r.line == 0 {
        format!("input {}: {} from the start", r.input, input.name)
    } else if r.offset == 0 {
        // Read again from its start (truncated or rewritten since), its lines numbered on.
        format!(
            "input {}: {} from the start, numbering its lines on after line {}",
            r.input, input.name, r.line
        )
    } else {
        format!(
            "input {}: {} resuming at byte {}, after line {}",
            r.input, input.name, r.offset, r.line
        )
    }
}

fn input_json(input: &InputStart) -> serde_json::Value {
    json!({
        "name": input.name,
        "input_id": input.resume.input,
        "resumed_offset": input.resume.offset,
        "resumed_line": input.resume.line,
    })
}

/// The counts of a run's end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fates {
    pub produced: u64,
    /// Counted back from the sink (or, if that failed, what the consumers saw committed).
    pub stored: u64,
    pub duplicates: u64,
    pub dead_lettered: u64,
    pub not_stored: u64,
    /// Of `dead_lettered` and `not_stored`, those given up on after a write whose COMMIT may
    /// have landed.
    pub unconfirmed: u64,
}

/// How many records given up on as unconfirmed the count back found stored after all: each
/// record is counted once among stored, duplicates, dead-lettered and not stored, except such
/// a record, which is also in `stored` (a database's COMMIT is all or nothing: a batch whose
/// reply alone was lost is stored whole). So the counts exceed `produced` by those records;
/// `None` when they exceed it by more than `unconfirmed`, or fall short of it: the counts
/// disagree. Inferred from the counts, not record by record: a record lost some other way
/// would hide one stored after all.
pub fn stored_after_all(f: Fates) -> Option<u64> {
    let counted = f.stored + f.duplicates + f.dead_lettered + f.not_stored;
    let extra = counted.checked_sub(f.produced)?;
    (extra <= f.unconfirmed).then_some(extra)
}

/// The final figures of a run.
#[derive(Debug)]
pub struct Summary {
    pub config: serde_json::Value,
    pub run_id: i64,
    pub db: String,
    pub produced: u64,
    pub consumed: u64,
    /// Counted back from the database; if that failed, what this run's consumers committed
    /// (`stored_counted_back` false).
    pub stored: u64,
    /// Whether `stored` was counted back from the database (or acknowledged by JetStream).
    pub stored_counted_back: bool,
    /// Broker deliveries the database already held (redelivered, or published twice): not
    /// written again.
    pub duplicates: u64,
    /// Written to the dead-letter file instead of the database.
    pub dead_lettered: u64,
    /// Accepted and neither stored nor dead-lettered (the sink failed): 0 unless the run
    /// stopped hard.
    pub not_stored: u64,
    /// Of `not_stored`, those a file input reads again in the next run on this database.
    pub rereadable: u64,
    /// Of `dead_lettered` and `not_stored`, those given up on after a write whose COMMIT may
    /// have landed.
    pub unconfirmed: u64,
    /// Of `unconfirmed`, those the count back found stored after all: counted in `stored` too
    /// (see [`stored_after_all`]). `None` when no count back could tell (a NATS sink, whose
    /// `stored` is what JetStream acknowledged; a count back that failed; counts that disagree).
    pub stored_after_all: Option<u64>,
    /// Writes (and recordings of publishing runs) tried again after a retryable failure.
    pub retries: u64,
    /// `--dead-letter`, if given.
    pub dead_letter: Option<String>,
    pub stop_reason: StopReason,
    pub error: Option<String>,
    /// Start of production to the last commit.
    pub elapsed_s: f64,
    /// Start of production to the moment producers were told to stop (or all finished).
    pub producing_s: f64,
    /// Producers told to stop (or all finished) to every source thread ended: a source may
    /// finish a push, or hand back what a broker already delivered to it.
    pub stopping_s: f64,
    /// Producers stopped to the last commit.
    pub drain_s: f64,
    pub bytes: u64,
    pub target_rps: u64,
    pub latency: Histogram<u64>,
    /// The generator with a rate: how late each message was built after its intended send
    /// time (its share of `latency` before it existed); empty for other runs.
    pub built_late: Histogram<u64>,
    pub commit: Histogram<u64>,
    pub batches: u64,
    pub blocked_s: f64,
    /// What the run cost the machine, from production's start to after the final commit
    /// (Linux; `None` elsewhere).
    pub machine: Option<MachineUse>,
    /// SQLite: its write-ahead log during the run.
    pub wal: Option<Wal>,
    /// Ingest runs: records read (accepted or rejected), bytes read, records rejected, and the
    /// inputs read. `None` for a generated run.
    pub ingest: Option<Ingest>,
    /// The NATS side, when the run published to or read from NATS.
    pub nats: Option<NatsFigures>,
    pub consumers: ConsumerCounts,
    /// `--lanes`: each lane's name and figures, highest first; empty without lanes.
    pub lanes: Vec<(String, LaneFigures)>,
}

/// How many consumers a run had: MIN and MAX as configured (equal unless it scaled), and the
/// most that ran at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsumerCounts {
    pub min: usize,
    pub max: usize,
    pub peak: u64,
    /// The sink connections opened for writing: one per consumer thread where the sink writes
    /// in parallel (opened as consumers start, kept when they retire), else 1.
    pub writers: usize,
}

/// What a run published to, or was delivered from, NATS JetStream.
#[derive(Debug, Clone, Copy, Default)]
pub struct NatsFigures {
    pub published: u64,
    pub publish_duplicates: u64,
    pub delivered: u64,
    pub redelivered: u64,
    pub acked: u64,
    pub nacked: u64,
    /// Progress acknowledgements sent for messages still being worked on.
    pub progress: u64,
}

impl NatsFigures {
    pub fn read(n: &crate::telemetry::NatsStats) -> Self {
        use crate::telemetry::NatsStats as N;
        Self {
            published: N::get(&n.published),
            publish_duplicates: N::get(&n.publish_duplicates),
            delivered: N::get(&n.delivered),
            redelivered: N::get(&n.redelivered),
            acked: N::get(&n.acked),
            nacked: N::get(&n.nacked),
            progress: N::get(&n.progress),
        }
    }
}

/// What SQLite's final checkpoint did with the write-ahead log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalEnd {
    /// Copied it into the database and truncated it.
    Truncated,
    /// Found another connection using it (another pc-host writing the same file, or a
    /// reader): that connection's checkpoints copy it in.
    LeftToOthers,
    /// Failed (or was not reached): the `-wal` file holds committed rows.
    Failed,
}

/// SQLite's write-ahead log in a run.
#[derive(Debug)]
pub struct Wal {
    /// The largest WAL the checkpointer saw.
    pub max_bytes: u64,
    /// Checkpoint passes that held the writer's lock (commits waited), and the longest (ns).
    pub writer_holds: u64,
    pub writer_held_max_ns: u64,
    /// What the final checkpoint did with the WAL.
    pub end: WalEnd,
    /// The database's page size, in bytes.
    pub page_size: u64,
}

/// What an ingest run read.
#[derive(Debug)]
pub struct Ingest {
    pub read: u64,
    pub read_bytes: u64,
    pub rejected: u64,
    /// Of them, those written to the dead-letter file (all of them unless writing it failed).
    pub rejected_dead_lettered: u64,
    /// Read from stdin, never queued (the run stopped on an error first); of them, those in
    /// the dead-letter file.
    pub not_queued: u64,
    pub not_queued_dead_lettered: u64,
    /// Read from files or taken from NATS, never queued (the run stopped first): read again by
    /// the next run, or delivered again by JetStream.
    pub not_queued_rereadable: u64,
    /// Of those produced, read from stdin ahead of the rate and queued at the stop without
    /// waiting for it (0 without a rate).
    pub unpaced: u64,
    pub inputs: Vec<InputStart>,
    /// The warnings naming lines that files read before at an input's path hold, or may hold
    /// (a file gone, or one no birth time identifies), and no run read; as logged.
    pub unread_elsewhere: Vec<String>,
}

impl Summary {
    /// Every accepted message was consumed and is in the database or the dead-letter file,
    /// and nothing failed.
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && self.not_stored == 0
            && self.ingest.as_ref().is_none_or(|i| i.not_queued == 0)
            && self.produced == self.consumed
            && self.consumed == self.stored + self.duplicates + self.dead_lettered
    }

    /// OK; FAILED when something failed but every record is accounted for (stored,
    /// dead-lettered or counted as not stored, those stored after all counted once); MISMATCH
    /// when the counts disagree.
    pub fn result(&self) -> &'static str {
        if self.ok() {
            "OK"
        } else if self.produced == self.consumed
            && self.produced + self.stored_after_all.unwrap_or(0)
                == self.stored + self.duplicates + self.dead_lettered + self.not_stored
        {
            "FAILED"
        } else {
            "MISMATCH"
        }
    }

    /// The run read from NATS (and published nothing there).
    fn read_from_nats(&self) -> bool {
        self.nats.is_some_and(|n| n.published == 0)
            && self
                .ingest
                .as_ref()
                .is_some_and(|i| i.inputs.iter().any(|input| input.name.starts_with("nats:")))
    }

    /// What becomes of this run's records that can be read again: a NATS source runs alone,
    /// so a run has either NATS deliveries or file inputs, not both.
    fn read_again(&self) -> &'static str {
        if self.read_from_nats() {
            "handed back to JetStream, which delivers them again"
        } else {
            "read again by the next run on this database"
        }
    }

    fn per_s(&self, n: u64) -> f64 {
        if self.elapsed_s > 0.0 {
            n as f64 / self.elapsed_s
        } else {
            0.0
        }
    }

    /// Records pushed at the rate per second of producing: those a stop pushed without
    /// waiting for the rate are left out.
    fn achieved_rps(&self) -> f64 {
        if self.producing_s > 0.0 {
            self.produced.saturating_sub(self.unpaced()) as f64 / self.producing_s
        } else {
            0.0
        }
    }

    fn unpaced(&self) -> u64 {
        self.ingest.as_ref().map_or(0, |i| i.unpaced)
    }

    fn quantiles(h: &Histogram<u64>) -> [u64; 5] {
        if h.is_empty() {
            return [0; 5];
        }
        [
            h.value_at_quantile(0.50),
            h.value_at_quantile(0.90),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
        ]
    }

    /// The human-readable summary (for stdout).
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "pc-host summary: run {} in {}", self.run_id, self.db);
        self.ingest_text(&mut s);
        self.counts_text(&mut s);
        self.timing_text(&mut s);
        self.latency_text(&mut s);
        self.batches_text(&mut s);
        self.lanes_text(&mut s);
        self.waits_text(&mut s);
        if let Some(m) = &self.machine {
            self.machine_text(m, &mut s);
        }
        self.wal_text(&mut s);
        s
    }

    /// The `read`, `rejected` and `not queued` lines of a run that read its input.
    fn ingest_text(&self, s: &mut String) {
        let Some(ingest) = &self.ingest else {
            return;
        };
        let _ = writeln!(
            s,
            "  read          {}, {} bytes from {}",
            plural(usize::try_from(ingest.read).unwrap_or(usize::MAX), "record"),
            ingest.read_bytes,
            if self.read_from_nats() {
                "NATS".to_string()
            } else {
                plural(ingest.inputs.len(), "input")
            }
        );
        if !ingest.unread_elsewhere.is_empty() {
            let _ = writeln!(
                s,
                "  unread        {} about lines that files read before at an input's path \
                 hold, or may hold, and no run read: see the WARN lines on stderr",
                plural(ingest.unread_elsewhere.len(), "warning")
            );
        }
        let _ = writeln!(
            s,
            "  rejected      {} (could not be stored: invalid text or JSON, or too long{})",
            ingest.rejected,
            self.rejected_where(ingest)
        );
        if ingest.not_queued > 0 {
            let lost = ingest.not_queued - ingest.not_queued_dead_lettered;
            let _ = writeln!(
                s,
                "  not queued    {} read from stdin as the run stopped on an error: {} in the \
                 dead-letter file, {lost} lost{}",
                ingest.not_queued,
                ingest.not_queued_dead_lettered,
                if lost > 0 && self.dead_letter.is_none() {
                    " (--dead-letter FILE would have kept them)"
                } else {
                    ""
                }
            );
        }
        if ingest.not_queued_rereadable > 0 {
            // A file's may include its last line without its end; a stream has no lines.
            let what = if self.read_from_nats() {
                "received as the run stopped"
            } else {
                "read as the run stopped, or a last line without its end left for a later run"
            };
            let _ = writeln!(
                s,
                "  not queued    {} {what}: {}, none lost",
                ingest.not_queued_rereadable,
                self.read_again()
            );
        }
    }

    /// The counts (`produced` .. `stored`, then each fate), the result and why the run stopped.
    fn counts_text(&self, s: &mut String) {
        let _ = writeln!(s, "  produced      {}", self.produced);
        let _ = writeln!(s, "  consumed      {}", self.consumed);
        let counted = if !self.stored_counted_back {
            "committed by this run: counting back from the database failed"
        } else if self.db.starts_with("nats://") {
            "acknowledged by JetStream"
        } else {
            "counted back from the database"
        };
        let _ = writeln!(s, "  stored        {} ({counted})", self.stored);
        self.fates_text(s);
        let _ = writeln!(s, "  result        {}", self.result());
        if let Some(e) = &self.error {
            let _ = writeln!(s, "  error         {e}");
        }
        let _ = writeln!(s, "  stopped by    {}", self.stop_reason.as_str());
    }

    /// The `elapsed`, `throughput` and `rate` lines.
    fn timing_text(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "  elapsed       {:.3} s (producing {:.3} s, {}drain after producers stopped {:.3} s)",
            self.elapsed_s,
            self.producing_s,
            if self.stopping_s >= 0.001 {
                format!("stopping the sources {:.3} s, ", self.stopping_s)
            } else {
                String::new()
            },
            self.drain_s
        );
        let _ = writeln!(
            s,
            "  throughput    {:.1} msg/s stored, {:.3} MB/s of message text",
            self.per_s(self.stored),
            self.per_s(self.bytes) / 1e6
        );
        let achieved = self.achieved_rps();
        if self.target_rps == 0 {
            let _ = writeln!(
                s,
                "  rate          target unlimited, achieved {achieved:.1} msg/s"
            );
        } else {
            let dev = (achieved / self.target_rps as f64 - 1.0) * 100.0;
            let _ = writeln!(
                s,
                "  rate          target {} msg/s, achieved {achieved:.1} msg/s ({dev:+.2}%)",
                self.target_rps
            );
            if self.unpaced() > 0 {
                let _ = writeln!(
                    s,
                    "                and {} read from stdin ahead of the rate, queued at the \
                     stop without waiting for it",
                    plural(self.unpaced() as usize, "record")
                );
            }
        }
    }

    /// The `latency` line: what was measured, over which span, and what it means unthrottled.
    fn latency_text(&self, s: &mut String) {
        let [p50, p90, p99, p999, max] = Self::quantiles(&self.latency);
        // A NATS source's records carry their publisher's creation time (README, NATS).
        let from_nats = self.read_from_nats();
        let span = match (
            self.ingest.is_some(),
            self.dead_lettered + self.not_stored > 0,
        ) {
            // A backlog older than the run is counted from the run's start.
            (true, false) if from_nats => {
                "created by the publisher, or the run's start if later -> batch committed"
            }
            (true, true) if from_nats => {
                "created by the publisher, or the run's start if later -> batch committed or \
                 given up"
            }
            (true, false) => "read -> batch committed",
            (true, true) => "read -> batch committed or given up",
            (false, false) => "intended send -> batch committed",
            (false, true) => "intended send -> batch committed or given up",
        };
        if self.latency.is_empty() {
            let _ = writeln!(s, "  latency (ms)  n/a (no messages measured; {span})");
        } else {
            let _ = writeln!(
                s,
                "  latency (ms)  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({}; {span})",
                ms(p50),
                ms(p90),
                ms(p99),
                ms(p999),
                ms(max),
                plural(self.latency.len() as usize, "message"),
            );
            if self.target_rps == 0 {
                // The generator unthrottled pushes as fast as the ring takes; a read source
                // (stdin, files, NATS) delivers as fast as its input comes, which can be slowly.
                let why = if self.ingest.is_some() {
                    "unthrottled: records are taken as fast as they are read, so latency is time \
                     queued whenever they come faster than the sink stores them"
                } else {
                    "unthrottled: latency is time queued (records arrive faster than the sink \
                     stores them)"
                };
                let _ = writeln!(s, "                {why}; give --rps for latency at a rate");
            }
        }
    }

    /// The `built late` and `batches` lines.
    fn batches_text(&self, s: &mut String) {
        if !self.built_late.is_empty() {
            let [l50, _, l99, _, lmax] = Self::quantiles(&self.built_late);
            let _ = writeln!(
                s,
                "  built late    p50 {}  p99 {}  max {}  (ms from the intended send to the \
                 message being built: its producer waking up, or held up by a busy or stalled \
                 machine or a full ring)",
                ms(l50),
                ms(l99),
                ms(lmax),
            );
        }
        let [c50, _, c99, _, cmax] = Self::quantiles(&self.commit);
        let rows = if self.batches > 0 {
            self.stored as f64 / self.batches as f64
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "  batches       {}, {rows:.1} rows each on average; insert+commit (ms) p50 {}  p99 {}  max {}",
            plural(self.batches as usize, "transaction"),
            ms(c50),
            ms(c99),
            ms(cmax)
        );
    }

    /// How long the sources waited on a full ring, and how many consumers ran (and how they
    /// scaled).
    fn waits_text(&self, s: &mut String) {
        // Generator threads are the producers; in an ingest run, the inputs' readers are.
        let who = if self.ingest.is_some() {
            "sources  "
        } else {
            "producers"
        };
        let _ = writeln!(
            s,
            "  {who}     waited on a full ring for {:.3} s (summed over {})",
            self.blocked_s,
            who.trim_end()
        );
        let c = self.consumers;
        if c.max > c.min {
            let writers = format!(", {} opened", plural(c.writers, "sink connection"));
            let _ = writeln!(
                s,
                "  consumers     scaled within {}..{}, at most {} at once{writers}",
                c.min, c.max, c.peak
            );
        } else {
            let _ = writeln!(s, "  consumers     {}", c.max);
        }
    }

    /// The `WAL` and `checkpoints` lines of a SQLite run.
    fn wal_text(&self, s: &mut String) {
        let Some(wal) = &self.wal else {
            return;
        };
        let _ = writeln!(
            s,
            "  WAL           at most {:.1} MiB during the run ({})",
            wal.max_bytes as f64 / f64::from(1 << 20),
            match wal.end {
                WalEnd::Truncated => "truncated at the end",
                WalEnd::LeftToOthers => {
                    "left at the end to another connection using the database, whose \
                     checkpoints copy it in"
                }
                WalEnd::Failed => {
                    "the final checkpoint failed: the -wal file holds committed rows; SQLite \
                     folds it in when the database is next opened"
                }
            }
        );
        if wal.writer_holds > 0 {
            let _ = writeln!(
                s,
                "  checkpoints   held commits up {} to restart the WAL, the longest {:.3} ms",
                plural(wal.writer_holds as usize, "time"),
                wal.writer_held_max_ns as f64 / 1e6
            );
        }
    }

    /// The `cpu` and `storage` lines: what the run cost this process and the machine.
    fn machine_text(&self, m: &MachineUse, s: &mut String) {
        s.push_str(&cpu_line(m));
        // Only SQLite's writes are this process's own.
        let per_record = if self.wal.is_none() {
            " (a server sink's writes are the server's, not counted here)".to_string()
        } else if self.stored > 0 {
            format!(
                " ({:.1} KiB per record stored)",
                m.written_bytes as f64 / 1024.0 / self.stored as f64
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "  storage       {:.1} MiB written by this process{per_record}",
            m.written_bytes as f64 / f64::from(1 << 20)
        );
        let adaptive = self.config["batch_wait_fixed"].as_bool() == Some(false);
        s.push_str(steal_hint(m, self.wal.is_some() && adaptive));
    }

    /// The lines for records not stored in the database, and retries, when there were any.
    fn fates_text(&self, s: &mut String) {
        if let Some(path) = &self.dead_letter {
            // The file also holds the rejected lines, counted on the `rejected` line.
            let also = match self.ingest.as_ref().map_or(0, |i| i.rejected_dead_lettered) {
                0 => String::new(),
                n => format!("; it also holds the {n} rejected"),
            };
            let _ = writeln!(
                s,
                "  dead-lettered {} (records the sink did not store, written to {path}{also})",
                self.dead_lettered
            );
        }
        if self.not_stored > 0 {
            let lost = self.not_stored - self.rereadable;
            // Only where there were some: a generated or stdin run has none to read again.
            let reread = match (self.rereadable, self.read_from_nats()) {
                (0, _) => String::new(),
                (n, true) => format!("{n} {}; ", self.read_again()),
                (n, false) => format!("{n} from file inputs are {}; ", self.read_again()),
            };
            let _ = writeln!(
                s,
                "  not stored    {} accepted messages: {reread}{lost} are lost{}",
                self.not_stored,
                if lost > 0 && self.dead_letter.is_none() {
                    " (--dead-letter FILE would have kept them)"
                } else {
                    ""
                }
            );
        }
        if self.unconfirmed > 0 {
            let _ = writeln!(
                s,
                "{}",
                unconfirmed_line(self.unconfirmed, self.stored_after_all)
            );
        }
        if self.retries > 0 {
            let _ = writeln!(
                s,
                "  retries       {} (writes and recordings tried again)",
                self.retries
            );
        }
        if self.duplicates > 0 {
            let _ = writeln!(
                s,
                "  duplicates    {} delivered again and already stored: dropped (exactly once)",
                self.duplicates
            );
        }
        if let Some(n) = &self.nats {
            if n.published > 0 || self.ingest.is_none() {
                let _ = writeln!(
                    s,
                    "  NATS          published {} (acknowledged by JetStream; {} of them retries \
                     it dropped as duplicates)",
                    n.published, n.publish_duplicates
                );
            }
            if n.delivered > 0 || !self.db.starts_with("nats://") {
                let _ = writeln!(
                    s,
                    "  NATS          delivered {} ({} redelivered), acked {}, handed back {}{}",
                    n.delivered,
                    n.redelivered,
                    n.acked,
                    n.nacked,
                    if n.progress > 0 {
                        format!("; {} progress acks sent for held messages", n.progress)
                    } else {
                        String::new()
                    }
                );
            }
        }
    }

    /// One line per lane: its counts and latency.
    fn lanes_text(&self, s: &mut String) {
        for (name, lane) in &self.lanes {
            let [p50, _, p99, _, max] = Self::quantiles(&lane.latency);
            let latency = if lane.latency.is_empty() {
                "n/a".to_string()
            } else {
                format!("p50 {}  p99 {}  max {}", ms(p50), ms(p99), ms(max))
            };
            let _ = write!(
                s,
                "  lane {name:<8} produced {}, stored {}; latency (ms) {latency}",
                lane.produced, lane.stored,
            );
            for (n, what) in [
                (lane.duplicates, "duplicates"),
                (lane.dead_lettered, "dead-lettered"),
                (lane.not_stored, "not stored"),
            ] {
                if n > 0 {
                    let _ = write!(s, "; {what} {n}");
                }
            }
            s.push('\n');
        }
    }

    /// Where the rejected records are, for the `rejected` line (nothing when none were): in
    /// the dead-letter file, or, when the run stopped (on an error: writing that file, reading
    /// an input) before writing them all, how many of them are.
    fn rejected_where(&self, ingest: &Ingest) -> String {
        match self.dead_letter {
            None => String::new(),
            Some(_) if ingest.rejected == 0 => String::new(),
            Some(_) if ingest.rejected_dead_lettered == ingest.rejected => {
                "; in the dead-letter file".into()
            }
            Some(_) => format!(
                "; {} of them in the dead-letter file: the run stopped before writing the rest",
                ingest.rejected_dead_lettered
            ),
        }
    }

    /// The `--output json` object. The top-level keys named in the README are a contract.
    pub fn json(&self) -> serde_json::Value {
        let mut v = self.json_without_lanes();
        // Set apart: one `json!` that large passes the macro's recursion limit.
        v["stopping_s"] = self.stopping_s.into();
        let not_queued = self.ingest.as_ref().map_or((0, 0, 0), |i| {
            (
                i.not_queued,
                i.not_queued_dead_lettered,
                i.not_queued_rereadable,
            )
        });
        v["not_queued"] = not_queued.0.into();
        v["not_queued_dead_lettered"] = not_queued.1.into();
        v["rejected_dead_lettered"] = self
            .ingest
            .as_ref()
            .map_or(0, |i| i.rejected_dead_lettered)
            .into();
        v["not_queued_rereadable"] = not_queued.2.into();
        v["unpaced"] = self.unpaced().into();
        v["unconfirmed"] = self.unconfirmed.into();
        v["stored_after_all"] = self.stored_after_all.into();
        v["unread_elsewhere"] = self
            .ingest
            .as_ref()
            .map(|i| i.unread_elsewhere.clone())
            .into();
        if !self.lanes.is_empty() {
            let lanes: serde_json::Map<String, serde_json::Value> = self
                .lanes
                .iter()
                .map(|(name, lane)| (name.clone(), lane_json(lane)))
                .collect();
            v["lanes"] = lanes.into();
        }
        v
    }

    fn json_without_lanes(&self) -> serde_json::Value {
        let [p50, p90, p99, p999, max] = Self::quantiles(&self.latency);
        let [c50, _, c99, _, cmax] = Self::quantiles(&self.commit);
        json!({
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "db": self.db,
            "config": self.config,
            "produced": self.produced,
            "consumed": self.consumed,
            "stored": self.stored,
            // A NATS sink counts back nothing: its `stored` is what JetStream acknowledged.
            "stored_counted_back": (!self.db.starts_with("nats://")).then_some(self.stored_counted_back),
            "dead_lettered": self.dead_lettered,
            "duplicates": self.duplicates,
            "nats": self.nats.map(|n| json!({
                "published": n.published,
                "publish_duplicates": n.publish_duplicates,
                "delivered": n.delivered,
                "redelivered": n.redelivered,
                "acked": n.acked,
                "nacked": n.nacked,
                "progress": n.progress,
            })),
            "not_stored": self.not_stored,
            "not_stored_rereadable": self.rereadable,
            "retries": self.retries,
            "ok": self.ok(),
            "result": self.result(),
            "error": self.error,
            "stop_reason": self.stop_reason.as_str(),
            "elapsed_s": self.elapsed_s,
            "producing_s": self.producing_s,
            "drain_s": self.drain_s,
            "throughput_msgs_per_s": self.per_s(self.stored),
            "throughput_mb_per_s": self.per_s(self.bytes) / 1e6,
            "target_rps": self.target_rps,
            "achieved_rps": self.achieved_rps(),
            "latency_ns": {
                "p50": p50, "p90": p90, "p99": p99, "p999": p999, "max": max,
                "mean": if self.latency.is_empty() { 0.0 } else { self.latency.mean() },
                "count": self.latency.len(),
            },
            "built_late_ns": (!self.built_late.is_empty()).then(|| {
                let [l50, l90, l99, l999, lmax] = Self::quantiles(&self.built_late);
                json!({
                    "p50": l50, "p90": l90, "p99": l99, "p999": l999, "max": lmax,
                    "count": self.built_late.len(),
                })
            }),
            "batches": self.batches,
            "commit_ns": { "p50": c50, "p99": c99, "max": cmax },
            "blocked_s": self.blocked_s,
            "consumers": {
                "min": self.consumers.min,
                "max": self.consumers.max,
                "peak": self.consumers.peak,
                "writers": self.consumers.writers,
            },
            "machine": self.machine.map(|m| json!({
                "wall_s": m.wall_s,
                "user_s": m.user_s,
                "system_s": m.system_s,
                "steal_s": m.steal_s,
                "cpus": m.cpus,
                "written_bytes": m.written_bytes,
            })),
            "page_size": self.wal.as_ref().map(|w| w.page_size),
            "wal_max_bytes": self.wal.as_ref().map(|w| w.max_bytes),
            "wal_truncated": self.wal.as_ref().map(|w| w.end == WalEnd::Truncated),
            "wal_writer_holds": self.wal.as_ref().map(|w| w.writer_holds),
            "wal_writer_held_max_ns": self.wal.as_ref().map(|w| w.writer_held_max_ns),
            "read": self.ingest.as_ref().map(|i| i.read),
            "read_bytes": self.ingest.as_ref().map(|i| i.read_bytes),
            "rejected": self.ingest.as_ref().map_or(0, |i| i.rejected),
            "inputs": self.ingest.as_ref().map(|i| i.inputs.iter().map(input_json).collect::<Vec<_>>()),
        })
    }
}

/// A lane's `--output json` object.
fn lane_json(lane: &LaneFigures) -> serde_json::Value {
    let [p50, _, p99, _, max] = Summary::quantiles(&lane.latency);
    json!({
        "produced": lane.produced,
        "stored": lane.stored,
        "duplicates": lane.duplicates,
        "dead_lettered": lane.dead_lettered,
        "not_stored": lane.not_stored,
        "latency_ns": { "p50": p50, "p99": p99, "max": max, "count": lane.latency.len() },
    })
}

/// "1 input", "2 inputs" (any unsigned count).
pub fn plural<N: std::fmt::Display + PartialEq + From<u8>>(n: N, what: &str) -> String {
    if n == N::from(1) {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The line under `cpu` for an SQLite run with adaptive batches (`adaptive_sqlite`) from which
/// the hypervisor took 3% or more of the machine's CPU time: where the host steals in
/// proportion to the guest's disk writes, fewer commits spare it (README, "Latency"). Empty
/// otherwise.
fn steal_hint(m: &MachineUse, adaptive_sqlite: bool) -> &'static str {
    if adaptive_sqlite && m.steal_share() >= 0.03 {
        "                the hypervisor took 3% or more of the CPU time: where it charges the VM \
         for its disk writes, --batch-wait-ms 0.5 or 1 commits less often (README, \"Latency\")\n"
    } else {
        ""
    }
}

/// The `cpu` line: this process's CPU time, its share of the machine, and the steal.
fn cpu_line(m: &MachineUse) -> String {
    let busy = if m.wall_s > 0.0 {
        (m.user_s + m.system_s) / m.wall_s
    } else {
        0.0
    };
    // A short run's times in milliseconds, so they do not read 0.00 beside a busy share.
    let decimals = if m.user_s + m.system_s < 0.1 { 3 } else { 2 };
    format!(
        "  cpu           {:.decimals$} s user + {:.decimals$} s system ({busy:.2} of {} CPUs on \
         average); steal {:.2} s ({:.1}% of the machine's CPU time, taken by the hypervisor)\n",
        m.user_s,
        m.system_s,
        m.cpus,
        m.steal_s,
        100.0 * m.steal_share()
    )
}

/// The summary's `unconfirmed` line: `n` records given up on after a write that may have
/// landed, and how many of them the count back found stored (`None`: it cannot tell).
fn unconfirmed_line(n: u64, stored_after_all: Option<u64>) -> String {
    let known = match stored_after_all {
        Some(k) => format!(
            "the count back found {k} of them stored after all (in stored as well; a file input \
             does not read those again) and {} not",
            n.saturating_sub(k)
        ),
        None => "no count back can tell whether they are stored".into(),
    };
    format!(
        "  unconfirmed   {n} of the dead-lettered and not stored were given up on after a \
         write that may have landed (a COMMIT whose reply was lost, a publish never acked): \
         {known}"
    )
}

#[cfg(test)]
mod tests {
    use super::{Fates, cpu_line, start_line, steal_hint, stored_after_all, unconfirmed_line};
    use crate::position::{InputStart, Resume};
    use crate::telemetry::machine::MachineUse;

    fn fates(stored: u64, dead_lettered: u64, not_stored: u64, unconfirmed: u64) -> Fates {
        Fates {
            produced: 100,
            stored,
            duplicates: 5,
            dead_lettered,
            not_stored,
            unconfirmed,
        }
    }

    #[test]
    fn an_input_the_sink_did_not_number_is_not_called_input_0() {
        let input = |input, offset, line| InputStart {
            name: "stdin".into(),
            resume: Resume {
                input,
                offset,
                line,
                ..Resume::default()
            },
        };
        assert_eq!(start_line(&input(0, 0, 0)), "input: stdin from the start");
        assert_eq!(start_line(&input(2, 0, 0)), "input 2: stdin from the start");
        assert_eq!(
            start_line(&input(3, 120, 7)),
            "input 3: stdin resuming at byte 120, after line 7"
        );
    }

    #[test]
    fn counts_that_add_up_leave_nothing_stored_after_all() {
        assert_eq!(stored_after_all(fates(80, 10, 5, 0)), Some(0));
        assert_eq!(stored_after_all(fates(80, 10, 5, 10)), Some(0));
    }

    #[test]
    fn unconfirmed_records_found_stored_are_the_counts_excess() {
        // 10 unconfirmed dead-lettered, 7 of them counted back as stored.
        assert_eq!(stored_after_all(fates(87, 10, 5, 10)), Some(7));
        assert_eq!(stored_after_all(fates(90, 10, 5, 10)), Some(10));
        // Unconfirmed among the not stored (no dead-letter file) likewise.
        assert_eq!(stored_after_all(fates(88, 0, 15, 15)), Some(8));
    }

    #[test]
    fn the_unconfirmed_line_says_how_many_were_found_stored_and_how_many_not() {
        assert_eq!(
            unconfirmed_line(10, Some(7)),
            "  unconfirmed   10 of the dead-lettered and not stored were given up on after a \
             write that may have landed (a COMMIT whose reply was lost, a publish never acked): the count back \
             found 7 of them stored after all (in stored as well; a file input does not read \
             those again) and 3 not"
        );
        assert!(
            unconfirmed_line(4, None).ends_with(": no count back can tell whether they are stored")
        );
    }

    #[test]
    fn an_excess_beyond_the_unconfirmed_or_a_shortfall_is_a_mismatch() {
        assert_eq!(stored_after_all(fates(91, 10, 5, 10)), None);
        assert_eq!(stored_after_all(fates(81, 10, 5, 0)), None);
        assert_eq!(stored_after_all(fates(79, 10, 5, 10)), None);
    }

    #[test]
    fn a_short_runs_cpu_times_are_in_milliseconds_not_zero() {
        let short = MachineUse {
            wall_s: 0.01,
            user_s: 0.004,
            system_s: 0.003,
            steal_s: 0.0,
            cpus: 2,
            written_bytes: 0,
        };
        let line = cpu_line(&short);
        assert!(
            line.contains("0.004 s user + 0.003 s system (0.70 of 2 CPUs"),
            "{line}"
        );
        let long = MachineUse {
            wall_s: 10.0,
            user_s: 1.234,
            system_s: 0.5,
            ..short
        };
        let line = cpu_line(&long);
        assert!(
            line.contains("1.23 s user + 0.50 s system (0.17 of 2 CPUs"),
            "{line}"
        );
    }

    #[test]
    fn steal_of_3_percent_or_more_in_an_adaptive_sqlite_run_points_at_batch_wait() {
        let run = |steal_s| MachineUse {
            wall_s: 5.0,
            user_s: 1.8,
            system_s: 3.7,
            steal_s,
            cpus: 2,
            written_bytes: 0,
        };
        assert!(steal_hint(&run(0.6), true).contains("--batch-wait-ms 0.5 or 1"));
        assert_eq!(steal_hint(&run(0.2), true), "", "2% of 10 CPU-seconds");
        assert_eq!(
            steal_hint(&run(0.6), false),
            "",
            "a server sink, or a fixed wait"
        );
    }
}
