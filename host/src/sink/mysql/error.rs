//! What a MySQL or MariaDB error means: whether the connection is gone, what kind of failure it
//! is for a write ([`ErrorKind`]), and one line for the user.

use std::time::Duration;

use mysql::{DriverError, Error};

use crate::sink::ErrorKind;

/// Server error codes this sink tells apart.
mod code {
    /// ER_SERVER_SHUTDOWN: the server is shutting down.
    pub const SHUTDOWN: u16 = 1053;
    /// ER_NET_PACKET_TOO_LARGE: the server closes the connection after it.
    pub const PACKET_TOO_LARGE: u16 = 1153;
    /// ER_DUP_ENTRY: a unique key already holds the row's value.
    pub const DUPLICATE: u16 = 1062;
    /// ER_QUERY_INTERRUPTED (MySQL's answer to KILL during a statement).
    pub const INTERRUPTED: u16 = 1317;
    /// ER_CONNECTION_KILLED (MariaDB's answer to KILL).
    pub const KILLED: u16 = 1927;
    /// MySQL 8: the server closed an idle connection.
    pub const IDLE_CLOSED: u16 = 4031;
    /// CR_SERVER_GONE_ERROR, CR_SERVER_LOST (client codes some proxies relay).
    pub const GONE: u16 = 2006;
    pub const LOST: u16 = 2013;
    /// ER_CON_COUNT_ERROR: too many connections (at a reconnect).
    pub const TOO_MANY_CONNECTIONS: u16 = 1040;
    /// ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK.
    pub const LOCK_WAIT_TIMEOUT: u16 = 1205;
    pub const DEADLOCK: u16 = 1213;
    /// ER_RECORD_FILE_FULL (table full), ER_DISK_FULL.
    pub const TABLE_FULL: u16 = 1114;
    pub const DISK_FULL: u16 = 1021;
    /// ER_ERROR_DURING_COMMIT.
    pub const DURING_COMMIT: u16 = 1180;
    /// ER_DATA_TOO_LONG, ER_TRUNCATED_WRONG_VALUE_FOR_FIELD (an incorrect string value),
    /// WARN_DATA_TRUNCATED.
    pub const DATA_TOO_LONG: u16 = 1406;
    pub const INCORRECT_STRING: u16 = 1366;
    pub const DATA_TRUNCATED: u16 = 1265;
    /// A CHECK constraint refused the row: MySQL's ER_CHECK_CONSTRAINT_VIOLATED, MariaDB's
    /// ER_CONSTRAINT_FAILED.
    pub const CHECK_MYSQL: u16 = 3819;
    pub const CHECK_MARIADB: u16 = 4025;
    /// ER_SIGNAL_EXCEPTION: a trigger's `SIGNAL SQLSTATE '45000'`.
    pub const SIGNAL: u16 = 1644;
    /// ER_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR, ER_BAD_DB_ERROR.
    pub const ACCESS_DENIED: u16 = 1045;
    pub const DB_ACCESS_DENIED: u16 = 1044;
    pub const BAD_DB: u16 = 1049;
    /// ER_ACCESS_DENIED_NO_PASSWORD_ERROR (MariaDB: no password given for a user that needs one).
    pub const ACCESS_DENIED_NO_PASSWORD: u16 = 1698;
}

/// Whether the connection can no longer be used after `e`: the next use reconnects.
pub fn connection_gone(e: &Error) -> bool {
    match e {
        Error::MySqlError(e) => matches!(
            e.code,
            code::SHUTDOWN
                | code::PACKET_TOO_LARGE
                | code::INTERRUPTED
                | code::KILLED
                | code::IDLE_CLOSED
                | code::GONE
                | code::LOST
        ),
        Error::IoError(_) | Error::CodecError(_) => true,
        Error::DriverError(d) => matches!(
            d,
            DriverError::ConnectTimeout
                | DriverError::CouldNotConnect(_)
                | DriverError::PacketOutOfSync
                | DriverError::UnexpectedPacket
                | DriverError::Timeout
                | DriverError::SetupError
        ),
        _ => false,
    }
}

/// Whether `e` is a lock another client held: a lock wait (row or table) that timed out, or
/// a deadlock.
pub fn lock_conflict(e: &Error) -> bool {
    matches!(e, Error::MySqlError(e) if matches!(e.code, code::LOCK_WAIT_TIMEOUT | code::DEADLOCK))
}

/// Whether a warning or error `code` is a duplicate key (ER_DUP_ENTRY).
pub fn is_duplicate_code(code: u16) -> bool {
    code == code::DUPLICATE
}

/// Whether `e` is a duplicate value of the unique key named `key`.
pub fn duplicate_key(e: &Error, key: &str) -> bool {
    matches!(e, Error::MySqlError(e) if e.code == code::DUPLICATE && e.message.contains(key))
}

/// What a failed write means for its records.
pub fn kind_of(e: &Error) -> ErrorKind {
    // The server closes the connection (the next use reconnects), but the cause is one
    // statement too big: split the batch, and dead-letter a record too big alone.
    if matches!(e, Error::MySqlError(e) if e.code == code::PACKET_TOO_LARGE) {
        return ErrorKind::Record;
    }
    if connection_gone(e) {
        return ErrorKind::Retryable;
    }
    let Error::MySqlError(e) = e else {
        return ErrorKind::Fatal;
    };
    match e.code {
        code::LOCK_WAIT_TIMEOUT
        | code::DEADLOCK
        | code::TABLE_FULL
        | code::DISK_FULL
        | code::DURING_COMMIT
        | code::TOO_MANY_CONNECTIONS => ErrorKind::Retryable,
        code::DATA_TOO_LONG
        | code::INCORRECT_STRING
        | code::DATA_TRUNCATED
        | code::CHECK_MYSQL
        | code::CHECK_MARIADB
        | code::SIGNAL => ErrorKind::Record,
        // A data exception (class 22) or a user SIGNAL concerns the row being written.
        _ if e.state.starts_with("22") || e.state == "45000" => ErrorKind::Record,
        _ => ErrorKind::Fatal,
    }
}

/// A lock wait that ran out (error 1205: a row or table lock another client holds), as the
/// sink's one line: the start waits in slices of the server's least wait and tells it apart
/// from other errors to wait again (`super::prepare_run`).
#[derive(Debug)]
pub struct LockWaitRanOut(String);

impl std::fmt::Display for LockWaitRanOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LockWaitRanOut {}

/// `e` as the sink's one line, `sink {at}: what` (`at`: the URL shown, and what failed if
/// that is not plain): a lock wait that ran out as [`LockWaitRanOut`], anything else as text.
pub fn sink_error(e: &Error, at: impl std::fmt::Display) -> anyhow::Error {
    let line = format!("sink {at}: {}", describe(e));
    match e {
        Error::MySqlError(m) if m.code == code::LOCK_WAIT_TIMEOUT => {
            anyhow::Error::new(LockWaitRanOut(line))
        }
        _ => anyhow::Error::msg(line),
    }
}

/// `e` as one line: the server's code and message, or what happened to the connection.
pub fn describe(e: &Error) -> String {
    let text = match e {
        Error::MySqlError(e) => format!("error {} ({}): {}", e.code, e.state, e.message),
        _ if no_reply_in_time(e) => "no reply from the server in time".to_string(),
        Error::IoError(e) => format!("lost the connection: {e}"),
        Error::CodecError(e) => format!("lost the connection: {e}"),
        Error::DriverError(e) => format!("connection failed: {e}"),
        Error::UrlError(e) => format!("bad URL: {e}"),
        other => other.to_string(),
    };
    one_line(&text)
}

/// A socket read or write that hit its timeout, directly or through the packet codec.
fn no_reply_in_time(e: &Error) -> bool {
    match e {
        Error::IoError(e) => timed_out(e),
        Error::CodecError(e) => codec_io(e).is_some_and(timed_out),
        _ => false,
    }
}

/// The socket's error behind a codec error (the driver reads replies through its packet codec,
/// so a reply that times out comes as one).
fn codec_io<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    e.source()?.downcast_ref()
}

/// A socket read or write that hit its timeout.
fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Why connecting failed, with a hint where one helps.
pub fn describe_connect(e: &Error, reply_wait: Duration) -> String {
    if no_reply_in_time(e) {
        return format!(
            "no reply from the server within {} s (three lock waits of --busy-timeout-ms, at \
             least 1 s each, plus 5 s; 10 s at the least): is a MySQL or MariaDB server listening at that host \
             and port?",
            reply_wait.as_secs()
        );
    }
    let hint = match e {
        Error::MySqlError(m) if m.code == code::BAD_DB => {
            " (create the database first, e.g. CREATE DATABASE name)"
        }
        Error::MySqlError(m)
            if matches!(
                m.code,
                code::ACCESS_DENIED | code::ACCESS_DENIED_NO_PASSWORD
            ) =>
        {
            " (check the user and password in the URL)"
        }
        Error::MySqlError(m) if m.code == code::DB_ACCESS_DENIED => {
            " (grant the user access to the database)"
        }
        Error::DriverError(_) | Error::IoError(_) | Error::CodecError(_) => {
            " (is a MySQL or MariaDB server listening at that host and port?)"
        }
        _ => "",
    };
    format!("{}{hint}", describe(e))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql::MySqlError;

    fn server(code: u16, state: &str) -> Error {
        Error::MySqlError(MySqlError {
            state: state.into(),
            message: "m".into(),
            code,
        })
    }

    #[test]
    fn lost_connections_locks_and_full_disks_are_retryable() {
        for c in [1205, 1213, 1114, 1021, 1927, 1053, 2006, 2013] {
            assert_eq!(kind_of(&server(c, "HY000")), ErrorKind::Retryable, "{c}");
        }
        let io = Error::IoError(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert_eq!(kind_of(&io), ErrorKind::Retryable);
        assert!(connection_gone(&io));
        assert!(!connection_gone(&server(1205, "HY000")));
        // Too big a packet: the connection is gone, the record is the cause.
        assert!(connection_gone(&server(1153, "08S01")));
    }

    #[test]
    fn data_check_and_trigger_errors_concern_one_record() {
        for (c, s) in [
            (1153, "08S01"),
            (1406, "22001"),
            (1366, "22007"),
            (3819, "HY000"),
            (4025, "23000"),
            (1644, "45000"),
        ] {
            assert_eq!(kind_of(&server(c, s)), ErrorKind::Record, "{c}");
        }
    }

    #[test]
    fn permission_schema_and_duplicate_errors_are_fatal() {
        for (c, s) in [(1142, "42000"), (1146, "42S02"), (1062, "23000")] {
            assert_eq!(kind_of(&server(c, s)), ErrorKind::Fatal, "{c}");
        }
    }

    #[test]
    fn a_reply_that_timed_out_says_so_whichever_way_the_driver_reports_it() {
        use mysql_common::proto::codec::error::PacketCodecError;
        let would_block = || std::io::Error::from(std::io::ErrorKind::WouldBlock);
        for e in [
            Error::IoError(would_block()),
            Error::CodecError(PacketCodecError::Io(would_block())),
        ] {
            assert_eq!(describe(&e), "no reply from the server in time", "{e:?}");
        }
        let reset = Error::CodecError(PacketCodecError::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert!(describe(&reset).starts_with("lost the connection: "));
    }

    #[test]
    fn descriptions_are_one_line() {
        let e = Error::MySqlError(MySqlError {
            state: "HY000".into(),
            message: "two\nlines".into(),
            code: 1,
        });
        assert_eq!(describe(&e), "error 1 (HY000): two lines");
    }
}
