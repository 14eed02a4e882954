//! Group commit's decisions, against a scripted sink (the SQLite sink itself is tested with
//! real faults in `host/tests/faults.rs`).

use std::collections::VecDeque;

use anyhow::anyhow;

use super::*;

/// A sink that answers each write from a script (then `Ok`), refuses any write holding a
/// record whose text is "poison", and keeps the seqs of what it committed.
#[derive(Debug, Default)]
struct Scripted {
    script: VecDeque<ErrorKind>,
    committed: Vec<u64>,
    writes: usize,
    /// A dead-letter file to look at: for each committed write, its first seq and how many
    /// entries the file held then.
    watch: Option<std::path::PathBuf>,
    seen: Vec<(u64, usize)>,
    /// Scripted failures leave their outcome unknown (as a broker's lost ack does).
    unconfirmed: bool,
    /// Scripted failures first store this many of the write's records (as a broker
    /// acknowledges the first publishes of a batch before one fails).
    stores_first: usize,
    /// The group commit's health, if set: what it says (`retrying`) at each write.
    health: Option<Arc<Health>>,
    retrying_seen: Vec<Option<String>>,
}

impl Sink for Scripted {
    fn write(&mut self, records: &[&Record]) -> Result<(), SinkError> {
        self.writes += 1;
        if let Some(health) = &self.health {
            self.retrying_seen.push(health.retrying());
        }
        if let Some(kind) = self.script.pop_front() {
            let stored = self.stores_first.min(records.len());
            self.committed
                .extend(records[..stored].iter().map(|r| r.seq));
            let why = anyhow!("scripted {} (write {})", kind.as_str(), self.writes);
            let error = SinkError::new(kind, why).after_storing(stored);
            return Err(if self.unconfirmed {
                error.unconfirmed()
            } else {
                error
            });
        }
        if records.iter().any(|r| r.text == "poison") {
            return Err(SinkError::new(ErrorKind::Record, anyhow!("CHECK failed")));
        }
        self.committed.extend(records.iter().map(|r| r.seq));
        if let Some(path) = &self.watch {
            let entries = std::fs::read_to_string(path).map_or(0, |t| t.lines().count());
            self.seen.push((records[0].seq, entries));
        }
        Ok(())
    }

    fn register(&mut self, _: Option<&FileKey>) -> Result<Resume, SinkError> {
        Ok(Resume::default())
    }

    fn commit_position(&mut self, _: Resume) -> anyhow::Result<()> {
        Ok(())
    }

    fn count_stored(&mut self) -> anyhow::Result<u64> {
        Ok(self.committed.len() as u64)
    }

    fn finish_run(&mut self, _: &crate::sink::RunEnd<'_>) -> Result<(), SinkError> {
        Ok(())
    }
}

fn record(seq: u64, text: &str, end_offset: u64) -> Record {
    Record {
        producer: 1,
        seq,
        end_offset,
        text: text.into(),
        ..Record::default()
    }
}

fn sink(script: &[ErrorKind], policy: Policy, batch_size: usize) -> GroupCommit<Scripted> {
    let writer = Scripted {
        script: script.iter().copied().collect(),
        ..Scripted::default()
    };
    GroupCommit::new(vec![writer], batch_size, policy)
}

/// Hands over one batch per item of `batches` and settles them: the fates, in order, with
/// the seqs each covers.
fn commit_all(g: &GroupCommit<Scripted>, batches: Vec<Vec<Record>>) -> Vec<(Fate, Vec<u64>)> {
    for b in batches {
        g.hand_over(Vec::new(), |into| into.extend(b));
    }
    let mut fates = Vec::new();
    g.commit_pending(&Clock::new(), |s| {
        fates.push((s.fate, s.records.iter().map(|r| r.seq).collect()));
    });
    fates
}

fn temp_dead_letters(name: &str) -> (Arc<DeadLetters>, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("pc-gc-{name}-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    (Arc::new(DeadLetters::new(&path, false, 1)), path)
}

#[test]
fn after_a_failed_commit_nothing_later_is_committed() {
    let g = sink(&[ErrorKind::Fatal], Policy::default(), 1);
    // One row per transaction: the first (line 0) fails for good.
    let fates = commit_all(&g, vec![vec![record(0, "a", 2)], vec![record(1, "b", 4)]]);
    let lost = Fate::NotStored { rereadable: true };
    assert_eq!(fates, [(lost, vec![0]), (lost, vec![1])]);
    assert!(g.has_failed());
    // Line 1 never reached the sink: committing it would move the file's position past line 0.
    let w = g.into_writer();
    assert_eq!((w.writes, w.committed.len()), (1, 0));
}

#[test]
fn a_retryable_failure_is_retried_and_the_batch_committed_once() {
    let policy = Policy {
        retry_for: Duration::from_secs(60),
        ..Policy::default()
    };
    let g = sink(&[ErrorKind::Retryable, ErrorKind::Retryable], policy, 10);
    let fates = commit_all(&g, vec![vec![record(0, "a", 0), record(1, "b", 0)]]);
    assert_eq!(fates, [(Fate::Committed, vec![0, 1])]);
    assert_eq!(g.health().retries(), 2);
    assert!(!g.has_failed() && g.health().retrying().is_none());
    assert_eq!(g.into_writer().committed, [0, 1]);
}

#[test]
fn a_retry_that_fails_differently_is_what_the_health_says_next() {
    let policy = Policy {
        retry_for: Duration::from_secs(60),
        ..Policy::default()
    };
    let mut g = sink(&[ErrorKind::Retryable, ErrorKind::Retryable], policy, 10);
    let health = Arc::clone(g.health());
    g.writers[0]
        .get_mut()
        .expect("set")
        .get_mut()
        .unwrap()
        .health = Some(health);
    let fates = commit_all(&g, vec![vec![record(0, "a", 0)]]);
    assert_eq!(fates, [(Fate::Committed, vec![0])]);
    let seen = g.into_writer().retrying_seen;
    let retryable = "scripted retryable";
    assert_eq!(
        seen,
        [
            None,
            Some(format!("{retryable} (write 1)")),
            Some(format!("{retryable} (write 2)")),
        ],
        "each retry says the error the one before it failed with"
    );
}

/// Commits one batch of seqs 0..5 through a sink whose one scripted retryable failure first
/// stores records 0 and 1 (as a broker acknowledges a batch's first publishes); the fates,
/// and the group commit.
fn commit_five_failing_after_two(policy: Policy) -> (Vec<(Fate, Vec<u64>)>, GroupCommit<Scripted>) {
    let mut g = sink(&[ErrorKind::Retryable], policy, 10);
    let writer = g.writers[0].get_mut().expect("set").get_mut();
    writer.expect("not poisoned").stores_first = 2;
    let batch = (0..5).map(|i| record(i, "m", 0)).collect();
    (commit_all(&g, vec![batch]), g)
}

/// A sink that stored the first records of a failed write (a broker's acknowledged
/// publishes): the retry writes only the rest, so each record is committed once.
#[test]
fn a_write_that_stored_its_first_records_before_failing_is_retried_from_the_rest() {
    let (fates, g) = commit_five_failing_after_two(Policy {
        retry_for: Duration::from_secs(60),
        ..Policy::default()
    });
    assert_eq!(fates, [(Fate::Committed, vec![0, 1, 2, 3, 4])]);
    let w = g.into_writer();
    assert_eq!((w.writes, w.committed), (2, vec![0, 1, 2, 3, 4]));
}

/// When its retries run out, what the sink stored counts as committed and only the rest is
/// given up.
#[test]
fn exhausted_retries_give_up_only_what_the_sink_did_not_store() {
    let (fates, g) = commit_five_failing_after_two(Policy {
        retry_for: Duration::ZERO,
        generated: true,
        ..Policy::default()
    });
    let lost = Fate::NotStored { rereadable: false };
    assert_eq!(
        fates,
        [(Fate::Committed, vec![0, 1]), (lost, vec![2, 3, 4])]
    );
    assert!(g.has_failed());
    assert_eq!(g.into_writer().committed, [0, 1]);
}

#[test]
fn exhausted_retries_dead_letter_generated_records_and_fail_the_sink() {
    let (dead, path) = temp_dead_letters("exhausted");
    let policy = Policy {
        retry_for: Duration::ZERO,
        dead_letters: Some(dead),
        generated: true,
    };
    let g = sink(&[ErrorKind::Retryable], policy, 10);
    let fates = commit_all(&g, vec![vec![record(0, "a", 0), record(1, "b", 0)]]);
    assert_eq!(fates, [(Fate::DeadLettered, vec![0, 1])]);
    assert!(g.has_failed());
    assert!(
        g.health()
            .failure()
            .unwrap()
            .contains("gave up at once (retries are off")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.contains("\"reason\":\"retries_exhausted\""), "{text}");
    std::fs::remove_file(&path).unwrap();
}

/// Records whose write may have reached the sink (a broker's lost ack) are dead-lettered as
/// `unconfirmed`, not as `retries_exhausted`: a replay could store them twice.
#[test]
fn exhausted_retries_of_an_unconfirmed_write_dead_letter_as_unconfirmed() {
    let (dead, path) = temp_dead_letters("unconfirmed");
    let policy = Policy {
        retry_for: Duration::ZERO,
        dead_letters: Some(dead),
        generated: true,
    };
    let writer = Scripted {
        script: [ErrorKind::Retryable].into(),
        unconfirmed: true,
        ..Scripted::default()
    };
    let g = GroupCommit::new(vec![writer], 10, policy);
    let fates = commit_all(&g, vec![vec![record(0, "a", 0), record(1, "b", 0)]]);
    assert_eq!(fates, [(Fate::DeadLettered, vec![0, 1])]);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.contains("\"reason\":\"unconfirmed\""), "{text}");
    assert!(!text.contains("retries_exhausted"), "{text}");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_refused_record_is_split_out_and_dead_lettered_and_the_rest_commit() {
    let (dead, path) = temp_dead_letters("refused");
    let policy = Policy {
        dead_letters: Some(dead),
        ..Policy::default()
    };
    let mut g = sink(&[], policy, 100);
    g.writers[0].get_mut().unwrap().get_mut().unwrap().watch = Some(path.clone());
    let texts = ["a", "b", "c", "poison", "e", "f", "g"];
    let batch = texts
        .iter()
        .enumerate()
        .map(|(i, t)| record(i as u64, t, 2 * i as u64 + 2))
        .collect();
    let fates = commit_all(&g, vec![batch]);
    let dead_lettered: Vec<u64> = fates
        .iter()
        .filter(|(f, _)| *f == Fate::DeadLettered)
        .flat_map(|(_, s)| s.clone())
        .collect();
    assert_eq!(dead_lettered, [3]);
    assert!(!g.has_failed());
    let w = g.into_writer();
    assert_eq!(w.committed, [0, 1, 2, 4, 5, 6], "in ring order");
    // File records (they carry an offset): no commit past line 3 before its entry is on disk.
    for (first, entries) in w.seen {
        assert!(
            first < 3 || entries == 1,
            "seq {first} committed before the dead letter"
        );
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert!(text.contains("\"record\":\"poison\""), "{text}");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_refused_record_without_a_dead_letter_file_fails_the_sink() {
    let g = sink(&[], Policy::default(), 100);
    let fates = commit_all(&g, vec![vec![record(0, "poison", 0), record(1, "b", 0)]]);
    assert!(g.has_failed());
    assert!(g.health().failure().unwrap().contains("--dead-letter"));
    let not_stored: usize = fates
        .iter()
        .filter(|(f, _)| *f == Fate::NotStored { rereadable: false })
        .map(|(_, s)| s.len())
        .sum();
    assert_eq!(not_stored, 2, "{fates:?}");
}

#[test]
fn the_sink_is_busy_only_while_every_writer_is_held() {
    let g = sink(&[], Policy::default(), 10);
    assert!(!g.is_busy(), "a free writer: a batch commits at once");
    let held = g.writer().lock().unwrap();
    assert!(
        g.is_busy(),
        "the one writer held (a commit or a checkpoint)"
    );
    drop(held);
    assert!(!g.is_busy());
    let two = GroupCommit::new(
        vec![Scripted::default(), Scripted::default()],
        10,
        Policy::default(),
    );
    let first = two.writer().lock().unwrap();
    assert!(!two.is_busy(), "the second writer is free");
    drop(first);
}

#[test]
fn a_pool_with_room_takes_writers_up_to_its_room_and_commits_with_the_added_ones() {
    let g = GroupCommit::new(vec![Scripted::default()], 10, Policy::default()).room_for(3);
    assert_eq!(g.writers_open(), 1, "room is not a writer");
    let held = g.writer().lock().unwrap();
    assert!(g.is_busy(), "the one open writer is held");
    assert!(g.add_writer(Scripted::default()).is_ok());
    assert_eq!(g.writers_open(), 2);
    assert!(!g.is_busy(), "the added writer is free");
    // With the first writer held, a batch commits through the added one.
    g.hand_over(Vec::new(), |into| into.push(record(7, "x", 0)));
    let mut fates = Vec::new();
    g.commit_pending(&Clock::new(), |s| fates.push(s.fate));
    assert_eq!(fates, [Fate::Committed]);
    assert!(held.committed.is_empty(), "not through the held writer");
    drop(held);
    assert!(g.add_writer(Scripted::default()).is_ok());
    let back = g.add_writer(Scripted {
        writes: 99,
        ..Scripted::default()
    });
    assert_eq!(
        back.map_err(|w| w.writes).unwrap_err(),
        99,
        "no room: handed back"
    );
    assert_eq!(g.writers_open(), 3);
    assert_eq!(g.into_writer().writes, 0, "the first writer stays first");
}

#[test]
fn a_pool_that_stopped_adding_hands_a_late_writer_back_uncounted() {
    let g = GroupCommit::new(vec![Scripted::default()], 10, Policy::default()).room_for(3);
    assert!(g.add_writer(Scripted::default()).is_ok());
    g.stop_adding();
    let back = g.add_writer(Scripted {
        writes: 42,
        ..Scripted::default()
    });
    assert_eq!(
        back.map_err(|w| w.writes).unwrap_err(),
        42,
        "room left, but the pool takes no more"
    );
    assert_eq!(g.writers_open(), 2, "the late writer is not counted");
}

#[test]
fn a_chore_runs_once_with_the_writer_right_after_the_next_commit() {
    let g = sink(&[], Policy::default(), 10);
    // Posted while the writer is busy: the report thread cannot take it, so it posts a chore.
    let busy = g.writer().lock().unwrap();
    g.post_chore(Chore::new(|w: &mut Scripted| {
        w.seen.push((u64::MAX, w.committed.len()));
    }));
    drop(busy);
    let fates = commit_all(&g, vec![vec![record(0, "a", 0), record(1, "b", 0)]]);
    assert_eq!(fates, [(Fate::Committed, vec![0, 1])]);
    let fates = commit_all(&g, vec![vec![record(2, "c", 0)]]);
    assert_eq!(fates, [(Fate::Committed, vec![2])]);
    let w = g.into_writer();
    assert_eq!(
        w.seen,
        [(u64::MAX, 2)],
        "run once, by the first commit, after its two records"
    );
}

/// Once another writer has failed the sink, a retry loop stops at its next failure instead of
/// retrying for the rest of `--retry-for` (nothing more would be committed), and the sink's
/// health stops saying it is retrying.
#[test]
fn a_retry_stops_once_another_writer_has_failed_the_sink() {
    let policy = Policy {
        retry_for: Duration::from_secs(60),
        ..Policy::default()
    };
    let g = sink(&[], policy, 10);
    let mut tries = 0;
    let outcome = g.retrying(|| -> Result<(), SinkError> {
        tries += 1;
        if tries == 2 {
            g.fail("another writer failed".into());
        }
        Err(SinkError::new(ErrorKind::Retryable, anyhow!("locked")))
    });
    assert_eq!(outcome.map_err(|e| e.kind), Err(ErrorKind::Retryable));
    assert_eq!(tries, 2);
    assert!(g.health().retrying().is_none());
    assert!(
        g.given_up(SinkError::new(ErrorKind::Retryable, anyhow!("locked")))
            .to_string()
            .contains("the sink has failed")
    );
}
