//! Records as a binary COPY stream (PostgreSQL's `FORMAT binary`), built in one buffer that
//! the writer reuses and sends as one piece.
//!
//! The stream: the 11-byte signature, a 32-bit flags field and a 32-bit header extension
//! length (both 0); per row a 16-bit field count and each field as a 32-bit length and its
//! bytes; a 16-bit -1 at the end. Integers are big-endian. The fields, in the order of
//! [`COLUMNS`]: text as its UTF-8 bytes, `timestamptz` as microseconds since 2000-01-01 UTC
//! (i64), `int4` (i32) and `int8` (i64).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::message::Record;

/// The columns each row fills, in order.
pub const COLUMNS: &str = "message, created_at, producer, seq, run_id";

/// Unix ns as a time (a time before 1970 is not one pc-host records).
pub fn unix_time(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64)
}

/// Signature, flags, header extension length.
const HEADER: &[u8; 19] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Fields per row.
const FIELDS: i16 = 5;
/// Bytes per row besides the message: field count, 5 lengths, 8 + 4 + 8 + 8 value bytes.
const ROW_OVERHEAD: usize = 2 + 5 * 4 + 28;
/// Unix microseconds of 2000-01-01 00:00:00 UTC, PostgreSQL's epoch.
const PG_EPOCH_UNIX_US: i64 = 946_684_800_000_000;
/// The largest field PostgreSQL takes (1 GiB - 1).
pub const MAX_FIELD: usize = (1 << 30) - 1;

/// A record that cannot be a row: its text is over PostgreSQL's field limit.
#[derive(Debug, thiserror::Error)]
#[error("a message of {0} bytes is over PostgreSQL's limit of {MAX_FIELD} bytes per value")]
pub struct TooLong(pub usize);

/// Replaces `buf` with the COPY stream of `records` as rows of run `run_id`.
///
/// # Errors
/// [`TooLong`] for a message PostgreSQL cannot hold (`buf` then holds part of a stream).
pub fn encode(buf: &mut Vec<u8>, records: &[&Record], run_id: i64) -> Result<(), TooLong> {
    encode_each(buf, records, |_| run_id)
}

/// As [`encode`], each record a row of run `run_of(record)`.
///
/// # Errors
/// As [`encode`].
pub fn encode_each(
    buf: &mut Vec<u8>,
    records: &[&Record],
    run_of: impl Fn(&Record) -> i64,
) -> Result<(), TooLong> {
    buf.clear();
    let text: usize = records.iter().map(|r| r.text.len()).sum();
    buf.reserve(HEADER.len() + records.len() * ROW_OVERHEAD + text + 2);
    buf.extend_from_slice(HEADER);
    for r in records {
        push_row(buf, r, run_of(r))?;
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    Ok(())
}

fn push_row(buf: &mut Vec<u8>, r: &Record, run_id: i64) -> Result<(), TooLong> {
    let len = r.text.len();
    if len > MAX_FIELD {
        return Err(TooLong(len));
    }
    buf.extend_from_slice(&FIELDS.to_be_bytes());
    buf.extend_from_slice(&(len as i32).to_be_bytes());
    buf.extend_from_slice(r.text.as_bytes());
    buf.extend_from_slice(&8i32.to_be_bytes());
    buf.extend_from_slice(&pg_micros(r.created_at).to_be_bytes());
    buf.extend_from_slice(&4i32.to_be_bytes());
    buf.extend_from_slice(&(r.producer as i32).to_be_bytes());
    buf.extend_from_slice(&8i32.to_be_bytes());
    buf.extend_from_slice(&(r.seq as i64).to_be_bytes());
    buf.extend_from_slice(&8i32.to_be_bytes());
    buf.extend_from_slice(&run_id.to_be_bytes());
    Ok(())
}

/// Unix ns as a `timestamptz` value: microseconds since 2000-01-01 UTC, rounded down.
pub fn pg_micros(unix_ns: i64) -> i64 {
    unix_ns.div_euclid(1000) - PG_EPOCH_UNIX_US
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(text: &str, producer: u32, seq: u64, created_at: i64) -> Record {
        Record {
            created_at,
            producer,
            seq,
            text: text.to_string(),
            ..Record::default()
        }
    }

    #[test]
    fn a_row_is_its_field_count_then_each_field_as_length_and_big_endian_bytes() {
        let r = record("hé", 3, 7, PG_EPOCH_UNIX_US * 1000 + 1_999);
        let mut buf = vec![0xAA; 5]; // replaced, not appended to
        encode(&mut buf, &[&r], 42).unwrap();
        let mut want = HEADER.to_vec();
        want.extend_from_slice(&[0, 5]);
        want.extend_from_slice(&[0, 0, 0, 3, b'h', 0xC3, 0xA9]);
        want.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
        want.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 3]);
        want.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7]);
        want.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 42]);
        want.extend_from_slice(&[0xFF, 0xFF]);
        assert_eq!(buf, want);
        assert_eq!(buf.len(), HEADER.len() + ROW_OVERHEAD + 3 + 2);
    }

    #[test]
    fn timestamps_before_the_postgres_epoch_round_down_to_the_microsecond() {
        assert_eq!(pg_micros(0), -PG_EPOCH_UNIX_US);
        assert_eq!(pg_micros(-1), -PG_EPOCH_UNIX_US - 1);
        assert_eq!(pg_micros(PG_EPOCH_UNIX_US * 1000 + 999), 0);
    }
}
