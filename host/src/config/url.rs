//! `--source` and `--sink` URLs: parsed and checked for form here (exit 2 on a bad one); files
//! are opened later, still before any thread starts.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;
use std::time::Duration;

/// How a line becomes a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One line is one record, `\n` or `\r\n` stripped; it must be valid UTF-8.
    Text,
    /// Each line must be one valid JSON value, stored as its text.
    Jsonl,
    /// A `--dead-letter` file: each entry's `record` is stored (a replay).
    DeadLetter,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Jsonl => "jsonl",
            Self::DeadLetter => "dead-letter",
        }
    }
}

/// Where records come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// Synthetic messages from `--producers` threads.
    Generate,
    /// Lines from standard input, until EOF.
    Stdin {
        format: Format,
        /// `?lane=NAME`: the `--lanes` lane its records go to.
        lane: Option<String>,
    },
    /// Lines from a file; with `follow`, keeps reading as it grows, across rotation.
    File {
        path: PathBuf,
        follow: bool,
        /// `?rotate_wait=`: following, how long a rotated file must have stopped growing
        /// before the source moves on to the new one ([`DEFAULT_ROTATE_WAIT`]).
        rotate_wait: Duration,
        format: Format,
        /// `?lane=NAME`: the `--lanes` lane its records go to.
        lane: Option<String>,
    },
    /// A JetStream stream, read through a durable pull consumer shared by any number of
    /// pc-host processes.
    Nats(NatsSource),
}

/// `nats://[USER[:PASSWORD]@]HOST[:PORT]/STREAM?consumer=NAME&until=empty&ack_wait=30s`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsSource {
    pub server: NatsServer,
    pub stream: String,
    /// The durable consumer's name (`pc-host` unless given).
    pub consumer: String,
    /// `until=empty`: end once the consumer has nothing pending and nothing unacknowledged.
    pub until_empty: bool,
    /// How long a delivered message may stay unacknowledged before JetStream redelivers it
    /// (set when the consumer is created; an existing consumer keeps its own).
    pub ack_wait: std::time::Duration,
    /// `lane=NAME`: the `--lanes` lane its records go to.
    pub lane: Option<String>,
}

/// `nats://[USER[:PASSWORD]@]HOST[:PORT]/SUBJECT?stream=NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsSink {
    pub server: NatsServer,
    pub subject: String,
    /// The stream that keeps `subject` (created if missing); by default the subject with
    /// `.`, `*` and `>` made `_`.
    pub stream: String,
}

/// A NATS server: where to connect, with what credentials, and how to name it (no password).
#[derive(Clone, PartialEq, Eq)]
pub struct NatsServer {
    /// `HOST:PORT` (port 4222 unless given).
    pub addr: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// `nats://[USER:***@]HOST:PORT`.
    pub shown: String,
}

impl fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Display for NatsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Generate => f.write_str("generate")?,
            Self::Stdin { format, .. } => write!(f, "stdin?format={}", format.as_str())?,
            Self::File {
                path,
                follow,
                rotate_wait,
                format,
                ..
            } => {
                write!(f, "file:{}?follow={follow}", written_path(path))?;
                if *follow && *rotate_wait != DEFAULT_ROTATE_WAIT {
                    write!(f, "&rotate_wait={}", compact_duration(*rotate_wait))?;
                }
                write!(f, "&format={}", format.as_str())?;
            }
            Self::Nats(n) => write!(
                f,
                "{}/{}?consumer={}{}",
                n.server,
                nats_escaped(&n.stream),
                nats_escaped(&n.consumer),
                if n.until_empty { "&until=empty" } else { "" }
            )?,
        }
        match self.lane() {
            Some(lane) => write!(f, "&lane={lane}"),
            None => Ok(()),
        }
    }
}

impl SourceSpec {
    /// `?lane=NAME`, if given.
    pub fn lane(&self) -> Option<&str> {
        match self {
            Self::Generate => None,
            Self::Stdin { lane, .. } | Self::File { lane, .. } => lane.as_deref(),
            Self::Nats(n) => n.lane.as_deref(),
        }
    }
}

/// Where records go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkSpec {
    Sqlite(PathBuf),
    /// `postgres://USER@HOST:PORT/DB` (or `postgresql://`).
    Postgres(ServerUrl),
    /// `mysql://USER@HOST:PORT/DB` (or `mariadb://`).
    Mysql(ServerUrl),
    /// `nats://HOST:PORT/SUBJECT?stream=NAME`: published to JetStream.
    Nats(NatsSink),
}

/// A database server's URL: as given (to connect with), and as shown (password hidden).
#[derive(Clone, PartialEq, Eq)]
pub struct ServerUrl {
    pub url: String,
    pub shown: String,
}

impl fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl ServerUrl {
    /// Checks the shape (`scheme://[user[:password]@]host[:port][/db][?params]`) and hides the
    /// password for messages.
    fn parse(url: &str, rest: &str) -> Result<Self, String> {
        let Some(after) = rest.strip_prefix("//") else {
            let (scheme, port) = match url.split_once(':').map(|(s, _)| s) {
                Some(s @ ("mysql" | "mariadb")) => (s, 3306),
                Some(s) => (s, 5432),
                None => ("postgres", 5432),
            };
            return Err(format!(
                "a server URL starts with `//` after the scheme, e.g. \
                 {scheme}://user@127.0.0.1:{port}/db"
            ));
        };
        let mysql = url.starts_with("mysql:") || url.starts_with("mariadb:");
        // The MySQL driver drops a fragment, so the URL shown would name another database (or
        // user, or password) than the one written to. PostgreSQL's takes a `#` as it is.
        if mysql && after.contains('#') {
            return Err(
                "a MySQL URL has no `#fragment`: write a `#` that is part of a user, \
                        password or name as %23"
                    .into(),
            );
        }
        // The PostgreSQL driver ends the user and password at the first `@`: with another
        // `@` in the password it would take the rest for the host, and one in a parameter
        // would make the URL shown name another host than the one connected to.
        if !mysql && after.matches('@').count() > 1 {
            return Err(
                "the URL holds more than one `@`: write an `@` that is part of the \
                        password or a parameter as %40 (the driver ends the password at the \
                        first `@`)"
                    .into(),
            );
        }
        // Where the user and password end. The MySQL driver ends them at the first `/` or `?`
        // (reading the rest as host, path or parameters): an `@` after one would connect as
        // someone else, or to somewhere else, than the URL shown names, and a message could
        // quote part of a password. PostgreSQL's ends them at the first `@`, wherever it is:
        // a password may hold `/` or `?` there, but without one (no `:` before the `@`) an
        // `@` after a `/` or `?` would make the host, database or parameters a user name.
        // Refused, unquoted.
        let at_after_path = after
            .find(['/', '?'])
            .is_some_and(|end| after[end..].contains('@'));
        // A password, unless what looks like one is a port and a path (`h:5432/db?x=a@b`).
        let password = after.split_once('@').is_some_and(|(u, _)| {
            u.split_once(':').is_some_and(|(_, p)| {
                let digits = p.len() - p.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                !(digits > 0 && p[digits..].starts_with(['/', '?']))
            })
        });
        if at_after_path && (mysql || !password) {
            return Err(
                "the URL holds an `@` after a `/` or `?`: write a `/`, `?` or `@` in \
                        the user or password, or an `@` in the path or a parameter, as %2F, \
                        %3F, %40"
                    .into(),
            );
        }
        // So the host starts after the last `@`.
        let from_host = after.rsplit_once('@').map_or(after, |(_, h)| h);
        if let Some((_, query)) = from_host.split_once('?') {
            // Decoded, as the drivers read them: `%75ser` is `user`.
            let keys: Vec<String> = query
                .split('&')
                .map(|p| percent_decoded(p.split_once('=').map_or(p, |(k, _)| k)))
                .collect();
            if let Some(k) = keys
                .iter()
                .enumerate()
                .find_map(|(i, k)| keys[..i].contains(k).then_some(k))
            {
                return Err(format!("parameter `{k}` is given twice: give it once"));
            }
        }
        let hostport = from_host.split(['/', '?']).next().unwrap_or("");
        // An IPv6 address is in brackets, its port (if any) after them.
        let (host, port) = match hostport.strip_prefix('[').and_then(|i| i.split_once(']')) {
            Some((v6, after)) => (&hostport[..v6.len() + 2], after.strip_prefix(':')),
            None => match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            },
        };
        if host.is_empty() {
            return Err("the URL names no host".into());
        }
        if let Some(p) = port
            && !p.parse::<u16>().is_ok_and(|p| p > 0)
        {
            return Err(format!("`{p}` is not a port (1..=65535)"));
        }
        Ok(Self {
            url: url.to_string(),
            shown: without_password(url),
        })
    }
}

/// `url` with its passwords shown as `***`, for messages: the one in `user:password@` (which
/// may hold `/` or `?` unescaped, so it ends at the last `@`) and any `password=` parameter.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let rest = match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => rest.to_string(),
        },
        None => rest.to_string(),
    };
    let Some((before, query)) = rest.split_once('?') else {
        return format!("{scheme}://{rest}");
    };
    let query: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            // The drivers decode the key (`%70assword` is `password`).
            Some((k, _)) if percent_decoded(k).eq_ignore_ascii_case("password") => {
                format!("{k}=***")
            }
            _ => p.to_string(),
        })
        .collect();
    format!("{scheme}://{before}?{}", query.join("&"))
}

impl fmt::Display for SinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite:{}", written_path(path)),
            Self::Postgres(u) | Self::Mysql(u) => f.write_str(&u.shown),
            Self::Nats(n) => write!(
                f,
                "{}/{}?stream={}",
                n.server,
                nats_escaped(&n.subject),
                nats_escaped(&n.stream)
            ),
        }
    }
}

/// Where the server listens, as given (`HOST:PORT`, or `PORT` alone for loopback).
///
/// # Errors
/// One line: not an address, or nothing to resolve it to.
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let with_host = if text.parse::<u16>().is_ok() {
        format!("127.0.0.1:{text}")
    } else {
        text.to_string()
    };
    with_host
        .to_socket_addrs()
        .map_err(|e| format!("`{text}` is not a HOST:PORT address ({e})"))?
        .next()
        .ok_or_else(|| format!("`{text}` resolves to no address"))
}

/// Why `scheme` (a source's text before its `:`, or all of it) names no source.
fn unknown_source(scheme: &str) -> String {
    let lower = scheme.to_ascii_lowercase();
    if matches!(scheme, "generate" | "stdin") {
        format!("{scheme} takes no `:` (e.g. {scheme}, or stdin?format=jsonl)")
    } else if lower != scheme && matches!(lower.as_str(), "generate" | "stdin") {
        format!("unknown source `{scheme}`: sources are written in lower case (`{lower}`)")
    } else if lower != scheme && matches!(lower.as_str(), "file" | "nats") {
        format!("unknown source `{scheme}`: schemes are written in lower case (`{lower}:`)")
    } else {
        format!(
            "unknown source `{scheme}` (use generate, stdin, -, file:PATH or \
             nats://HOST:PORT/STREAM)"
        )
    }
}

/// Parses one `--source` URL; the error is the reason, for the caller to prefix.
pub fn parse_source(url: &str) -> Result<SourceSpec, String> {
    if let Some(rest) = url.strip_prefix("nats:") {
        return parse_nats_source(rest).map(SourceSpec::Nats);
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    if base == "generate" && !query.is_empty() {
        return Err("generate takes no parameters".into());
    }
    // Before the parameters, which are a file's or stdin's: `NATS://...?consumer=x` is an
    // unknown source, not a file source with an unknown parameter.
    if let Some((scheme, _)) = base.split_once(':')
        && scheme != "file"
    {
        return Err(unknown_source(scheme));
    }
    let params = parse_query(query)?;
    let mut follow = false;
    let mut rotate_wait = None;
    let mut format = Format::Text;
    let mut lane = None;
    for (key, value) in &params {
        match *key {
            "follow" => {
                follow = match *value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("`follow={value}`: use follow=true or follow=false")),
                }
            }
            "rotate_wait" => rotate_wait = Some(parse_rotate_wait(value)?),
            "format" => {
                format = match *value {
                    "text" => Format::Text,
                    "jsonl" => Format::Jsonl,
                    "dead-letter" => Format::DeadLetter,
                    _ => {
                        return Err(format!(
                            "`format={value}`: use format=text, jsonl or dead-letter"
                        ));
                    }
                }
            }
            "lane" => {
                super::lanes::check_name(value)?;
                lane = Some((*value).to_string());
            }
            _ => {
                return Err(format!(
                    "unknown parameter `{key}` (known: follow, rotate_wait, format, lane)"
                ));
            }
        }
    }
    let spec = match base {
        "generate" => SourceSpec::Generate,
        "stdin" | "-" => SourceSpec::Stdin { format, lane },
        _ => {
            let Some(rest) = base.strip_prefix("file:") else {
                return Err(unknown_source(base));
            };
            let path = local_path("file", rest)?;
            if path.is_empty() {
                return Err("file: needs a path, e.g. file:/var/log/app.log".into());
            }
            if rotate_wait.is_some() && !follow {
                return Err("rotate_wait= applies with follow=true".into());
            }
            return Ok(SourceSpec::File {
                path: path.into(),
                follow,
                rotate_wait: rotate_wait.unwrap_or(DEFAULT_ROTATE_WAIT),
                format,
                lane,
            });
        }
    };
    if !params.is_empty() && spec == SourceSpec::Generate {
        return Err("generate takes no parameters".into());
    }
    if follow || rotate_wait.is_some() {
        return Err("follow= and rotate_wait= apply to file: sources only".into());
    }
    Ok(spec)
}

/// `d` in one unit, the largest that holds it whole (`2s`, `1500ms`): no space, as a URL
/// parameter is pasted.
fn compact_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns.is_multiple_of(1_000_000_000) {
        format!("{}s", ns / 1_000_000_000)
    } else if ns.is_multiple_of(1_000_000) {
        format!("{}ms", ns / 1_000_000)
    } else if ns.is_multiple_of(1_000) {
        format!("{}us", ns / 1_000)
    } else {
        format!("{ns}ns")
    }
}

/// A followed file's rotate wait unless `?rotate_wait=` says: long enough for a program that
/// reopens its log on a signal after the rename (logrotate's `postrotate`) to have done so.
pub const DEFAULT_ROTATE_WAIT: Duration = Duration::from_secs(1);

/// `?rotate_wait=`: a duration from 0 to an hour (`500ms`, `5s`).
fn parse_rotate_wait(value: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(value).map_err(|_| {
        format!("`rotate_wait={value}` is not a duration (e.g. rotate_wait=5s or 500ms)")
    })?;
    if d > Duration::from_secs(3600) {
        return Err(format!("`rotate_wait={value}`: give 0s to 1h"));
    }
    Ok(d)
}

/// `--source` and the `file:` URL of `path`, ready to paste into a shell: the URL as
/// [`written_path`] writes it, single-quoted if it holds anything a shell would read.
pub fn source_flag(path: &std::path::Path) -> String {
    let url = format!("file:{}", written_path(path));
    let plain = url
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-:%+=@,".contains(c));
    if plain {
        format!("--source {url}")
    } else {
        format!("--source '{}'", url.replace('\'', r"'\''"))
    }
}

/// `path` as a `file:` or `sqlite:` URL writes it, so that it parses back to the same file: as
/// it is, or, if it holds a `?` (which would start the parameters), in the `//` form with `%`
/// and `?` escaped. That form takes absolute paths only ([`local_path`] decodes escapes in it
/// alone), so a relative path with a `?` is written from the current directory.
fn written_path(path: &std::path::Path) -> String {
    let shown = path.display().to_string();
    // A path starting `//` (`file:////tmp/x` names `//tmp/x`) would read as `//AUTHORITY`.
    if !shown.contains('?') && !shown.starts_with("//") {
        return shown;
    }
    let shown = std::path::absolute(path).map_or(shown, |p| p.display().to_string());
    format!("//{}", shown.replace('%', "%25").replace('?', "%3F"))
}

/// The local path of a `file:` or `sqlite:` URL, given what follows the scheme's colon:
/// `PATH` as it is (relative or absolute), or, after `//`, an authority and an absolute path
/// (`file:///var/log/a.log`, `file://localhost/var/log/a.log`), as RFC 8089 reads them: with
/// its percent-escapes decoded (`%20` a space, `%3F` a `?`), as such URLs are written. Any
/// other host is refused rather than read as the first part of a relative path
/// (`file://tmp/a.log` names host `tmp`, not `./tmp/a.log` nor `/tmp/a.log`).
fn local_path(scheme: &str, rest: &str) -> Result<String, String> {
    let Some(after) = rest.strip_prefix("//") else {
        return Ok(rest.to_string());
    };
    let (host, path) = after.find('/').map_or((after, ""), |i| after.split_at(i));
    if host.is_empty() || host.eq_ignore_ascii_case("localhost") {
        // A NUL cannot be in a path, and an escaped `/` would name the same file as a plain
        // one (`a%2Fb` is `a/b`): refused rather than read either way.
        let lower = path.to_ascii_lowercase();
        if let Some(escape) = ["%00", "%2f"].into_iter().find(|e| lower.contains(e)) {
            return Err(format!(
                "`{}` is not allowed in a path",
                escape.to_ascii_uppercase()
            ));
        }
        return String::from_utf8(percent_decoded_bytes(path)).map_err(|_| {
            "its percent-escapes stand for bytes that are not UTF-8; give a link to the file \
             with a UTF-8 name"
                .to_string()
        });
    }
    Err(format!(
        "{scheme}://{host}/... names the host `{host}`: pc-host reads local files only; write \
         {scheme}:///ABSOLUTE/PATH, or {scheme}:RELATIVE/PATH for {host}{path} here"
    ))
}

/// Checks a SQLite database path. `:memory:` is refused (SQLite would keep the database in
/// memory: nothing to verify or resume). SQLite reads a file name that starts with `file:` as a URI
/// (`file:x.db?mode=ro` names `x.db`), so such a path would not be the file pc-host checks and
/// reports on: refused, with the two ways to say what was meant. A path spelled as a directory
/// (`data/`) is refused too: SQLite would create `data` without the slash, and every later
/// look at `data/` would miss it. So is a name SQLite gives a file beside a database
/// (`x.db-wal`, `-shm`, `-journal`) where no database is yet (one made there would be taken
/// for `x.db`'s log and removed when `x.db` is opened) or where `x.db` is there (so it may be
/// that database's log); a SQLite database already there by such a name, with no `x.db`, is
/// used.
pub fn check_sqlite_path(path: &str) -> Result<(), String> {
    if path == ":memory:" {
        return Err(
            "`:memory:` is SQLite's in-memory database, which no run could verify or resume: give \
             a file path (./:memory: for a file of that name)"
                .into(),
        );
    }
    let already_a_database = |db: &str| {
        crate::paths::holds_sqlite_database(path.as_ref()) && std::fs::metadata(db).is_err()
    };
    if let Some((db, suffix)) = crate::paths::SIDE_FILES
        .iter()
        .find_map(|s| path.strip_suffix(s).map(|db| (db, s)))
        .filter(|(db, _)| !db.is_empty() && !db.ends_with('/') && !already_a_database(db))
    {
        return Err(format!(
            "`{path}` is the name SQLite gives the {suffix} file of the database {db}: opening \
             {db} would take a database by that name for it and remove it; choose another name"
        ));
    }
    if crate::paths::names_a_directory(std::path::Path::new(path)) {
        let dir = path.trim_end_matches('/');
        return Err(format!(
            "`{path}` names a directory, not a database file: give a file path (e.g. \
             {dir}/pc-host.db)"
        ));
    }
    let scheme = path.split_once(':').map(|(scheme, _)| scheme);
    if let Some(scheme @ ("sqlite" | "postgres" | "postgresql" | "mysql" | "mariadb" | "nats")) =
        scheme
    {
        return Err(format!(
            "`{path}` is a {scheme}: URL, not a file path: give it as --sink (or PC_HOST_SINK), or \
             the path itself; ./{path} names a file of that name"
        ));
    }
    match path.strip_prefix("file:") {
        Some(rest) => Err(format!(
            "`{path}` would be read by SQLite as a URI, not a file name: give the path itself \
             ({}), or ./{path} for a file of that name",
            {
                let before_query = rest.split('?').next().unwrap_or(rest);
                local_path("file", before_query).unwrap_or_else(|_| before_query.to_string())
            }
        )),
        None => Ok(()),
    }
}

/// A server URL with no database after the host and port.
const NO_DATABASE: &str = "the URL names no database: add /DBNAME after the host and port";

/// The database `verify` or `plot` (`who`) reads, and its name for messages: the sink `sink`
/// names (given as `from` says: `--sink ` or `PC_HOST_SINK=`), or else the SQLite file `db`.
/// A NATS sink is refused: there is nothing to read back.
///
/// # Errors
/// One line quoting the URL as typed, its password hidden.
pub fn database_to_read(
    sink: Option<&str>,
    from: &str,
    db: &std::path::Path,
    who: &str,
) -> Result<(SinkSpec, String), super::ConfigError> {
    let Some(url) = sink else {
        return Ok((SinkSpec::Sqlite(db.to_path_buf()), db.display().to_string()));
    };
    // The password hidden as in every other message, wherever the reason repeats it.
    let hidden = without_password(url);
    let refused = |why: &str| super::ConfigError(format!("{from}{hidden}: {why}"));
    let spec = parse_sink(url).map_err(|why| refused(&why.replace(url, &hidden)))?;
    let name = match &spec {
        SinkSpec::Sqlite(path) => path.display().to_string(),
        SinkSpec::Nats(_) => {
            return Err(refused(&format!(
                "{who} reads a database: give the database the stream is consumed into"
            )));
        }
        other => other.to_string(),
    };
    Ok((spec, name))
}

/// Parses the `--sink` URL.
pub fn parse_sink(url: &str) -> Result<SinkSpec, String> {
    let Some((scheme, rest)) = url.split_once(':') else {
        return Err("a sink URL needs a scheme, e.g. sqlite:pc-host.db".into());
    };
    match scheme {
        "sqlite" => {
            if rest.contains('?') {
                return Err("sqlite: takes no parameters (a `?` in the path is refused)".into());
            }
            let path = local_path("sqlite", rest)?;
            if path.is_empty() {
                return Err("sqlite: needs a database path, e.g. sqlite:pc-host.db".into());
            }
            check_sqlite_path(&path)?;
            Ok(SinkSpec::Sqlite(path.into()))
        }
        // The drivers read the options now, so that one they refuse is bad input (exit 2)
        // rather than a failure found when the run connects.
        "postgres" | "postgresql" => parse_postgres(url, rest),
        "mysql" | "mariadb" => parse_mysql(url, rest),
        "nats" => parse_nats_sink(rest).map(SinkSpec::Nats),
        _ if scheme != scheme.to_ascii_lowercase()
            && matches!(
                scheme.to_ascii_lowercase().as_str(),
                "sqlite" | "postgres" | "postgresql" | "mysql" | "mariadb" | "nats"
            ) =>
        {
            Err(format!(
                "unknown sink `{scheme}`: schemes are written in lower case (`{}:`)",
                scheme.to_ascii_lowercase()
            ))
        }
        _ => Err(format!(
            "unknown sink `{scheme}` (use sqlite:PATH, postgres://USER@HOST:PORT/DB, \
             mysql://USER@HOST:PORT/DB or nats://HOST:PORT/SUBJECT)"
        )),
    }
}

/// A `postgres://` sink URL (`rest`: after the scheme), checked as the driver will read it.
fn parse_postgres(url: &str, rest: &str) -> Result<SinkSpec, String> {
    let server = ServerUrl::parse(url, rest)?;
    let config = url.parse::<postgres::Config>().map_err(|e| {
        let cause = std::error::Error::source(&e).map(|c| format!(": {c}"));
        format!("not a usable URL: {e}{}", cause.unwrap_or_default())
    })?;
    // Without one the server picks the database named after the user (`postgres`,
    // its maintenance database, for the usual superuser): never where the tables go
    // by accident.
    if config.get_dbname().is_none_or(str::is_empty) {
        return Err(NO_DATABASE.into());
    }
    let named = config.get_dbname().unwrap_or_default();
    if let Some(path) = postgres_path(rest).filter(|p| !p.is_empty() && p != named) {
        return Err(format!(
            "the URL names database `{path}` in its path and `{named}` in dbname=: give \
             the database once"
        ));
    }
    if let Some(other) = user_named_twice(rest) {
        return Err(user_twice_message(&other));
    }
    if password_given_twice(rest) {
        return Err(PASSWORD_TWICE.into());
    }
    if let Some(key) = postgres_server_twice(rest) {
        return Err(format!(
            "the URL names the server in its host:port and again in {key}= (libpq \
             takes the parameter, the Rust driver adds it to the host:port's): give it \
             once"
        ));
    }
    Ok(SinkSpec::Postgres(server))
}

/// A `mysql://` (or `mariadb://`) sink URL (`rest`: after the scheme), checked as the driver
/// will read it.
fn parse_mysql(url: &str, rest: &str) -> Result<SinkSpec, String> {
    // The driver cuts a name at an escaped NUL: `db%00x` would write to `db`.
    if rest.to_ascii_lowercase().contains("%00") {
        return Err(
            "the URL holds `%00`, a NUL byte, which no user, password, host or \
             database name can contain"
                .into(),
        );
    }
    let server = ServerUrl::parse(url, rest)?;
    let opts = mysql::Opts::from_url(&format!("mysql:{rest}")).map_err(|e| match e {
        // Its own words wrap the parser's in a debug-like `URL ParseError { .. }`.
        mysql::UrlError::ParseError(e) => format!("not a usable URL: {e}"),
        e => e.to_string(),
    })?;
    if opts.get_db_name().is_none_or(str::is_empty) {
        return Err(NO_DATABASE.into());
    }
    let named = opts.get_db_name().unwrap_or_default();
    let query = rest.split_once('?').map_or("", |(_, q)| q);
    if let Some(key) = ["host", "port"].into_iter().find(|k| query_has(query, k)) {
        return Err(format!(
            "the URL names the server in its host:port and again in {key}= (the driver \
             takes the parameter, so the URL shown would name another server): give it \
             once"
        ));
    }
    if let Some(other) = user_named_twice(rest) {
        return Err(user_twice_message(&other));
    }
    if password_given_twice(rest) {
        return Err(PASSWORD_TWICE.into());
    }
    let path = mysql_path(rest).filter(|p| p != named);
    if path.as_ref().is_some_and(|p| !p.is_empty()) && query_has(query, "db_name") {
        return Err(
            "the URL names one database in its path and another in db_name= (the \
             driver takes the parameter): give it once"
                .into(),
        );
    }
    if let Some(path) = path {
        return Err(format!(
            "the URL's path `{path}` is not one database name (the server would be \
             given `{named}`): give /DBNAME alone after the host and port"
        ));
    }
    Ok(SinkSpec::Mysql(server))
}

/// The database a `postgres://` URL's path names (after the scheme: `//AUTHORITY/PATH?QUERY`),
/// percent-decoded, split as the driver splits it: the user and password end at the first
/// `@`, the host at the next `/` or `?`. `None` without a path.
fn postgres_path(rest: &str) -> Option<String> {
    let after = rest.strip_prefix("//").unwrap_or(rest);
    let after = after.split_once('@').map_or(after, |(_, host_on)| host_on);
    let path = &after[after.find(['/', '?'])?..];
    let path = path.strip_prefix('/')?;
    Some(percent_decoded(
        path.split_once('?').map_or(path, |(p, _)| p),
    ))
}

/// The query parameter (`host` or `port`) of a `postgres://` URL (after the scheme) that
/// names the server again when its host:port already does, split as [`postgres_path`] splits
/// it. libpq lets the parameter win; the Rust driver adds it to the host:port's (a second
/// host to try, or a second port for one host, which it refuses at connect time). `hostaddr`
/// pairs with the host (its address, the host's name kept for the server's certificate), so
/// it names no second server.
fn postgres_server_twice(rest: &str) -> Option<&'static str> {
    let (_, query) = userinfo_and_query(rest);
    ["host", "port"]
        .into_iter()
        .find(|key| query_has(query, key))
}

/// A server URL's (after the scheme) user and password before an `@` (`None` without one) and
/// its query (after the `?` that follows the host; empty without one). For a URL
/// [`ServerUrl::parse`] accepted, the user and password end at the last `@`, as both drivers
/// read it: PostgreSQL's has one at most, MySQL's none after a `/` or `?`.
fn userinfo_and_query(rest: &str) -> (Option<&str>, &str) {
    let after = rest.strip_prefix("//").unwrap_or(rest);
    let (userinfo, host_on) = match after.rsplit_once('@') {
        Some((userinfo, host_on)) => (Some(userinfo), host_on),
        None => (None, after),
    };
    let end = host_on.find(['/', '?']).unwrap_or(host_on.len());
    let query = host_on[end..].split_once('?').map_or("", |(_, q)| q);
    (userinfo, query)
}

/// Whether a server URL (after the scheme) gives a password both after the user (`user:pw@`)
/// and in `password=`: the drivers take one of them, and which is not for the URL's reader to
/// guess.
fn password_given_twice(rest: &str) -> bool {
    let (userinfo, query) = userinfo_and_query(rest);
    userinfo.is_some_and(|u| u.contains(':')) && query_has(query, "password")
}

/// Why a URL giving the password twice is refused (neither value quoted).
const PASSWORD_TWICE: &str =
    "the URL gives a password after the user and again in password=: give it once";

/// Why a URL naming user `other` in `user=`, and another before its `@`, is refused.
fn user_twice_message(other: &str) -> String {
    format!(
        "the URL names one user before its `@` and `{other}` in user= (the driver takes the \
         parameter, so the URL shown would name another user): give it once"
    )
}

/// The user a server URL (after the scheme) names in `user=` when it names another before an
/// `@` (the drivers take the parameter, so the URL shown would name another user); `None` when
/// it names one user, or none before the `@`.
fn user_named_twice(rest: &str) -> Option<String> {
    let (userinfo, query) = userinfo_and_query(rest);
    let userinfo = userinfo?;
    let user = percent_decoded(userinfo.split_once(':').map_or(userinfo, |(u, _)| u));
    let given = query_value(query, "user")?;
    (!user.is_empty() && given != user).then_some(given)
}

/// Whether `query` (a URL's, after its `?`) sets `key`, whose name may be percent-escaped
/// there: the drivers decode it (`%68ost` is `host`).
fn query_has(query: &str, key: &str) -> bool {
    query_value(query, key).is_some()
}

/// The value `query` (a URL's, after its `?`) gives `key` (the last one), names and values
/// percent-decoded as the drivers decode them.
fn query_value(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .rfind(|(k, _)| percent_decoded(k) == key)
        .map(|(_, v)| percent_decoded(v))
}

/// The path of a `mysql://` URL (after the scheme), percent-decoded, split as a URL is: the
/// authority ends at the first `/`, `?` or `#`, the path at the next `?` or `#`; one `/` at
/// its end is dropped. `None` without a path.
fn mysql_path(rest: &str) -> Option<String> {
    let after = rest.strip_prefix("//").unwrap_or(rest);
    let path = &after[after.find(['/', '?', '#'])?..];
    let path = path.strip_prefix('/')?;
    let path = path.split(['?', '#']).next().unwrap_or_default();
    Some(percent_decoded(path.strip_suffix('/').unwrap_or(path)))
}

/// `text` with each `%XX` (two hex digits) replaced by the byte it stands for, read as UTF-8
/// (lossily); any other `%` stays as it is.
fn percent_decoded(text: &str) -> String {
    String::from_utf8_lossy(&percent_decoded_bytes(text)).into_owned()
}

/// The bytes of `text` with each `%XX` (two hex digits) replaced by the byte it stands for;
/// any other `%` stays as it is.
fn percent_decoded_bytes(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// `//[USER[:PASSWORD]@]HOST[:PORT]/NAME?QUERY` (after `nats:`): the server, the name after
/// the slash (its percent-escapes decoded, as the user and password's are), and the query
/// (whose name values, `consumer=` and `stream=`, the caller decodes with [`nats_decoded`]:
/// the other values are words pc-host defines, read as written, as in a file source's URL). A `#` is refused: it would start
/// a fragment, which a NATS URL has no use for, and taking it into a name would make a
/// stream or consumer nobody meant.
fn parse_nats(rest: &str) -> Result<(NatsServer, String, &str), String> {
    let Some(after) = rest.strip_prefix("//") else {
        return Err("a NATS URL starts with nats://, e.g. nats://127.0.0.1:4222/NAME".into());
    };
    if after.contains('#') {
        return Err(
            "a NATS URL has no `#fragment`: write a `#` that is part of a name or value as %23"
                .into(),
        );
    }
    let (main, query) = after.split_once('?').unwrap_or((after, ""));
    let (authority, name) = main.split_once('/').unwrap_or((main, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    // Not quoted where the URL holds an `@`: the text taken for a port may be part of a
    // password holding a `/` or `?` (which ends the authority unless escaped).
    let not_a_port = |p: &str| {
        if after.contains('@') {
            "the URL's port is not a number in 1..=65535 (a user or password holding `/`, `?` \
             or `#` is written with %2F, %3F, %23)"
                .to_string()
        } else {
            format!("`{p}` is not a port (1..=65535)")
        }
    };
    // An IPv6 address in brackets (`[::1]:4222`), its port after them; unbracketed, its
    // colons could not be told from the port's.
    let (host, port_text) = match hostport.strip_prefix('[') {
        Some(inside) => match inside.split_once(']') {
            Some((v6, after)) if v6.parse::<std::net::Ipv6Addr>().is_ok() => {
                match after.strip_prefix(':') {
                    Some(p) => (&hostport[..v6.len() + 2], Some(p)),
                    None if after.is_empty() => (hostport, None),
                    None => return Err(format!("`{hostport}` is not a host and port")),
                }
            }
            Some((v6, _)) if v6.contains('%') => {
                return Err(format!(
                    "`{hostport}`: an IPv6 zone id (`%25...`) is not supported; give the \
                     address alone"
                ));
            }
            _ => {
                return Err(format!(
                    "`{hostport}` is not an IPv6 address in brackets (e.g. \
                     nats://[::1]:4222/NAME)"
                ));
            }
        },
        None if hostport.matches(':').count() > 1 => {
            return Err("an IPv6 host is written in brackets, e.g. nats://[::1]:4222/NAME".into());
        }
        None => match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        },
    };
    let port = match port_text {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| not_a_port(p))?,
        None => 4222,
    };
    if host.is_empty() {
        return Err("the URL names no host".into());
    }
    let (user, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((u, p)) => (Some(u), Some(p)),
            None => (Some(u), None),
        },
        None => (None, None),
    };
    // Shown as written (its escapes kept), so that it reads back the same.
    let shown_user = match (user, password) {
        (Some(u), Some(_)) => format!("{u}:***@"),
        (Some(u), None) => format!("{u}@"),
        _ => String::new(),
    };
    let server = NatsServer {
        addr: format!("{host}:{port}"),
        user: user.map(|u| nats_decoded("user", u)).transpose()?,
        password: password.map(|p| nats_decoded("password", p)).transpose()?,
        shown: format!("nats://{shown_user}{host}:{port}"),
    };
    Ok((server, nats_decoded("name", name)?, query))
}

/// A part of a NATS URL with its percent-escapes decoded (`%2D` is `-`, `%23` is `#`), as a
/// URL's readers decode them; refused if the bytes they stand for are not UTF-8 (a JetStream
/// name is text), or, in a user or password, if they hold a control character. The
/// password's value is not quoted in a refusal.
fn nats_decoded(what: &str, text: &str) -> Result<String, String> {
    let decoded = String::from_utf8(percent_decoded_bytes(text)).map_err(|_| match what {
        "password" => "the URL's password holds percent-escapes that are not UTF-8".into(),
        _ => format!("`{text}`: the {what}'s percent-escapes are not UTF-8"),
    })?;
    let credential = matches!(what, "user" | "password");
    if credential && decoded.chars().any(char::is_control) {
        return Err(format!(
            "the URL's {what} holds a control character (a percent-escape such as %0A)"
        ));
    }
    Ok(decoded)
}

/// `name` as written in a NATS URL that reads back as `name`: `%`, `?`, `&` and `#` escaped.
fn nats_escaped(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3F"),
            '&' => out.push_str("%26"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

/// The longest stream or consumer name JetStream accepts, in bytes (the server's
/// `JSMaxNameLen`).
const JETSTREAM_NAME_MAX: usize = 255;

/// A stream, consumer or subject name JetStream accepts: not empty, no whitespace, and (for a
/// stream or consumer name) none of `.`, `*`, `>`, `/`, `\\` and at most
/// [`JETSTREAM_NAME_MAX`] bytes.
fn check_name(what: &str, name: &str, subject: bool) -> Result<(), String> {
    let bad = |c: char| {
        c.is_whitespace()
            || c.is_control()
            || (!subject && matches!(c, '.' | '*' | '>' | '/' | '\\'))
    };
    if name.is_empty() {
        return Err(format!("the URL names no {what}"));
    }
    if name.chars().any(bad)
        || (subject && (name.starts_with('.') || name.ends_with('.') || name.contains("..")))
    {
        return Err(format!("`{name}` is not a usable {what} name"));
    }
    if !subject && name.len() > JETSTREAM_NAME_MAX {
        return Err(format!(
            "the {what} name is {} bytes long; JetStream takes at most {JETSTREAM_NAME_MAX}",
            name.len()
        ));
    }
    Ok(())
}

fn parse_nats_source(rest: &str) -> Result<NatsSource, String> {
    let (server, stream, query) = parse_nats(rest)?;
    check_name("stream", &stream, false)?;
    let mut source = NatsSource {
        server,
        stream,
        consumer: "pc-host".into(),
        until_empty: false,
        ack_wait: std::time::Duration::from_secs(30),
        lane: None,
    };
    for (key, value) in parse_query(query)? {
        match key {
            "consumer" => {
                let value = nats_decoded(key, value)?;
                check_name("consumer", &value, false)?;
                source.consumer = value;
            }
            "until" if value == "empty" => source.until_empty = true,
            "until" => return Err(format!("`until={value}`: the only choice is until=empty")),
            "ack_wait" => {
                let d = humantime::parse_duration(value)
                    .map_err(|e| format!("`ack_wait={value}`: {e} (e.g. ack_wait=30s)"))?;
                if d < std::time::Duration::from_millis(100)
                    || d > std::time::Duration::from_secs(86_400)
                {
                    return Err(format!("`ack_wait={value}`: give 100ms to 24h"));
                }
                source.ack_wait = d;
            }
            "lane" => {
                super::lanes::check_name(value)?;
                source.lane = Some(value.to_string());
            }
            _ => {
                return Err(format!(
                    "unknown parameter `{key}` (known: consumer, until, ack_wait, lane)"
                ));
            }
        }
    }
    Ok(source)
}

fn parse_nats_sink(rest: &str) -> Result<NatsSink, String> {
    let (server, subject, query) = parse_nats(rest)?;
    check_name("subject", &subject, true)?;
    if subject.contains(['*', '>']) {
        return Err(format!(
            "`{subject}`: records are published to one subject, not a wildcard"
        ));
    }
    let mut given = None;
    for (key, value) in parse_query(query)? {
        match key {
            "stream" => {
                let value = nats_decoded(key, value)?;
                check_name("stream", &value, false)?;
                given = Some(value);
            }
            _ => return Err(format!("unknown parameter `{key}` (known: stream)")),
        }
    }
    if let Some(stream) = given {
        return Ok(NatsSink {
            server,
            subject,
            stream,
        });
    }
    let stream = subject.replace(['.', '*', '>'], "_");
    if stream.contains(['/', '\\']) {
        return Err(format!(
            "the stream named after the subject would be `{stream}`, and JetStream takes no \
             `/` or `\\` in a stream name: name one with ?stream=NAME"
        ));
    }
    if stream.len() > JETSTREAM_NAME_MAX {
        return Err(format!(
            "the stream named after the subject would be {} bytes long; JetStream takes at most \
             {JETSTREAM_NAME_MAX}: name a shorter one with ?stream=NAME",
            stream.len()
        ));
    }
    Ok(NatsSink {
        server,
        subject,
        stream,
    })
}

/// Whether `url` names query parameter `key` itself, as opposed to leaving it to a default
/// (`verify --source` tells a format given from the default so; the MySQL sink,
/// `prefer_socket`). Read as `parse_source` reads a query; `false` for a query it would
/// refuse.
pub fn names_parameter(url: &str, key: &str) -> bool {
    let query = url.split_once('?').map_or("", |(_, query)| query);
    parse_query(query).is_ok_and(|pairs| pairs.iter().any(|(k, _)| *k == key))
}

/// `key=value` pairs; a key given twice is refused (which one was meant is not ours to guess).
fn parse_query(query: &str) -> Result<Vec<(&str, &str)>, String> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for p in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = p
            .split_once('=')
            .ok_or_else(|| format!("parameter `{p}` needs a value (`{p}=...`)"))?;
        if pairs.iter().any(|(k, _)| *k == key) {
            return Err(format!("parameter `{key}` is given twice: give it once"));
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The database a server URL names is the one written to: a PostgreSQL URL whose path and
    /// `dbname=` disagree, or a MySQL path of more than one name (the driver took the first and
    /// dropped the rest), is refused; the same name twice, or percent-encoded, is accepted.
    #[test]
    fn a_server_url_names_exactly_the_database_it_writes_to() {
        let parsed = |url: &str| parse_sink(url).map(|_| ());
        assert_eq!(
            parsed("postgres://u@h:5432/one?dbname=two"),
            Err(
                "the URL names database `one` in its path and `two` in dbname=: give the \
                 database once"
                    .into()
            )
        );
        for same in [
            "postgres://u@h:5432/one?dbname=one",
            "postgres://u@h:5432/?dbname=one",
            "postgres://u@h:5432?dbname=one",
            "postgres://u:p/w@h:5432/o%6Ee",
            "postgres://u:a/b?c@h:5432/one",
            "postgresql://u@h/one",
        ] {
            assert_eq!(parsed(same), Ok(()), "{same}");
        }
        assert_eq!(
            parsed("mysql://u@h:3306/one/two"),
            Err(
                "the URL's path `one/two` is not one database name (the server would be given \
                 `one`): give /DBNAME alone after the host and port"
                    .into()
            )
        );
        // The server named twice, in host:port and in the query: refused.
        for twice in [
            "postgres://u@h:5432/one?host=h&port=1",
            "postgres://u@h:1/one?port=5432",
        ] {
            assert!(
                parsed(twice).is_err_and(|e| e.contains("names the server in its host:port")),
                "{twice}"
            );
        }
        // The driver decodes a parameter's name: an escaped one names the server too.
        for escaped in [
            "postgres://u@h:5432/one?%68ost=other",
            "postgres://u@h:5432/one?%70ort=1",
        ] {
            assert!(
                parsed(escaped).is_err_and(|e| e.contains("names the server in its host:port")),
                "{escaped}"
            );
        }
        // Two users named (the driver takes user=, the URL shown names u): refused; one user,
        // named once or twice the same, or none before the `@`: taken.
        for twice in [
            "postgres://u@h:5432/one?user=other",
            "postgres://u:pw@h:5432/one?%75ser=other",
            "mysql://u@h:3306/one?user=other",
        ] {
            assert!(
                parsed(twice).is_err_and(|e| e.contains("and `other` in user=")),
                "{twice}"
            );
        }
        for once in [
            "postgres://h:5432/one?user=u",
            "postgres://u@h:5432/one?user=u",
            "postgres://:pw@h:5432/one?user=u",
            "mysql://u@h:3306/one?user=u",
        ] {
            assert_eq!(parsed(once), Ok(()), "{once}");
        }
        // MySQL's driver takes host= and port= over the host:port too.
        for twice in [
            "mysql://u@h:3306/one?host=other",
            "mysql://u@h:3306/one?%70ort=1",
        ] {
            assert!(
                parsed(twice).is_err_and(|e| e.contains("names the server in its host:port")),
                "{twice}"
            );
        }
        // An escaped NUL, which the MySQL driver cuts the name at (`one%00x` is `one`).
        for nul in [
            "mysql://u@h:3306/one%00x",
            "mysql://u%00x@h:3306/one",
            "mariadb://u@h:3306/%00",
        ] {
            assert!(
                parsed(nul).is_err_and(|e| e.contains("holds `%00`, a NUL byte")),
                "{nul}"
            );
        }
        assert_eq!(parsed("postgres://u@h:5432/one?sslmode=disable"), Ok(()));
        assert_eq!(
            parsed("postgres://u@h/one?hostaddr=127.0.0.1"),
            Ok(()),
            "h's address"
        );
        assert_eq!(parsed("mysql://u@h:3306/one"), Ok(()));
        assert_eq!(parsed("mysql://u@h:3306/one/"), Ok(()), "a `/` at the end");
        assert_eq!(percent_decoded("a%2Fb%+1%zz%4"), "a/b%+1%zz%4");
        assert_eq!(parsed("mariadb://u@h:3306/one?prefer_socket=false"), Ok(()));
        assert_eq!(
            parsed("mysql://u@h:3306/one?db_name=two"),
            Err(
                "the URL names one database in its path and another in db_name= (the driver \
                 takes the parameter): give it once"
                    .into()
            )
        );
        assert_eq!(
            parsed("mysql://u@h:3306/one?db_name=one"),
            Ok(()),
            "the same one"
        );
        assert_eq!(
            parsed("POSTGRES://u@h/one"),
            Err("unknown sink `POSTGRES`: schemes are written in lower case (`postgres:`)".into())
        );
    }

    #[test]
    fn a_source_url_names_a_parameter_only_as_a_key_of_its_query() {
        assert!(names_parameter(
            "file:a.log?follow=true&format=jsonl",
            "format"
        ));
        assert!(names_parameter("stdin?format=text", "format"));
        assert!(!names_parameter("file:a.log", "format"));
        assert!(!names_parameter("file:a.log?follow=true", "format"));
        assert!(
            !names_parameter("file:a.log?lane=format", "format"),
            "a value is no key"
        );
        assert!(
            !names_parameter("file:format.log", "format"),
            "nor is the path"
        );
    }

    #[test]
    fn source_urls_parse_with_their_parameters() {
        assert_eq!(parse_source("generate"), Ok(SourceSpec::Generate));
        assert_eq!(
            parse_source("-"),
            Ok(SourceSpec::Stdin {
                format: Format::Text,
                lane: None
            })
        );
        assert_eq!(
            parse_source("stdin?format=jsonl"),
            Ok(SourceSpec::Stdin {
                format: Format::Jsonl,
                lane: None
            })
        );
        assert_eq!(
            parse_source("file:///var/log/a.log?follow=true&format=jsonl"),
            Ok(SourceSpec::File {
                path: "/var/log/a.log".into(),
                follow: true,
                rotate_wait: DEFAULT_ROTATE_WAIT,
                format: Format::Jsonl,
                lane: None
            })
        );
        assert_eq!(
            parse_source("file:rel/a.log"),
            Ok(SourceSpec::File {
                path: "rel/a.log".into(),
                follow: false,
                rotate_wait: DEFAULT_ROTATE_WAIT,
                format: Format::Text,
                lane: None
            })
        );
        let Ok(spec) = parse_source("file:a.log?lane=high") else {
            panic!("not parsed")
        };
        assert_eq!(spec.lane(), Some("high"));
        assert_eq!(
            spec.to_string(),
            "file:a.log?follow=false&format=text&lane=high"
        );
        let Ok(SourceSpec::Nats(n)) = parse_source("nats://h/S?lane=low") else {
            panic!("not parsed")
        };
        assert_eq!(n.lane.as_deref(), Some("low"));
    }

    #[test]
    fn a_followed_files_rotate_wait_is_one_second_unless_given_and_written_back() {
        let wait = |url: &str| match parse_source(url) {
            Ok(SourceSpec::File { rotate_wait, .. }) => rotate_wait,
            other => panic!("{url}: {other:?}"),
        };
        assert_eq!(wait("file:a?follow=true"), Duration::from_secs(1));
        assert_eq!(wait("file:a?follow=true&rotate_wait=0s"), Duration::ZERO);
        for (given, written) in [("500ms", "500ms"), ("1m30s", "90s"), ("1s 500ms", "1500ms")] {
            let spec = parse_source(&format!("file:/a?follow=true&rotate_wait={given}")).unwrap();
            let url = format!("file:/a?follow=true&rotate_wait={written}&format=text");
            assert_eq!(spec.to_string(), url);
            assert_eq!(parse_source(&spec.to_string()), Ok(spec));
        }
        // The default is not written: the URL reads as it did before the parameter.
        let spec = parse_source("file:/a?follow=true&rotate_wait=1s").unwrap();
        assert_eq!(spec.to_string(), "file:/a?follow=true&format=text");
    }

    #[test]
    fn bad_source_urls_say_what_is_wrong() {
        for (url, needle) in [
            ("kafka://x", "unknown source `kafka`"),
            ("kafka://x?consumer=w", "unknown source `kafka`"),
            (
                "NATS://h:4222/S?consumer=w",
                "unknown source `NATS`: schemes are written in lower case (`nats:`)",
            ),
            (
                "File:a.log?follow=true",
                "unknown source `File`: schemes are written in lower case (`file:`)",
            ),
            ("STDIN", "sources are written in lower case (`stdin`)"),
            (
                "Generate:x",
                "sources are written in lower case (`generate`)",
            ),
            ("stdin:", "stdin takes no `:`"),
            ("generate:x", "generate takes no `:`"),
            ("file:", "needs a path"),
            ("file:a?format=csv", "format=csv"),
            ("file:a?follow=maybe", "follow=maybe"),
            ("file:a?color=red", "unknown parameter `color`"),
            ("file:a?follow", "needs a value"),
            ("stdin?follow=true", "file: sources only"),
            ("stdin?rotate_wait=1s", "file: sources only"),
            (
                "file:a?follow=true&rotate_wait=soon",
                "`rotate_wait=soon` is not a duration",
            ),
            ("file:a?follow=true&rotate_wait=2h", "give 0s to 1h"),
            (
                "file:a?rotate_wait=5s",
                "rotate_wait= applies with follow=true",
            ),
            ("generate?format=text", "no parameters"),
            ("generate?lane=high", "no parameters"),
            ("file:a?lane=", "needs a name"),
            ("file:a?lane=a.b", "not a usable lane name"),
        ] {
            let e = parse_source(url).unwrap_err();
            assert!(e.contains(needle), "{url}: {e}");
        }
    }

    #[test]
    fn sink_urls_parse_and_unknown_schemes_are_refused() {
        assert_eq!(
            parse_sink("sqlite:x.db"),
            Ok(SinkSpec::Sqlite("x.db".into()))
        );
        assert_eq!(
            parse_sink("sqlite:///tmp/x.db"),
            Ok(SinkSpec::Sqlite("/tmp/x.db".into()))
        );
        assert!(
            parse_sink("mongodb://h/db")
                .unwrap_err()
                .contains("unknown sink `mongodb`")
        );
        assert!(parse_sink("x.db").unwrap_err().contains("needs a scheme"));
    }

    #[test]
    fn file_and_sqlite_urls_with_a_host_other_than_localhost_are_refused() {
        for (url, path) in [
            ("file:///tmp/a.log", "/tmp/a.log"),
            ("file://localhost/tmp/a.log", "/tmp/a.log"),
            ("file:/tmp/a.log", "/tmp/a.log"),
            ("file:tmp/a.log", "tmp/a.log"),
        ] {
            let want = SourceSpec::File {
                path: path.into(),
                follow: false,
                rotate_wait: DEFAULT_ROTATE_WAIT,
                format: Format::Text,
                lane: None,
            };
            assert_eq!(parse_source(url), Ok(want), "{url}");
        }
        assert_eq!(
            parse_sink("sqlite://localhost/tmp/x.db"),
            Ok(SinkSpec::Sqlite("/tmp/x.db".into()))
        );
        for (url, needle) in [
            ("file://tmp/a.log", "file://tmp/... names the host `tmp`"),
            ("file://a.log", "or file:RELATIVE/PATH for a.log here"),
            ("sqlite://x.db", "sqlite://x.db/... names the host `x.db`"),
        ] {
            let e = match url.split_once(':') {
                Some(("file", _)) => parse_source(url).unwrap_err(),
                _ => parse_sink(url).unwrap_err(),
            };
            assert!(e.contains(needle), "{url}: {e}");
        }
        assert!(
            parse_source("file://")
                .unwrap_err()
                .contains("needs a path")
        );
    }

    /// A sink URL given where a path goes (`--db sqlite:t.db`) is refused, not made a file of
    /// that name; `./` names such a file.
    #[test]
    fn a_sink_url_given_as_a_database_path_is_refused() {
        for path in ["sqlite:t.db", "postgres://pc@db1/pc", "mysql:x.db"] {
            let e = check_sqlite_path(path).unwrap_err();
            assert!(
                e.contains("URL, not a file path: give it as --sink"),
                "{path}: {e}"
            );
        }
        assert_eq!(check_sqlite_path("./sqlite:t.db"), Ok(()));
        assert_eq!(check_sqlite_path("a:b.db"), Ok(()));
    }

    /// SQLite's name for a database in memory is refused as a path; a file of that name can
    /// still be named.
    #[test]
    fn an_in_memory_database_is_refused() {
        let e = parse_sink("sqlite::memory:").unwrap_err();
        assert!(e.contains("SQLite's in-memory database"), "{e}");
        assert_eq!(
            parse_sink("sqlite:./:memory:"),
            Ok(SinkSpec::Sqlite("./:memory:".into()))
        );
    }

    /// The `//` forms are URIs, as `pathlib`'s `as_uri()` and file managers write them: their
    /// percent-escapes are decoded (a `sqlite:` one made a database named `a%20b.db`). The
    /// short forms are paths as they are.
    #[test]
    fn percent_escapes_in_file_and_sqlite_uris_are_decoded() {
        let file = |path: &str| SourceSpec::File {
            path: path.into(),
            follow: true,
            rotate_wait: DEFAULT_ROTATE_WAIT,
            format: Format::Text,
            lane: None,
        };
        assert_eq!(
            parse_source("file:///tmp/sp%20ace%3F.log?follow=true"),
            Ok(file("/tmp/sp ace?.log"))
        );
        assert_eq!(
            parse_source("file:sp%20ace.log?follow=true"),
            Ok(file("sp%20ace.log"))
        );
        assert_eq!(
            parse_sink("sqlite:///tmp/a%20b%C3%A9.db"),
            Ok(SinkSpec::Sqlite("/tmp/a bé.db".into()))
        );
        assert_eq!(
            parse_sink("sqlite:///tmp/100%.db"),
            Ok(SinkSpec::Sqlite("/tmp/100%.db".into()))
        );
        let e = parse_sink("sqlite:///tmp/%FF.db").unwrap_err();
        assert!(e.contains("not UTF-8; give a link"), "{e}");
        for (url, escape) in [("file:///tmp/a%2fb", "%2F"), ("file:///tmp/a%00", "%00")] {
            let e = parse_source(url).unwrap_err();
            assert!(
                e.contains(&format!("`{escape}` is not allowed")),
                "{url}: {e}"
            );
        }
    }

    /// The `--source` a message suggests pastes into a shell and names the same file.
    #[test]
    fn a_suggested_source_flag_is_quoted_for_the_shell_and_parses_back() {
        assert_eq!(
            source_flag("/var/log/a.log".as_ref()),
            "--source file:/var/log/a.log"
        );
        assert_eq!(
            source_flag("/tmp/it's a?.log".as_ref()),
            r"--source 'file:///tmp/it'\''s a%3F.log'"
        );
        assert_eq!(
            parse_source("file:///tmp/it's a%3F.log"),
            parse_source(&format!(
                "file:{}",
                written_path("/tmp/it's a?.log".as_ref())
            ))
        );
    }

    /// A source or sink is recorded as its URL (`runs.config`) and read back from there
    /// (`verify` finds a file's format so): a path with a `?` or a `%` reads back the same.
    #[test]
    fn a_file_or_sqlite_url_written_out_parses_back_to_the_same_path() {
        for path in ["/tmp/a?b%3F 100%.log", "/tmp/plain.log", "rel/100%.log"] {
            let spec = SourceSpec::File {
                path: path.into(),
                follow: false,
                rotate_wait: DEFAULT_ROTATE_WAIT,
                format: Format::Jsonl,
                lane: None,
            };
            assert_eq!(parse_source(&spec.to_string()), Ok(spec.clone()), "{spec}");
            let sink = SinkSpec::Sqlite(path.replace(".log", ".db").into());
            assert_eq!(parse_sink(&sink.to_string()), Ok(sink.clone()), "{sink}");
        }
        // A relative path with a `?` is written from the current directory: the same file.
        let sink = SinkSpec::Sqlite("a?mode=ro.db".into());
        let here = std::env::current_dir().unwrap().join("a?mode=ro.db");
        assert_eq!(
            parse_sink(&sink.to_string()),
            Ok(SinkSpec::Sqlite(here)),
            "{sink}"
        );
    }

    #[test]
    fn nats_urls_parse_with_defaults_and_hide_their_password() {
        let Ok(SourceSpec::Nats(n)) = parse_source("nats://127.0.0.1:4222/ORDERS") else {
            panic!("not parsed")
        };
        assert_eq!(n.server.addr, "127.0.0.1:4222");
        assert_eq!(
            (n.stream.as_str(), n.consumer.as_str()),
            ("ORDERS", "pc-host")
        );
        assert!(!n.until_empty);
        let Ok(SourceSpec::Nats(n)) =
            parse_source("nats://u:pw@nats.local/S?consumer=c1&until=empty&ack_wait=2s")
        else {
            panic!("not parsed")
        };
        assert_eq!(n.server.addr, "nats.local:4222");
        assert_eq!(n.server.shown, "nats://u:***@nats.local:4222");
        assert_eq!(n.server.password.as_deref(), Some("pw"));
        assert!(n.until_empty);
        assert_eq!(n.ack_wait, std::time::Duration::from_secs(2));
        let Ok(SinkSpec::Nats(s)) = parse_sink("nats://127.0.0.1:4222/pc.records") else {
            panic!("not parsed")
        };
        assert_eq!(
            (s.subject.as_str(), s.stream.as_str()),
            ("pc.records", "pc_records")
        );
        let Ok(SinkSpec::Nats(s)) = parse_sink("nats://h:1/a?stream=PC") else {
            panic!("not parsed")
        };
        assert_eq!(s.stream, "PC");
    }

    #[test]
    fn bad_nats_urls_say_what_is_wrong() {
        for (url, needle) in [
            ("nats:h/S", "starts with nats://"),
            ("nats://h:0/S", "not a port"),
            ("nats://:4222/S", "no host"),
            ("nats://h:4222", "no stream"),
            ("nats://h/S.x", "not a usable stream"),
            ("nats://h/S?consumer=a.b", "not a usable consumer"),
            ("nats://h/S?until=later", "until=empty"),
            ("nats://h/S?ack_wait=soon", "ack_wait=soon"),
            ("nats://h/S?ack_wait=1ms", "100ms to 24h"),
            ("nats://h/S?color=red", "unknown parameter `color`"),
        ] {
            let e = parse_source(url).unwrap_err();
            assert!(e.contains(needle), "{url}: {e}");
        }
        for (url, needle) in [
            ("nats://h/", "no subject"),
            ("nats://h/a.*", "wildcard"),
            ("nats://h/a..b", "not a usable subject"),
            ("nats://h/a?stream=x.y", "not a usable stream"),
            ("nats://h/a?consumer=x", "unknown parameter `consumer`"),
        ] {
            let e = parse_sink(url).unwrap_err();
            assert!(e.contains(needle), "{url}: {e}");
        }
    }

    #[test]
    fn a_nats_url_with_a_fragment_is_refused_not_taken_into_a_name() {
        for url in [
            "nats://h/S?consumer=worker#frag",
            "nats://h/S#frag",
            "nats://u:p#w@h/S",
        ] {
            let e = parse_source(url).unwrap_err();
            assert!(
                e.contains("no `#fragment`") && e.contains("%23"),
                "{url}: {e}"
            );
        }
        let e = parse_sink("nats://h/a.b?stream=S#x").unwrap_err();
        assert!(e.contains("no `#fragment`"), "{e}");
    }

    #[test]
    fn a_nats_urls_names_and_credentials_are_percent_decoded_and_shown_re_escaped() {
        let Ok(SourceSpec::Nats(n)) =
            parse_source("nats://u%40corp:p%3Aw@h/my%2Dstream?consumer=w%231")
        else {
            panic!("not parsed")
        };
        assert_eq!(
            (n.stream.as_str(), n.consumer.as_str()),
            ("my-stream", "w#1")
        );
        assert_eq!(n.server.user.as_deref(), Some("u@corp"));
        assert_eq!(n.server.password.as_deref(), Some("p:w"));
        assert_eq!(n.server.shown, "nats://u%40corp:***@h:4222");
        let shown = SourceSpec::Nats(n.clone()).to_string();
        assert_eq!(shown, "nats://u%40corp:***@h:4222/my-stream?consumer=w%231");
        let Ok(SinkSpec::Nats(s)) = parse_sink("nats://h/a%2Eb?stream=S%25%3F%26") else {
            panic!("not parsed")
        };
        assert_eq!((s.subject.as_str(), s.stream.as_str()), ("a.b", "S%?&"));
        let shown = SinkSpec::Nats(s.clone()).to_string();
        assert_eq!(shown, "nats://h:4222/a.b?stream=S%25%3F%26");
        let Ok(SinkSpec::Nats(again)) = parse_sink(&shown) else {
            panic!("{shown} does not read back")
        };
        assert_eq!(again.stream, s.stream);
        // An escape for a character a name may not hold is refused like the character.
        let e = parse_source("nats://h/a%2Fb").unwrap_err();
        assert!(e.contains("`a/b` is not a usable stream name"), "{e}");
        let e = parse_source("nats://h/S?consumer=%FF").unwrap_err();
        assert!(e.contains("percent-escapes are not UTF-8"), "{e}");
        let e = parse_source("nats://u:%FF@h/S").unwrap_err();
        assert!(e.contains("password") && !e.contains("%FF"), "{e}");
        let e = parse_source("nats://u%0D%0A:p@h/S").unwrap_err();
        assert!(e.contains("user holds a control character"), "{e}");
        // Only names are decoded: other values are pc-host's words, read as written.
        let e = parse_source("nats://h/S?lane=%68igh").unwrap_err();
        assert!(e.contains("%68igh"), "{e}");
        let e = parse_source("nats://h/S?color=%FF").unwrap_err();
        assert!(e.contains("unknown parameter `color`"), "{e}");
    }

    #[test]
    fn an_ipv6_nats_host_is_read_in_brackets_and_refused_without_them() {
        for (url, addr) in [
            ("nats://[::1]/S", "[::1]:4222"),
            ("nats://u:p@[::1]:4223/S", "[::1]:4223"),
        ] {
            let Ok(SourceSpec::Nats(n)) = parse_source(url) else {
                panic!("{url} not parsed")
            };
            assert_eq!(n.server.addr, addr, "{url}");
        }
        for (url, needle) in [
            ("nats://::1:4222/S", "written in brackets"),
            ("nats://[::1/S", "`[::1` is not an IPv6 address in brackets"),
            ("nats://[h]:4222/S", "not an IPv6 address in brackets"),
            ("nats://[::1]x/S", "not a host and port"),
            ("nats://[::1]:0/S", "`0` is not a port"),
            ("nats://[fe80::1%25eth0]/S", "zone id"),
        ] {
            let e = parse_source(url).unwrap_err();
            assert!(e.contains(needle), "{url}: {e}");
        }
    }

    /// A server URL the driver would read otherwise than it is shown is refused before
    /// anything connects: a fragment in a MySQL URL (the driver drops it), a second `@` in a
    /// PostgreSQL one (the driver ends the password at the first), a password given twice
    /// (the driver takes one).
    #[test]
    fn a_server_url_the_drivers_would_read_otherwise_is_refused() {
        let e = parse_sink("postgres://postgres:p@ss@127.0.0.1:5432/test").unwrap_err();
        assert!(e.contains("more than one `@`") && e.contains("%40"), "{e}");
        assert!(!e.contains("ss@"), "{e}");
        let e = parse_sink("postgres://u@h/test?application_name=a@b").unwrap_err();
        assert!(e.contains("more than one `@`"), "{e}");
        // An `@` after a `/` or `?`: the drivers would read another user, host or database.
        for url in [
            "postgres://localhost/test?options=a@b/test",
            "postgres://localhost:5432/test?options=a@b",
            "mysql://root:/s3cret@h/db",
            "mysql://root:?s3cret@h/db",
            "mysql://root@h/db?x=a@b",
        ] {
            let e = parse_sink(url).unwrap_err();
            assert!(e.contains("`@` after a `/` or `?`"), "{url}: {e}");
            assert!(!e.contains("s3cret"), "{url}: {e}");
        }
        // PostgreSQL: a password may hold a `/` or `?`, as its driver reads them.
        assert!(parse_sink("postgres://u:p/w?x@h/test").is_ok());
        // MySQL: the user and password end at the last `@`, as its driver reads them.
        let e = parse_sink("mysql://app@corp:pw@h/db?password=x").unwrap_err();
        assert_eq!(e, PASSWORD_TWICE);
        let e = parse_sink("mysql://app@corp@h/db?user=app").unwrap_err();
        assert!(e.contains("`app` in user="), "{e}");
        // The MySQL driver takes the last `@` before the host: an `@` in its password is read
        // as written.
        assert!(parse_sink("mysql://root:p@ss@127.0.0.1:3306/test").is_ok());
        let e = parse_sink("mysql://root:p@ss#w@127.0.0.1:3306/test").unwrap_err();
        assert!(e.contains("no `#fragment`"), "{e}");
        // PostgreSQL's driver reads a `#` as it is.
        assert!(parse_sink("postgres://u:p#w@h/test").is_ok());
        for url in [
            "postgres://u:a@h/test?password=b",
            "mysql://u:a@h/test?%70assword=b",
        ] {
            let e = parse_sink(url).unwrap_err();
            assert_eq!(e, PASSWORD_TWICE, "{url}");
        }
        assert!(parse_sink("postgres://u@[::1]/test").is_ok());
        assert!(parse_sink("mysql://root@[::1]:3307/test").is_ok());
        let e = parse_sink("mysql://root@[::1/test").unwrap_err();
        assert!(e.starts_with("not a usable URL: "), "{e}");
    }

    #[test]
    fn a_hash_in_a_file_url_is_part_of_the_path() {
        for url in ["file:///tmp/h#x.log", "file:/tmp/h#x.log"] {
            let Ok(SourceSpec::File { path, .. }) = parse_source(url) else {
                panic!("{url} not parsed")
            };
            assert_eq!(path, std::path::Path::new("/tmp/h#x.log"), "{url}");
        }
    }

    #[test]
    fn a_path_starting_with_two_slashes_is_written_so_that_it_reads_back() {
        let path = std::path::Path::new("//tmp/my app.log");
        let flag = source_flag(path);
        let url = flag.trim_start_matches("--source ").trim_matches('\'');
        let Ok(SourceSpec::File { path: back, .. }) = parse_source(url) else {
            panic!("{url} not read back")
        };
        assert_eq!(back, path, "{url}");
    }

    #[test]
    fn a_password_holding_a_slash_or_question_mark_is_not_quoted_as_a_port() {
        for url in ["nats://u:s3kr/1t@h/S", "nats://u:s3kr?1t@h/S"] {
            let e = parse_source(url).unwrap_err();
            assert!(!e.contains("s3kr"), "{url}: {e}");
            assert!(e.contains("%2F, %3F"), "{url}: {e}");
        }
        let e = parse_source("nats://h:x/S").unwrap_err();
        assert!(e.contains("`x` is not a port"), "{e}");
    }

    #[test]
    fn jetstream_names_longer_than_the_servers_255_bytes_are_refused_before_connecting() {
        let fits = "s".repeat(255);
        let long = "s".repeat(256);
        assert!(parse_source(&format!("nats://h/{fits}?consumer={fits}")).is_ok());
        assert!(parse_sink(&format!("nats://h/a?stream={fits}")).is_ok());
        assert!(parse_sink(&format!("nats://h/{fits}")).is_ok());
        for url in [
            format!("nats://h/{long}"),
            format!("nats://h/S?consumer={long}"),
        ] {
            let e = parse_source(&url).unwrap_err();
            assert!(
                e.contains("256 bytes long; JetStream takes at most 255"),
                "{e}"
            );
        }
        let e = parse_sink(&format!("nats://h/a?stream={long}")).unwrap_err();
        assert!(
            e.contains("256 bytes long; JetStream takes at most 255"),
            "{e}"
        );
        let e = parse_sink(&format!("nats://h/a.{long}")).unwrap_err();
        assert!(
            e.contains("named after the subject would be 258 bytes"),
            "{e}"
        );
        assert!(e.contains("?stream=NAME"), "{e}");
    }

    #[test]
    fn a_stream_named_after_a_subject_with_a_slash_is_refused_before_connecting() {
        for subject in ["orders.x/y", "orders\\y"] {
            let e = parse_sink(&format!("nats://h/{subject}")).unwrap_err();
            assert!(e.contains("takes no `/` or `\\`"), "{subject}: {e}");
            assert!(e.contains("?stream=NAME"), "{subject}: {e}");
            let named = parse_sink(&format!("nats://h/{subject}?stream=ORDERS"));
            assert!(named.is_ok(), "{subject} with a stream named: {named:?}");
        }
    }

    #[test]
    fn server_urls_parse_and_hide_their_password() {
        let Ok(SinkSpec::Postgres(u)) = parse_sink("postgres://root:secret@127.0.0.1:5432/test")
        else {
            panic!("not parsed")
        };
        assert_eq!(u.shown, "postgres://root:***@127.0.0.1:5432/test");
        assert_eq!(u.url, "postgres://root:secret@127.0.0.1:5432/test");
        assert!(matches!(
            parse_sink("mariadb://root@localhost/test"),
            Ok(SinkSpec::Mysql(_))
        ));
        let e = parse_sink("mysql://root@localhost:99999/test").unwrap_err();
        assert!(e.contains("not a port"), "{e}");
        assert!(parse_sink("postgres:localhost").is_err());
        assert!(
            parse_sink("postgres:///db")
                .unwrap_err()
                .contains("no host")
        );
    }

    #[test]
    fn a_password_in_a_url_is_hidden_and_nothing_else_changes() {
        assert_eq!(
            without_password("postgres://pc:s3:cr@t@db.example:5432/x?sslmode=disable"),
            "postgres://pc:***@db.example:5432/x?sslmode=disable"
        );
        assert_eq!(without_password("mysql://root@h/x"), "mysql://root@h/x");
        assert_eq!(
            without_password("nats://h:4222/S?consumer=c"),
            "nats://h:4222/S?consumer=c"
        );
        assert_eq!(without_password("file:a@b:c"), "file:a@b:c");
        assert_eq!(
            without_password("postgres://u:pa/ss?w@h:5432/x?password=secret&sslmode=disable"),
            "postgres://u:***@h:5432/x?password=***&sslmode=disable"
        );
        assert_eq!(
            without_password("postgres://u@h:5432/x?%70assword=secret&%50ASSWORD=s2"),
            "postgres://u@h:5432/x?%70assword=***&%50ASSWORD=***",
            "a parameter name the driver decodes to `password`"
        );
    }

    #[test]
    fn a_server_url_parameter_given_twice_is_refused() {
        assert_eq!(
            parse_sink("postgres://u@h/x?sslmode=disable&sslmode=require").map(|_| ()),
            Err("parameter `sslmode` is given twice: give it once".into())
        );
        assert_eq!(
            parse_sink("postgres://h/x?user=a&%75ser=b").map(|_| ()),
            Err("parameter `user` is given twice: give it once".into()),
            "a name escaped is the same name"
        );
    }

    #[test]
    fn a_parameter_given_twice_is_refused() {
        assert_eq!(
            parse_source("file:x.log?lane=a&lane=b"),
            Err("parameter `lane` is given twice: give it once".into())
        );
        assert_eq!(
            parse_source("stdin?format=jsonl&format=text").map(|_| ()),
            Err("parameter `format` is given twice: give it once".into())
        );
    }
}
