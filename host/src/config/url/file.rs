//! `file:` and `sqlite:` URLs and SQLite database paths: local files only.

use std::time::Duration;

use super::percent_decoded_bytes;
/// `d` in one unit, the largest that holds it whole (`2s`, `1500ms`): no space, as a URL
/// parameter is pasted.
pub(super) fn compact_duration(d: Duration) -> String {
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
pub(super) fn parse_rotate_wait(value: &str) -> Result<Duration, String> {
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
pub(super) fn written_path(path: &std::path::Path) -> String {
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
pub(super) fn local_path(scheme: &str, rest: &str) -> Result<String, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::url::{Format, SinkSpec, SourceSpec, parse_sink, parse_source};

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
}
