//! `--source` and `--sink` URLs: parsed and checked for form here (exit 2 on a bad one); files
//! are opened later, still before any thread starts.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;

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
    Stdin { format: Format },
    /// Lines from a file; with `follow`, keeps reading as it grows, across rotation.
    File {
        path: PathBuf,
        follow: bool,
        format: Format,
    },
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Generate => f.write_str("generate"),
            Self::Stdin { format } => write!(f, "stdin?format={}", format.as_str()),
            Self::File {
                path,
                follow,
                format,
            } => write!(
                f,
                "file:{}?follow={follow}&format={}",
                path.display(),
                format.as_str()
            ),
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
            return Err("a server URL starts with `//` after the scheme, e.g. \
                        postgres://user@127.0.0.1:5432/db"
                .into());
        };
        let authority = after.split(['/', '?']).next().unwrap_or("");
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (h, Some(p)),
            _ => (hostport, None),
        };
        if host.is_empty() {
            return Err("the URL names no host".into());
        }
        if let Some(p) = port
            && !p.parse::<u16>().is_ok_and(|p| p > 0)
        {
            return Err(format!("`{p}` is not a port (1..=65535)"));
        }
        let shown = match userinfo.and_then(|u| u.split_once(':')) {
            Some((user, _password)) => url.replacen(
                &format!("{}@", userinfo.unwrap_or_default()),
                &format!("{user}:***@"),
                1,
            ),
            None => url.to_string(),
        };
        Ok(Self {
            url: url.to_string(),
            shown,
        })
    }
}

impl fmt::Display for SinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Self::Postgres(u) | Self::Mysql(u) => f.write_str(&u.shown),
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

/// Parses one `--source` URL; the error is the reason, for the caller to prefix.
pub fn parse_source(url: &str) -> Result<SourceSpec, String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    if base == "generate" && !query.is_empty() {
        return Err("generate takes no parameters".into());
    }
    let params = parse_query(query)?;
    let mut follow = false;
    let mut format = Format::Text;
    for (key, value) in &params {
        match *key {
            "follow" => {
                follow = match *value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("`follow={value}`: use follow=true or follow=false")),
                }
            }
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
            _ => return Err(format!("unknown parameter `{key}` (known: follow, format)")),
        }
    }
    let spec = match base {
        "generate" => SourceSpec::Generate,
        "stdin" | "-" => SourceSpec::Stdin { format },
        _ => {
            let Some(path) = base
                .strip_prefix("file://")
                .or_else(|| base.strip_prefix("file:"))
            else {
                let scheme = base.split_once(':').map_or(base, |(s, _)| s);
                return Err(format!(
                    "unknown source `{scheme}` (use generate, stdin, - or file:PATH)"
                ));
            };
            if path.is_empty() {
                return Err("file: needs a path, e.g. file:/var/log/app.log".into());
            }
            return Ok(SourceSpec::File {
                path: path.into(),
                follow,
                format,
            });
        }
    };
    if !params.is_empty() && spec == SourceSpec::Generate {
        return Err("generate takes no parameters".into());
    }
    if follow {
        return Err("follow=true applies to file: sources only".into());
    }
    Ok(spec)
}

/// Parses the `--sink` URL.
pub fn parse_sink(url: &str) -> Result<SinkSpec, String> {
    let Some((scheme, rest)) = url.split_once(':') else {
        return Err("a sink URL needs a scheme, e.g. sqlite:pc-host.db".into());
    };
    match scheme {
        "sqlite" => {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.contains('?') {
                return Err("sqlite: takes no parameters (a `?` in the path is refused)".into());
            }
            if path.is_empty() {
                return Err("sqlite: needs a database path, e.g. sqlite:pc-host.db".into());
            }
            Ok(SinkSpec::Sqlite(path.into()))
        }
        "postgres" | "postgresql" => ServerUrl::parse(url, rest).map(SinkSpec::Postgres),
        "mysql" | "mariadb" => ServerUrl::parse(url, rest).map(SinkSpec::Mysql),
        _ => Err(format!(
            "unknown sink `{scheme}` (use sqlite:PATH, postgres://USER@HOST:PORT/DB or \
             mysql://USER@HOST:PORT/DB)"
        )),
    }
}

fn parse_query(query: &str) -> Result<Vec<(&str, &str)>, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=')
                .ok_or_else(|| format!("parameter `{p}` needs a value (`{p}=...`)"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_urls_parse_with_their_parameters() {
        assert_eq!(parse_source("generate"), Ok(SourceSpec::Generate));
        assert_eq!(
            parse_source("-"),
            Ok(SourceSpec::Stdin {
                format: Format::Text
            })
        );
        assert_eq!(
            parse_source("stdin?format=jsonl"),
            Ok(SourceSpec::Stdin {
                format: Format::Jsonl
            })
        );
        assert_eq!(
            parse_source("file:///var/log/a.log?follow=true&format=jsonl"),
            Ok(SourceSpec::File {
                path: "/var/log/a.log".into(),
                follow: true,
                format: Format::Jsonl
            })
        );
        assert_eq!(
            parse_source("file:rel/a.log"),
            Ok(SourceSpec::File {
                path: "rel/a.log".into(),
                follow: false,
                format: Format::Text
            })
        );
    }

    #[test]
    fn bad_source_urls_say_what_is_wrong() {
        for (url, needle) in [
            ("kafka://x", "unknown source `kafka`"),
            ("file:", "needs a path"),
            ("file:a?format=csv", "format=csv"),
            ("file:a?follow=maybe", "follow=maybe"),
            ("file:a?color=red", "unknown parameter `color`"),
            ("file:a?follow", "needs a value"),
            ("stdin?follow=true", "file: sources only"),
            ("generate?format=text", "no parameters"),
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
}
