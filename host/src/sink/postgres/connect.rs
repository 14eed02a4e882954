//! Reaching the server: the connection settings a `postgres://` URL gives (with pc-host's
//! defaults for what it leaves out), and connecting with them, once at the start (errors for
//! the user) or again after a lost connection (errors to classify).

use std::time::Duration;

use anyhow::anyhow;
use postgres::{Client, Config, NoTls};

use super::error::describe;
use crate::config::url::ServerUrl;

/// How long a connection attempt may take, unless the URL says (`connect_timeout=`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much longer than `connect_timeout` the start-up exchange may take at the start of a run,
/// a verify or a plot ([`Server::connect_first`]).
const START_UP_SLACK: Duration = Duration::from_secs(5);
/// Idle time before TCP keepalives start, unless the URL says: a server that vanished without
/// closing the connection is noticed in about a minute, not two hours.
const KEEPALIVES_IDLE: Duration = Duration::from_secs(30);
/// How long sent data may stay unacknowledged before the connection counts as lost.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(60);
/// The default idle time of the `postgres` crate: the URL did not set one.
const CRATE_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);
/// How much longer than three lock waits a writer's statement may run before the server
/// cancels it ([`Server::bounding_statements`]).
const STATEMENT_SLACK: Duration = Duration::from_secs(5);

/// A server and how to connect to it: cloned by every connection of a run.
#[derive(Clone)]
pub struct Server {
    config: Config,
    /// The URL without its password, for messages.
    pub shown: String,
    /// How long a statement waits for a lock another client holds (`lock_timeout`).
    lock_wait: Duration,
    /// How long the server lets a statement run (`statement_timeout`): `None` leaves the
    /// server's (or the URL's) setting as it is.
    statement_wait: Option<Duration>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Server {
    /// The settings `url` gives; `lock_wait` is how long to wait for another client's lock.
    ///
    /// # Errors
    /// A URL the `postgres` crate cannot read, as one line naming it (without its password).
    pub fn new(url: &ServerUrl, lock_wait: Duration) -> anyhow::Result<Self> {
        let mut config: Config = url
            .url
            .parse()
            .map_err(|e| anyhow!("{}: not a usable URL: {}", url.shown, describe(&e)))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_keepalives_idle() == CRATE_KEEPALIVES_IDLE {
            config.keepalives_idle(KEEPALIVES_IDLE);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("pc-host");
        }
        config.notice_callback(super::notices::callback(&url.shown));
        Ok(Self {
            config,
            shown: url.shown.clone(),
            lock_wait,
            statement_wait: None,
        })
    }

    /// For a run's writers: each session lets the server run a statement for at most three
    /// lock waits plus [`STATEMENT_SLACK`] (`statement_timeout`; 20 s with the default
    /// `--busy-timeout-ms`), and its watch a COMMIT as long (`commit_watch.rs`), so that a
    /// statement that never ends (a trigger that waits) is cancelled (SQLSTATE 57014,
    /// retryable) instead of holding the run for ever. Three waits: a write's statements wait
    /// for at most that many locks (the table, an input's row, a delivery key). A write larger
    /// than a megabyte gets more (`session.rs`). A URL whose `options` set `statement_timeout`
    /// keeps its own, and its COMMITs are not watched.
    #[must_use]
    pub fn bounding_statements(mut self) -> Self {
        // The server reads `-c name=value` and `--name=value`, with `-` or `_` in the name
        // and in any case.
        let own = self.config.get_options().is_some_and(|o| {
            o.to_ascii_lowercase()
                .replace('-', "_")
                .contains("statement_timeout")
        });
        if !own {
            self.statement_wait = Some(self.lock_wait * 3 + STATEMENT_SLACK);
        }
        self
    }

    /// How long a statement waits for another client's lock (`lock_timeout`).
    pub fn lock_wait(&self) -> Duration {
        self.lock_wait
    }

    /// How long the server lets a writer's statement run ([`Server::bounding_statements`]);
    /// `None` where the server's or the URL's own setting holds. A COMMIT gets as long
    /// (`commit_watch.rs`).
    pub fn statement_wait(&self) -> Option<Duration> {
        self.statement_wait
    }

    /// A new session: connected, with pc-host's session settings.
    ///
    /// # Errors
    /// The `postgres` crate's, to classify (the server may be restarting).
    pub fn connect(&self) -> Result<Client, postgres::Error> {
        let mut client = self.config.connect(NoTls)?;
        let mut settings = format!("SET lock_timeout = {}", timeout_ms(self.lock_wait));
        if let Some(wait) = self.statement_wait {
            settings.push_str(&format!("; SET statement_timeout = {}", timeout_ms(wait)));
        }
        client.batch_execute(&settings)?;
        Ok(client)
    }

    /// [`Server::connect`] for the start of a run, a verify or a plot: the error is for the
    /// user. The driver's `connect_timeout` covers only the TCP connection, so a listener that
    /// takes it and never answers would hold the start for ever: the whole connection, start-up
    /// and authentication included, gets that long for each host the URL names (plus
    /// [`START_UP_SLACK`]), in a thread of its own that is left behind if it does not end in
    /// time. A stop signal ends the wait (nothing is recorded yet).
    ///
    /// # Errors
    /// As [`connect_more`](Self::connect_more); also: the server did not answer in time; an
    /// [`Interrupted`](crate::interrupt::Interrupted) for a signal.
    pub fn connect_first(&self) -> anyhow::Result<Client> {
        let hosts = self.config.get_hosts().len().max(1);
        let each = self
            .config
            .get_connect_timeout()
            .copied()
            .filter(|t| !t.is_zero())
            .unwrap_or(CONNECT_TIMEOUT);
        let limit = each * u32::try_from(hosts).unwrap_or(u32::MAX) + START_UP_SLACK;
        let (tx, rx) = std::sync::mpsc::channel();
        let server = self.clone();
        std::thread::Builder::new()
            .name("pc-postgres-connect".into())
            .spawn(move || {
                let _ = tx.send(server.connect());
            })
            .map_err(|e| anyhow!("{}: cannot connect: {e}", self.shown))?;
        let deadline = std::time::Instant::now() + limit;
        let connected = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(connected) => break connected,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) if !left.is_zero() => {
                    crate::interrupt::check(|| format!("a connection to {}", self.shown))?;
                }
                Err(_) => {
                    return Err(anyhow!(
                        "{}: cannot connect: the server took the connection but did not answer \
                         within {:.0} s (is PostgreSQL listening there? connect_timeout= sets \
                         the wait)",
                        self.shown,
                        limit.as_secs_f64()
                    ));
                }
            }
        };
        connected.map_err(|e| self.cannot_connect(&e))
    }

    /// [`Server::connect`] for a further writer of a run under way (parallel writes, a
    /// scaler's): in the caller's thread, as any reconnection is, and not ended by a stop
    /// signal (the run drains meanwhile).
    ///
    /// # Errors
    /// One line: "URL: cannot connect: why", and a hint where the driver's own words name no
    /// cause ([`super::error::connect_hint`]): the server answered but not as PostgreSQL does
    /// (a MySQL or HTTP port), or the URL asks for TLS.
    pub fn connect_more(&self) -> anyhow::Result<Client> {
        self.connect().map_err(|e| self.cannot_connect(&e))
    }

    fn cannot_connect(&self, e: &postgres::Error) -> anyhow::Error {
        let hint = super::error::connect_hint(e);
        anyhow!("{}: cannot connect: {}{hint}", self.shown, describe(e))
    }

    /// "PostgreSQL URL: what" for an error on this server.
    pub fn error(&self, what: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("PostgreSQL {}: {what}", self.shown)
    }
}

/// `wait` as a `lock_timeout` or `statement_timeout` in milliseconds: at least 1 (0 would
/// wait for ever), at most what the settings take.
pub fn timeout_ms(wait: Duration) -> u128 {
    wait.as_millis().clamp(1, i32::MAX as u128)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement_wait(url: &str) -> Option<Duration> {
        let url = ServerUrl {
            url: url.to_string(),
            shown: url.to_string(),
        };
        let server = Server::new(&url, Duration::from_secs(1)).unwrap();
        server.bounding_statements().statement_wait()
    }

    #[test]
    fn writers_statements_are_bounded_unless_the_url_sets_its_own() {
        assert_eq!(
            statement_wait("postgres://pc@db1/pc"),
            Some(Duration::from_secs(8))
        );
        for options in [
            "-c%20statement_timeout%3D1000",
            "--statement-timeout%3D1000",
            "-c%20Statement_Timeout%3D0",
        ] {
            let url = format!("postgres://pc@db1/pc?options={options}");
            assert_eq!(statement_wait(&url), None, "{url}");
        }
        assert_eq!(
            statement_wait("postgres://pc@db1/pc?options=-c%20lock_timeout%3D5"),
            Some(Duration::from_secs(8))
        );
    }
}
