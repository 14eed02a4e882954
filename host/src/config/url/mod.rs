//! `--source` and `--sink` URLs: parsed and checked for form here (exit 2 on a bad one); files
//! are opened later, still before any thread starts.
//!
//! This file reads a URL's scheme and the parameters common to all; each kind's own rules are
//! in `file.rs` (`file:`, `sqlite:`, SQLite paths), `server.rs` (`postgres://`, `mysql://`)
//! and `nats.rs` (`nats://`).

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

mod file;
mod nats;
mod server;

pub use file::{DEFAULT_ROTATE_WAIT, check_sqlite_path, source_flag};
use file::{compact_duration, local_path, parse_rotate_wait, written_path};
pub use nats::{NatsServer, NatsSink, NatsSource};
use nats::{nats_escaped, parse_nats_sink, parse_nats_source};
pub use server::{ServerUrl, without_password};
use server::{parse_mysql, parse_postgres};

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
                crate::config::lanes::check_name(value)?;
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

/// An IPv6 host in brackets at the start of a URL's `HOST[:PORT]` (`[::1]:5432`): the host
/// with its brackets, the address inside them, and what follows the `]` (`:PORT`, or nothing
/// in a well-formed URL; the caller decides what else to refuse). `None` unless `hostport`
/// starts with `[` and holds a `]`.
fn bracketed(hostport: &str) -> Option<(&str, &str, &str)> {
    let (inside, after) = hostport.strip_prefix('[')?.split_once(']')?;
    Some((&hostport[..inside.len() + 2], inside, after))
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
