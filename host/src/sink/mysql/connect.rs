//! Connecting: the URL as the driver takes it, the session settings every connection of the
//! sink uses, and errors that name the URL without its password.

use std::time::Duration;

use anyhow::anyhow;
use mysql::consts::CapabilityFlags;
use mysql::prelude::Queryable as _;
use mysql::{Conn, Opts, OptsBuilder};

use super::error::describe_connect;
use crate::config::url::{ServerUrl, names_parameter};

/// The shortest lock waits the server takes (MySQL's least for both is 1 s), for work that
/// must not wait long on another client. `lock_wait_timeout` covers table (metadata) locks.
pub const SHORTEST_WAITS: &str =
    "SET SESSION innodb_lock_wait_timeout = 1, SESSION lock_wait_timeout = 1";

/// The least lock waits `server` ("MariaDB" or "MySQL") takes, for work that had better not
/// be done than wait: none on MariaDB (0: a lock held by another client fails the statement
/// at once), [`SHORTEST_WAITS`] on MySQL, whose least is 1 s.
pub fn least_waits(server: &str) -> &'static str {
    if server == "MariaDB" {
        "SET SESSION innodb_lock_wait_timeout = 0, SESSION lock_wait_timeout = 0"
    } else {
        SHORTEST_WAITS
    }
}

/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much longer than its lock waits a reply may take before the connection counts as lost
/// (a server that stopped answering, or a port where something else listens and waits). A
/// reply that was only slow costs a retry: a write whose outcome is unknown is checked before
/// it is written again (see `writer.rs`).
const REPLY_SLACK: Duration = Duration::from_secs(5);

/// Where the sink connects, and how: kept by each writer to connect again.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: ServerUrl,
    opts: Opts,
    /// The sessions' `innodb_lock_wait_timeout` (rows) and `lock_wait_timeout` (tables, by
    /// `LOCK TABLES` or a schema change), in seconds (from `--busy-timeout-ms`).
    lock_wait_secs: u64,
    /// How long a connection waits for a reply (connecting, or to a statement).
    reply_timeout: Duration,
}

/// A connection with the sink's session settings, and what it learnt about the server.
#[derive(Debug)]
pub struct Connected {
    pub conn: Conn,
    /// The server's `max_allowed_packet`: the largest statement it takes.
    pub max_packet: usize,
    /// "MariaDB" or "MySQL", for messages.
    pub server: &'static str,
}

impl Target {
    /// Checks the URL's form for the driver (`config::url::parse_sink` has refused one that
    /// names no database).
    ///
    /// # Errors
    /// One line naming the URL (password hidden): what the driver refuses in it.
    pub fn new(url: &ServerUrl, busy: Duration) -> anyhow::Result<Self> {
        let shown = &url.shown;
        // The driver knows the `mysql` scheme only; `mariadb://` means the same.
        let driver_url = match url.url.strip_prefix("mariadb:") {
            Some(rest) => format!("mysql:{rest}"),
            None => url.url.clone(),
        };
        let opts = Opts::from_url(&driver_url).map_err(|e| anyhow!("sink {shown}: {e}"))?;
        let lock_wait_secs = busy.as_secs().max(1);
        // One statement can wait out the lock wait more than once: for each table's metadata
        // lock (`lock_wait_timeout` counts per lock) and then for a row; the sink's statements
        // touch at most two tables, so three waits, before the server answers with error 1205.
        let reply_timeout =
            (Duration::from_secs(lock_wait_secs) * 3 + REPLY_SLACK).max(CONNECT_TIMEOUT);
        // The driver's default, `prefer_socket=true`, reconnects a TCP connection to
        // localhost through the socket path the server reports, which can be another
        // server's (a tunnel or container port on 127.0.0.1 whose server names the same
        // default socket path as the local one): pc-host then wrote to a server the URL did
        // not name. The URL's host and port are the server; `?prefer_socket=true` asks for
        // the socket.
        let prefer_socket =
            names_parameter(&driver_url, "prefer_socket") && opts.get_prefer_socket();
        let opts = OptsBuilder::from_opts(opts)
            .prefer_socket(prefer_socket)
            .additional_capabilities(CapabilityFlags::CLIENT_FOUND_ROWS)
            .tcp_connect_timeout(Some(CONNECT_TIMEOUT))
            .read_timeout(Some(reply_timeout))
            .write_timeout(Some(reply_timeout))
            .stmt_cache_size(64)
            .into();
        Ok(Self {
            url: url.clone(),
            opts,
            lock_wait_secs,
            reply_timeout,
        })
    }

    /// The sessions' lock wait, in seconds: `--busy-timeout-ms`, at least 1.
    pub fn lock_wait_secs(&self) -> u64 {
        self.lock_wait_secs
    }

    /// The statement that sets a session's lock waits, for rows and for tables alike, to
    /// `--busy-timeout-ms` (in whole seconds, at least 1): at connecting, and to put them back
    /// after [`SHORTEST_WAITS`]. Tables too: with the server's default table-lock wait, a
    /// year, a commit behind another client's `LOCK TABLES` would wait out the connection's
    /// reply timeout and fail as a lost connection.
    pub fn session_waits(&self) -> String {
        format!(
            "SET SESSION innodb_lock_wait_timeout = {0}, SESSION lock_wait_timeout = {0}",
            self.lock_wait_secs
        )
    }

    /// Connects and sets up the session.
    ///
    /// # Errors
    /// The driver's or the server's.
    pub fn connect(&self) -> mysql::Result<Connected> {
        let mut conn = Conn::new(self.opts.clone())?;
        // Strict mode: a value that does not fit is an error, never stored cut short.
        conn.query_drop(
            "SET NAMES utf8mb4, \
             SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), \
             'STRICT_TRANS_TABLES')",
        )?;
        conn.query_drop(self.session_waits())?;
        let (max_packet, version): (u64, String) = conn
            .query_first("SELECT @@SESSION.max_allowed_packet, VERSION()")?
            .unwrap_or((4 << 20, String::new()));
        let server = if version.contains("MariaDB") {
            "MariaDB"
        } else {
            "MySQL"
        };
        Ok(Connected {
            conn,
            max_packet: usize::try_from(max_packet).unwrap_or(usize::MAX),
            server,
        })
    }

    /// [`Self::connect`], with a failure as one line naming the URL.
    ///
    /// # Errors
    /// Why the server could not be reached or refused the connection.
    pub fn connect_or_explain(&self) -> anyhow::Result<Connected> {
        self.connect().map_err(|e| {
            anyhow!(
                "{}: cannot connect: {}",
                self.url.shown,
                describe_connect(&e, self.reply_timeout)
            )
        })
    }
}
