//! Records as statement parameters: the multi-row INSERTs, how a batch is cut into them (by
//! rows and by bytes), and `created_at` as a `DATETIME(6)` value.

use mysql::Value;

use crate::message::Record;

/// Rows per prepared INSERT, largest first: a batch is cut into as many of the largest as fit
/// and one of each smaller size its remainder needs. 512 rows x 4 parameters stays far under
/// the 65535 placeholders a statement may have.
pub const STATEMENT_ROWS: [usize; 10] = [512, 256, 128, 64, 32, 16, 8, 4, 2, 1];

/// Bytes a row adds to an INSERT's packet besides its text: the parameter types and the
/// length prefix, a DATETIME, two integers, with room to spare.
const ROW_OVERHEAD: usize = 64;
/// Bytes of an execute packet besides its rows (header, statement id, null bitmap).
const PACKET_OVERHEAD: usize = 1024;
/// The driver sends an execute packet of 16 MiB or more as "long data", one extra packet per
/// parameter: statements of several rows stay under it.
const DRIVER_PACKET: usize = (1 << 24) - 1;

/// The INSERT for `rows` rows, the run id a literal (one parameter less per row).
pub fn insert_sql(rows: usize, run_id: i64) -> String {
    let mut sql =
        String::from("INSERT INTO messages (message, created_at, producer, seq, run_id) VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push_str(&format!("(?,?,?,?,{run_id})"));
    }
    sql
}

/// A record's four parameters, appended to `params`.
pub fn push_params(params: &mut Vec<Value>, r: &Record) {
    params.push(Value::Bytes(r.text.as_bytes().to_vec()));
    params.push(datetime(r.created_at));
    params.push(Value::Int(i64::from(r.producer)));
    params.push(Value::Int(r.seq as i64));
}

/// The packet bytes a record takes in an INSERT.
pub fn row_bytes(r: &Record) -> usize {
    r.text.len() + ROW_OVERHEAD
}

/// How big a statement may be, from the server's `max_allowed_packet`.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Bytes of rows in a statement of several rows.
    pub many: usize,
    /// Bytes of the row in a one-row statement (the driver may send it as long data).
    pub one: usize,
}

impl Budget {
    pub fn new(max_packet: usize) -> Self {
        Self {
            many: max_packet
                .min(DRIVER_PACKET)
                .saturating_sub(PACKET_OVERHEAD),
            one: max_packet.saturating_sub(PACKET_OVERHEAD),
        }
    }
}

/// Cuts rows of `bytes` (each row's size, in order) into statements: each `(first, rows)`
/// with `rows` one of [`STATEMENT_ROWS`], as large as the rows left and the budget allow.
///
/// # Errors
/// The index of a row too big for even a one-row statement.
pub fn plan(bytes: &[usize], budget: Budget) -> Result<Vec<(usize, usize)>, usize> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let left = bytes.len() - i;
        let rows = STATEMENT_ROWS
            .iter()
            .copied()
            .filter(|&n| n <= left)
            .find(|&n| {
                let size: usize = bytes[i..i + n].iter().sum();
                if n == 1 {
                    size <= budget.one
                } else {
                    size <= budget.many
                }
            })
            .ok_or(i)?;
        out.push((i, rows));
        i += rows;
    }
    Ok(out)
}

/// Unix ns as a `DATETIME(6)` in UTC (microseconds; the nanoseconds below are dropped).
pub fn datetime(unix_ns: i64) -> Value {
    let micros = unix_ns.div_euclid(1_000);
    let secs = micros.div_euclid(1_000_000);
    let (days, day_secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    Value::Date(
        u16::try_from(y).unwrap_or(0),
        m,
        d,
        (day_secs / 3600) as u8,
        (day_secs / 60 % 60) as u8,
        (day_secs % 60) as u8,
        micros.rem_euclid(1_000_000) as u32,
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_sql_has_four_parameters_per_row_and_the_run_literal() {
        let sql = insert_sql(3, 42);
        assert_eq!(sql.matches('?').count(), 12);
        assert_eq!(sql.matches(",42)").count(), 3);
        assert!(STATEMENT_ROWS[0] * 4 < 65_535);
    }

    #[test]
    fn datetime_is_utc_with_microseconds() {
        assert_eq!(datetime(0), Value::Date(1970, 1, 1, 0, 0, 0, 0));
        // 2024-02-29T23:59:59.123456789Z
        let ns = 1_709_251_199_123_456_789;
        assert_eq!(datetime(ns), Value::Date(2024, 2, 29, 23, 59, 59, 123_456));
        // 2000-03-01T00:00:00Z, after a century leap day.
        assert_eq!(
            datetime(951_868_800_000_000_000),
            Value::Date(2000, 3, 1, 0, 0, 0, 0)
        );
    }

    #[test]
    fn a_batch_is_cut_by_rows_then_by_bytes() {
        let budget = Budget::new(16 << 20);
        let small = vec![100; 1000];
        let cuts = plan(&small, budget).unwrap();
        let sizes: Vec<usize> = cuts.iter().map(|c| c.1).collect();
        assert_eq!(sizes, [512, 256, 128, 64, 32, 8]);
        assert_eq!(cuts.last().unwrap().0 + 8, 1000);

        // 1 MiB rows: 15 fit in a 16 MiB packet, so statements of 8, 4, 2, 1 rows.
        let big = vec![1 << 20; 20];
        let cuts = plan(&big, budget).unwrap();
        assert!(cuts.iter().all(|&(first, n)| {
            n == 1 || big[first..first + n].iter().sum::<usize>() <= budget.many
        }));
        assert_eq!(cuts.iter().map(|c| c.1).sum::<usize>(), 20);
    }

    #[test]
    fn a_row_too_big_for_one_statement_is_named() {
        let budget = Budget::new(4 << 20);
        assert_eq!(plan(&[10, 5 << 20, 10], budget), Err(1));
    }
}
