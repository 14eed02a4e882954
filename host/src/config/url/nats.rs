//! `nats://` URLs: a NATS source's stream and consumer, a NATS sink's subject and stream.

use std::fmt;

use super::{bracketed, parse_query, percent_decoded_bytes};
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
    let (host, port_text) = match bracketed(hostport) {
        Some((host, v6, after)) if v6.parse::<std::net::Ipv6Addr>().is_ok() => {
            match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None if after.is_empty() => (host, None),
                None => return Err(format!("`{hostport}` is not a host and port")),
            }
        }
        Some((_, v6, _)) if v6.contains('%') => {
            return Err(format!(
                "`{hostport}`: an IPv6 zone id (`%25...`) is not supported; give the address \
                 alone"
            ));
        }
        _ if hostport.starts_with('[') => {
            return Err(format!(
                "`{hostport}` is not an IPv6 address in brackets (e.g. nats://[::1]:4222/NAME)"
            ));
        }
        _ if hostport.matches(':').count() > 1 => {
            return Err("an IPv6 host is written in brackets, e.g. nats://[::1]:4222/NAME".into());
        }
        _ => match hostport.rsplit_once(':') {
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
pub(super) fn nats_escaped(name: &str) -> String {
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

pub(super) fn parse_nats_source(rest: &str) -> Result<NatsSource, String> {
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
                crate::config::lanes::check_name(value)?;
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

pub(super) fn parse_nats_sink(rest: &str) -> Result<NatsSink, String> {
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

#[cfg(test)]
mod tests {
    use crate::config::url::{SinkSpec, SourceSpec, parse_sink, parse_source};

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
}
