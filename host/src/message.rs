//! The record that moves through the ring, and the generator's message text (`verify` rebuilds
//! it to check what was stored).
//!
//! A record is built once by its source, moved (never copied) through the ring, and written
//! once by the sink.

/// One record: its text, when its latency clock started, and where it came from. `Default` is
/// an empty record of producer 0, seq 0, in lane 0 (tests fill in what they need).
#[derive(Debug, Default)]
pub struct Record {
    /// Monotonic ns of the run's clock at which the record's latency starts: when the token
    /// bucket scheduled it (the generator with a rate), or when it was built or read.
    pub intended_ns: u64,
    /// Unix ns when the record was built or read (the `created_at` column).
    pub created_at: i64,
    /// Who produced it (the `producer` column): a generator thread (0..N) in a generated run,
    /// or the id of the input it was read from (`inputs` table) in an ingest run.
    pub producer: u32,
    /// Its position within its producer (the `seq` column): the generator's count from 0, or
    /// the line number within the input (from 0; lines rejected at read leave gaps).
    pub seq: u64,
    /// For a file input: the byte offset just after this record's line, where a resume
    /// starts once the record is committed. 0 for records with no resumable position.
    pub end_offset: u64,
    /// For a file input's last line read without its line end: its length (see
    /// `position::Resume::tail`); 0 otherwise.
    pub tail: u32,
    /// For a file input: the mark of the bytes just before `end_offset` (see
    /// `position::Resume::mark`); 0 where none is known.
    pub mark: u32,
    /// This record completes a line stored earlier without its end (same producer and seq):
    /// the sink replaces that row.
    pub replaces: bool,
    /// The first record of a file input read again from its start (truncated, or rewritten
    /// in place): a last line stored earlier without its end belongs to the file's earlier
    /// text, and its row stays.
    pub restarted: bool,
    /// The message: valid UTF-8 (text inputs are checked at read).
    pub text: String,
    /// Set for a record a broker delivered (a NATS source); `None` otherwise.
    pub delivery: Option<Box<Delivery>>,
    /// Its `--lanes` lane (0 = highest), set by its source; 0 without lanes.
    pub lane: u8,
}

/// A record a broker delivered (a NATS source): the key the sink dedupes it on, and how it is
/// acknowledged once settled.
///
/// The sink stores such a record at most once per key `(key_run, producer, seq)`, in the same
/// transaction as its row: a message redelivered after a crash (its ack lost), or published
/// twice, is dropped as a duplicate.
#[derive(Debug)]
pub struct Delivery {
    /// A record a pc-host run published: that run, as the sink knows it (its rows go to that
    /// run, `producer` and `seq` are the publisher's). 0 for any other message: its row goes to
    /// the consuming run, `producer` is the stream (an input) and `seq` its stream sequence.
    pub key_run: i64,
    /// The publishing run's own id (as its dead-letter entries carry it) where `key_run` is
    /// not 0; 0 otherwise.
    pub published_by: i64,
    /// The subject that acknowledges it to the broker.
    pub ack: String,
}

/// Whether the row of line `line` of input `input`, stored earlier without its line end, stays
/// when `records` move the input past it: a record completes it (`replaces`), or the input
/// started over (`restarted`: the row holds the earlier text's last line). Otherwise the
/// whole line was rejected at read and the row goes (`position::stale_fragment`). (A batch
/// holding both a rejected completion and a start over of one input keeps the row.)
pub fn keeps_fragment(records: &[&Record], input: u32, line: u64) -> bool {
    records
        .iter()
        .any(|r| r.producer == input && (r.replaces && r.seq == line || r.restarted))
}

/// Each file input of `records` that `positions` holds (the inputs a sink writer registered,
/// by id), in the order of its first record: its id, its committed position, and the position
/// just after its last record in `records` (where it moves once they are committed).
pub fn moves(
    positions: &std::collections::HashMap<u32, crate::position::Resume>,
    records: &[&Record],
) -> Vec<(u32, crate::position::Resume, crate::position::Resume)> {
    let mut moves: Vec<(u32, _, _)> = Vec::new();
    if positions.is_empty() {
        return moves;
    }
    for r in records {
        let Some(&from) = positions.get(&r.producer) else {
            continue;
        };
        let to = r.resume_after();
        match moves.iter_mut().find(|(id, _, _)| *id == r.producer) {
            Some((_, _, last)) => *last = to,
            None => moves.push((r.producer, from, to)),
        }
    }
    moves
}

impl Record {
    /// The position a file input reaches once this record, read from it, is committed.
    pub fn resume_after(&self) -> crate::position::Resume {
        crate::position::Resume {
            input: self.producer,
            offset: self.end_offset,
            line: self.seq + 1,
            tail: u64::from(self.tail),
            mark: (self.mark != 0).then_some(self.mark),
            restarted: self.restarted,
        }
    }

    /// The run of the key a broker delivery is stored once by ([`Delivery::key_run`]); 0 for
    /// a record that is not a delivery, or a stream's message.
    pub fn key_run(&self) -> i64 {
        self.delivery.as_ref().map_or(0, |d| d.key_run)
    }

    /// The run whose row this record becomes, when the writing run is `own`: the publishing
    /// run for a record pc-host published, otherwise `own`.
    pub fn row_run(&self, own: i64) -> i64 {
        match self.key_run() {
            0 => own,
            publisher => publisher,
        }
    }
}

/// Acknowledges broker deliveries once the run has settled them.
pub trait Acknowledge: Sync + std::fmt::Debug {
    /// `records` were settled: `kept` when stored (or found already stored) or dead-lettered,
    /// so the broker may forget them; otherwise not stored, to be delivered again. Records
    /// without a [`Delivery`] are ignored.
    fn settled(&self, records: &[&Record], kept: bool);
}

/// "Message from producer {id}: #{seq}", padded with '.' to `padding.len()` bytes; a longer
/// text is kept whole.
pub fn generated_text(id: u32, seq: u64, padding: &str) -> String {
    let mut s = String::with_capacity(padding.len().max(48));
    s.push_str("Message from producer ");
    push_decimal(&mut s, u64::from(id));
    s.push_str(": #");
    push_decimal(&mut s, seq);
    if let Some(pad) = padding.get(s.len()..) {
        s.push_str(pad);
    }
    s
}

fn push_decimal(s: &mut String, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    s.extend(digits[i..].iter().map(|&d| char::from(d)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_text_is_padded_to_the_payload_and_never_cut() {
        let pad = ".".repeat(40);
        let t = generated_text(2, 17, &pad);
        assert_eq!(t.len(), 40);
        assert!(t.starts_with("Message from producer 2: #17."));
        assert_eq!(generated_text(2, 17, ""), "Message from producer 2: #17");
        assert_eq!(
            generated_text(4095, u64::MAX, "..."),
            format!("Message from producer 4095: #{}", u64::MAX)
        );
        assert_eq!(
            generated_text(0, 0, &".".repeat(25)),
            "Message from producer 0: #0"
        );
    }
}
