//! What a PostgreSQL error means: one line for the user, whether the connection is gone, and
//! what [`ErrorKind`] a failed write has (by its SQLSTATE).

use std::error::Error as _;

use postgres::error::SqlState;

use crate::sink::ErrorKind;

/// The error as one line: the server's message and SQLSTATE (and detail), or what went wrong
/// on the connection (an I/O error without its "(os error N)").
pub fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut line = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            line.push_str("; ");
            line.push_str(detail);
        }
        return one_line(&line);
    }
    match e.source() {
        Some(cause) => match cause.downcast_ref::<std::io::Error>() {
            Some(io) => io_text(io),
            None => one_line(&format!("{e}: {cause}")),
        },
        None => e.to_string(),
    }
}

/// Whether a failed connect heard back something that is not PostgreSQL: the reply could not
/// be read as PostgreSQL's (the driver's parser says "unexpected message from server" or
/// "error parsing response from server", its framing "bytes remaining on stream", an I/O
/// error the system did not report). Not for a failure before any reply: a name that does
/// not resolve, a refused or unreachable address, TLS the driver cannot do; nor for an error
/// the server sent (its SQLSTATE).
fn not_postgres(e: &postgres::Error) -> bool {
    // The driver's error kinds are private; its display starts with the kind's words.
    let said = e.to_string();
    let io_without_os_error = || {
        e.source()
            .and_then(|cause| cause.downcast_ref::<std::io::Error>())
            .is_some_and(|io| io.raw_os_error().is_none())
    };
    e.as_db_error().is_none()
        && (said.starts_with("unexpected message from server")
            || said.starts_with("error parsing response from server")
            || said.starts_with("error communicating with the server") && io_without_os_error())
}

/// What to add to a failed connect's line where the driver's words name no cause: the server
/// does not speak PostgreSQL ([`not_postgres`]), or the URL asks for TLS, which pc-host's
/// connections do not do.
pub fn connect_hint(e: &postgres::Error) -> &'static str {
    if not_postgres(e) {
        "; the server there does not speak PostgreSQL's protocol: is it the right port?"
    } else if e.to_string().starts_with("error performing TLS handshake") {
        "; pc-host connects to PostgreSQL without TLS: use sslmode=disable or sslmode=prefer"
    } else {
        ""
    }
}

/// "Connection refused (os error 111)" -> "connection refused".
pub fn io_text(io: &std::io::Error) -> String {
    let text = io.to_string();
    let text = match text.rsplit_once(" (os error ") {
        Some((head, _)) => head.to_string(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// `s` on one line, its runs of white space as one space each.
pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether the error ended the session (the connection was lost, the server shut it down):
/// the next call connects again. `closed`: the client saw its connection close.
pub fn lost(e: &postgres::Error, closed: bool) -> bool {
    match e.code() {
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                ]
                .contains(code)
        }
        None => closed || e.is_closed() || e.source().is_some_and(|c| c.is::<std::io::Error>()),
    }
}

/// What a failed write means for its records, by SQLSTATE:
/// - the connection or the server (class 08, 57P01-03, no SQLSTATE with the connection
///   closed or an I/O error), a deadlock or
///   serialization failure (40001, 40P01), a lock wait past `lock_timeout` (55P03), no
///   resources (class 53: disk full, out of memory, too many connections), a cancelled
///   statement (57014), an I/O error on the server (58030): the same write may succeed later;
/// - a value PostgreSQL refuses (class 22 such as 22021, a NUL byte in text; 22P05) or a
///   CHECK constraint (23514): that record can never be stored. Except 22P03/22P04, a
///   malformed COPY stream, which is pc-host's own fault and says nothing about a record;
/// - anything else (no permission, a missing table, a duplicate key): fatal.
pub fn kind_of(e: &postgres::Error, closed: bool) -> ErrorKind {
    if lost(e, closed) {
        return ErrorKind::Retryable;
    }
    let Some(code) = e.code() else {
        return ErrorKind::Fatal;
    };
    let s = code.code();
    let retryable = [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::QUERY_CANCELED,
        SqlState::IO_ERROR,
    ];
    let bad_copy = [
        SqlState::INVALID_BINARY_REPRESENTATION,
        SqlState::BAD_COPY_FILE_FORMAT,
    ];
    if s.starts_with("53") || retryable.contains(code) {
        ErrorKind::Retryable
    } else if (s.starts_with("22") && !bad_copy.contains(code))
        || *code == SqlState::CHECK_VIOLATION
    {
        ErrorKind::Record
    } else {
        ErrorKind::Fatal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_as_a_short_lowercase_phrase() {
        let e = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(io_text(&e), "connection refused");
        let e = std::io::Error::other("Failed to lookup address");
        assert_eq!(io_text(&e), "failed to lookup address");
    }
}
