//! The server's warnings, on stderr. PostgreSQL sends a warning beside a statement that still
//! succeeds: a COMMIT cancelled while it waited for a synchronous standby (it committed on the
//! primary, and the warning says the standby may not have it yet), a trigger's `RAISE
//! WARNING`. The driver drops them unless asked; pc-host logs each as a `WARN` line naming the
//! server, up to [`SHOWN`] in a process (a trigger can raise one per row), then says once that
//! it shows no more. Notices of lower severity (`NOTICE`, `INFO`) are left out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use postgres::error::{DbError, Severity};

/// How many warnings a process shows.
pub const SHOWN: usize = 20;

/// Counts the warnings shown; shared by every connection of a process.
static SEEN: AtomicUsize = AtomicUsize::new(0);

/// What to do with the `n`th warning (from 0).
#[derive(Debug, PartialEq, Eq)]
enum Shown {
    Line,
    /// The line, and the word that no more will be shown.
    LastLine,
    Nothing,
}

fn shown(n: usize) -> Shown {
    match n.cmp(&(SHOWN - 1)) {
        std::cmp::Ordering::Less => Shown::Line,
        std::cmp::Ordering::Equal => Shown::LastLine,
        std::cmp::Ordering::Greater => Shown::Nothing,
    }
}

/// The warning as one line: its message, and its detail if it has one.
fn line(server: &str, notice: &DbError) -> String {
    let mut text = format!("PostgreSQL {server}: {}", notice.message());
    if let Some(detail) = notice.detail() {
        text.push_str(": ");
        text.push_str(detail);
    }
    super::error::one_line(&text)
}

/// The callback for a connection to `server` (shown without its password).
pub fn callback(server: &str) -> impl Fn(DbError) + Send + Sync + 'static {
    let server: Arc<str> = server.into();
    move |notice: DbError| {
        if notice.parsed_severity() != Some(Severity::Warning) {
            return;
        }
        // Relaxed: a count, ordering nothing else.
        match shown(SEEN.fetch_add(1, Ordering::Relaxed)) {
            Shown::Line => tracing::warn!("{}", line(&server, &notice)),
            Shown::LastLine => {
                tracing::warn!("{}", line(&server, &notice));
                tracing::warn!("PostgreSQL {server}: {SHOWN} warnings shown; further ones are not");
            }
            Shown::Nothing => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_warnings_are_shown_the_last_says_so_and_later_ones_are_not() {
        assert_eq!(shown(0), Shown::Line);
        assert_eq!(shown(SHOWN - 2), Shown::Line);
        assert_eq!(shown(SHOWN - 1), Shown::LastLine);
        assert_eq!(shown(SHOWN), Shown::Nothing);
        assert_eq!(shown(usize::MAX), Shown::Nothing);
    }
}
