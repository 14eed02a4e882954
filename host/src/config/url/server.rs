//! `postgres://` and `mysql://` sink URLs, checked as their drivers will read them.

use std::fmt;

use super::{SinkSpec, bracketed, percent_decoded};
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
        let (host, port) = match bracketed(hostport) {
            Some((host, _, after)) => (host, after.strip_prefix(':')),
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

/// A server URL with no database after the host and port.
const NO_DATABASE: &str = "the URL names no database: add /DBNAME after the host and port";

/// A `postgres://` sink URL (`rest`: after the scheme), checked as the driver will read it.
pub(super) fn parse_postgres(url: &str, rest: &str) -> Result<SinkSpec, String> {
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
pub(super) fn parse_mysql(url: &str, rest: &str) -> Result<SinkSpec, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::url::parse_sink;

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
}
