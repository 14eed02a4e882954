//! The layers a run option can come from, highest first: command-line flag, environment
//! (`PC_HOST_*`), the `--config` TOML file, the built-in default.
//!
//! clap handles flags, environment and defaults from the one option table (`cli.rs`). The file
//! goes through the same table: each key names a flag, and its value is parsed by that flag's
//! own parser, as if given on the command line, unless a flag or the environment already set
//! that option. Each value remembers where it came from, so an error can say
//! "`producers = 0` in cfg.toml".

use std::ffi::OsString;
use std::fmt;
use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory as _, FromArgMatches as _};

use super::ConfigError;
use super::cli::{Cli, RunArgs};

/// The largest `--config` file read.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Where a value came from, for error messages.
#[derive(Clone, Debug)]
pub enum Origin {
    Flag(String),
    Env(String),
    /// Key, and where in the file, as messages name it: `PATH line N` (`--config`), or
    /// `PC_HOST_CONFIG=PATH line N`.
    File(String, String),
    Default,
}

impl Origin {
    /// Flags 3, environment 2, file 1, default 0.
    pub fn rank(&self) -> u8 {
        match self {
            Self::Flag(_) => 3,
            Self::Env(_) => 2,
            Self::File(..) => 1,
            Self::Default => 0,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(flag) => write!(f, "--{flag}"),
            Self::Env(var) => write!(f, "{var}"),
            Self::File(key, file) => write!(f, "`{key}` in {file}"),
            Self::Default => f.write_str("the default"),
        }
    }
}

/// One option's value and where it came from.
#[derive(Debug)]
pub struct Picked<T> {
    pub value: T,
    pub from: Origin,
    /// The text typed for a flag or a variable, when it was one value: messages echo it
    /// rather than the parsed value (`--duration 1e400`, not `--duration inf`).
    pub raw: Option<String>,
}

impl<T: fmt::Display> Picked<T> {
    /// The value as the user wrote it: `--producers 0`, `PC_HOST_PRODUCERS=0`,
    /// `producers = 0` in cfg.toml.
    pub fn show(&self) -> String {
        let v = self
            .raw
            .clone()
            .unwrap_or_else(|| compact(self.value.to_string()));
        match &self.from {
            Origin::Flag(flag) => format!("--{flag} {v}"),
            Origin::Env(var) => format!("{var}={v}"),
            Origin::File(key, file) => format!("`{key} = {v}` in {file}"),
            Origin::Default => format!("the default {v}"),
        }
    }
}

/// A value as messages show it: a number too long to read (a file's `1e300`, which the parsed
/// value prints digit by digit) in exponent form, anything else as it is.
fn compact(text: String) -> String {
    match text.parse::<f64>() {
        Ok(x) if text.len() > 24 => format!("{x:e}"),
        _ => text,
    }
}

/// The run options with all layers applied, and where each came from.
#[derive(Debug)]
pub struct Layers {
    pub args: RunArgs,
    /// The command line and environment alone.
    given: ArgMatches,
    /// Option ids the file set, each with its line in the file.
    from_file: Vec<(String, usize)>,
    file: Option<PathBuf>,
    /// The file as messages name it (see [`Origin::File`]).
    file_name: String,
}

impl Layers {
    /// Applies the `--config` file (if any) under the command line and environment in `given`.
    pub fn load(given: ArgMatches) -> Result<Self, ConfigError> {
        let file = given.get_one::<PathBuf>("config").cloned();
        let mut from_file = Vec::new();
        let mut argv: Vec<OsString> = std::env::args_os().collect();
        let mut file_name = String::new();
        if let Some(path) = &file {
            file_name = if given.value_source("config") == Some(ValueSource::EnvVariable) {
                format!("{}={}", env_name("config"), path.display())
            } else {
                path.display().to_string()
            };
            // Messages name the file as it was given: the flag, or the variable.
            let label = if given.value_source("config") == Some(ValueSource::EnvVariable) {
                format!("{}={}", env_name("config"), path.display())
            } else {
                format!("--config {}", path.display())
            };
            for (id, line, args) in read_file(path, &label, &given)? {
                from_file.push((id, line));
                argv.extend(args.into_iter().map(OsString::from));
            }
        }
        // Parse again only if the file added arguments; otherwise flags and environment are all.
        let all = if from_file.is_empty() {
            given.clone()
        } else {
            Cli::command()
                .try_get_matches_from(argv)
                .map_err(|e| ConfigError(first_line(&e.to_string())))?
        };
        let args =
            RunArgs::from_arg_matches(&all).map_err(|e| ConfigError(first_line(&e.to_string())))?;
        Ok(Self {
            args,
            given,
            from_file,
            file,
            file_name,
        })
    }

    /// Where option `id` (clap's id: the field name) came from.
    pub fn from(&self, id: &str) -> Origin {
        let long = id.replace('_', "-");
        match self.given.value_source(id) {
            Some(ValueSource::CommandLine) => Origin::Flag(long),
            Some(ValueSource::EnvVariable) => Origin::Env(env_name(id)),
            _ => match self.from_file.iter().find(|(f, _)| f == id) {
                Some((_, line)) => Origin::File(long, format!("{} line {line}", self.file_name)),
                None => Origin::Default,
            },
        }
    }

    /// Whether option `id` was set by any layer (not left at its default).
    pub fn is_set(&self, id: &str) -> bool {
        !matches!(self.from(id), Origin::Default)
    }

    pub fn pick<T>(&self, id: &str, value: T) -> Picked<T> {
        let from = self.from(id);
        let raw = match from {
            Origin::Flag(_) | Origin::Env(_) => self.raw(id),
            Origin::File(..) | Origin::Default => None,
        };
        Picked { value, from, raw }
    }

    /// The text given on the command line or in the environment for option `id`, if it was
    /// one value, with any password in it hidden as in every other message.
    fn raw(&self, id: &str) -> Option<String> {
        let mut values = self.given.try_get_raw(id).ok().flatten()?;
        let first = values.next()?;
        values
            .next()
            .is_none()
            .then(|| super::url::without_password(&first.to_string_lossy()))
    }

    /// `None` when no layer set the option.
    pub fn pick_set<T>(&self, id: &str, value: Option<T>) -> Option<Picked<T>> {
        value.map(|v| self.pick(id, v))
    }

    /// The `--config` file, if one was given.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Whether the command line set option `id`.
    pub fn on_command_line(&self, id: &str) -> bool {
        self.given.value_source(id) == Some(ValueSource::CommandLine)
    }
}

/// The environment variable of option `id`, from the option table.
fn env_name(id: &str) -> String {
    Cli::command()
        .get_arguments()
        .find(|a| a.get_id() == id)
        .and_then(|a| a.get_env())
        .map_or_else(String::new, |e| e.to_string_lossy().into_owned())
}

/// The database `verify` or `plot` reads (`does`: "check" or "plot"): `--sink` or `--db`,
/// resolved as a run resolves them (a flag beats a variable; one layer giving both is an
/// error). Returns, when `--sink` is the one to use, how it was given, for messages (`--sink `
/// or `PC_HOST_SINK=`); `None` for `--db`.
///
/// # Errors
/// Both given by the same layer: one line naming them as the user gave them.
pub fn read_sink_from(given: &ArgMatches, does: &str) -> Result<Option<String>, ConfigError> {
    let rank = |id: &str| match given.value_source(id) {
        Some(ValueSource::CommandLine) => 2,
        Some(ValueSource::EnvVariable) => 1,
        _ => 0,
    };
    let (sink, db) = (rank("sink"), rank("db"));
    if sink > 0 && sink == db {
        let (s, d) = if sink == 2 {
            ("--sink".to_string(), "--db".to_string())
        } else {
            // The run's options of the same ids read the same variables.
            (env_name("sink"), env_name("db"))
        };
        return Err(ConfigError(format!(
            "{s} and {d} both say which database to {does}: give only one"
        )));
    }
    if sink <= db {
        return Ok(None);
    }
    Ok(Some(if sink == 2 {
        "--sink ".to_string()
    } else {
        format!("{}=", env_name("sink"))
    }))
}

/// The `PC_HOST_*` variable whose value is not UTF-8 and whose option takes text (a path
/// option takes any bytes), as clap's "invalid UTF-8 was detected in one or more arguments"
/// does not say which; `None` if no variable is (the command line is).
fn variable_not_utf8() -> Option<String> {
    let cmd = Cli::command();
    let paths = [
        clap::value_parser!(PathBuf).type_id(),
        clap::value_parser!(OsString).type_id(),
    ];
    let takes_text = |name: &str| {
        std::iter::once(&cmd)
            .chain(cmd.get_subcommands())
            .flat_map(clap::Command::get_arguments)
            .filter(|a| a.get_env().is_some_and(|e| e == name))
            .any(|a| !paths.contains(&a.get_value_parser().type_id()))
    };
    std::env::vars_os().find_map(|(name, value)| {
        let name = name.to_str()?;
        (value.to_str().is_none() && takes_text(name))
            .then(|| format!("{name}: its value is not valid UTF-8: give it as text"))
    })
}

/// Refuses a `PC_HOST_*` variable that names no option (see [`unknown_variable`]): for a run
/// and for `verify` and `plot` alike, before anything else.
///
/// # Errors
/// One line naming the variable and the nearest known name.
pub fn check_variables() -> Result<(), ConfigError> {
    // A name that is not UTF-8 is compared as its lossy text: `PC_HOST_` and a stray byte is
    // no option either.
    let variables = std::env::vars_os().map(|(name, _)| name.to_string_lossy().into_owned());
    match unknown_variable(variables, &known_variables()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The variables the option table reads, the subcommands' included, and `PC_HOST_PIN` (read
/// by hand: see `config::pick_pin`).
fn known_variables() -> Vec<String> {
    let cmd = Cli::command();
    let mut names: Vec<String> = std::iter::once(&cmd)
        .chain(cmd.get_subcommands())
        .flat_map(clap::Command::get_arguments)
        .filter_map(clap::Arg::get_env)
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    names.push("PC_HOST_PIN".to_string());
    names
}

/// The error for the first of `variables` that is named like an option's (`PC_HOST_...`) but
/// is none of `known`: a misspelt variable would otherwise be ignored without a word, where
/// an unknown key in the `--config` file is an error. Suggests the nearest known name.
fn unknown_variable(
    variables: impl IntoIterator<Item = String>,
    known: &[String],
) -> Option<ConfigError> {
    let name = variables
        .into_iter()
        .find(|v| v.starts_with("PC_HOST_") && !known.contains(v))?;
    let nearest = did_you_mean(&name, known);
    Some(ConfigError(format!(
        "{name} is set, but pc-host has no such variable{nearest}: unset it, or see \
         `pc-host --help` for the PC_HOST_* names"
    )))
}

/// " (did you mean K?)" for the one of `known` nearest `name`, if one is near enough.
fn did_you_mean(name: &str, known: &[String]) -> String {
    // Letter case aside: `PC_HOST_producers` is near `PC_HOST_PRODUCERS`. Without the prefix
    // every variable shares, which would make any two look near (`PC_HOST_VERSION` and
    // `PC_HOST_SINK`).
    let bare = |n: &str| {
        let upper = n.to_uppercase();
        upper
            .strip_prefix("PC_HOST_")
            .map(str::to_owned)
            .unwrap_or(upper)
    };
    let upper = bare(name);
    // One letter off or two swapped (`DB` for `BD`, short names Jaro-Winkler scores low),
    // else the nearest by Jaro-Winkler if near enough.
    let one_edit = known
        .iter()
        .filter(|k| upper.len() > 1 && strsim::damerau_levenshtein(&bare(k), &upper) == 1)
        .min_by_key(|k| k.len());
    let nearest = || {
        known
            .iter()
            .map(|k| (strsim::jaro_winkler(&bare(k), &upper), k))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .filter(|(score, _)| *score > 0.9)
            .map(|(_, k)| k)
    };
    one_edit
        .or_else(nearest)
        .map(|k| format!(" (did you mean {k}?)"))
        .unwrap_or_default()
}

/// How long a config file that is a pipe may take to be written to.
const PIPE_WAIT: Duration = Duration::from_secs(5);

/// The text of the config file at `path` (called `label` in errors), at most
/// [`MAX_FILE_BYTES`]. Opened without blocking, as the open of a pipe nobody writes to would
/// wait for ever; a pipe (as from `--config <(...)`) then gets [`PIPE_WAIT`] for its writer to
/// write (or close it), and is read to its end.
fn read_text(path: &Path, label: &str) -> Result<String, ConfigError> {
    use std::os::fd::AsRawFd as _;
    use std::os::unix::fs::FileTypeExt as _;
    let cannot = |e: std::io::Error| ConfigError(format!("cannot read {label}: {e}"));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(cannot)?;
    if file.metadata().map_err(cannot)?.file_type().is_fifo() {
        let mut ready = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let wait = libc::c_int::try_from(PIPE_WAIT.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one pollfd, valid for the call; the descriptor is `file`'s.
        match unsafe { libc::poll(&raw mut ready, 1, wait) } {
            0 => {
                return Err(ConfigError(format!(
                    "{label} is a pipe nobody wrote to within {} s: start its writer first",
                    PIPE_WAIT.as_secs()
                )));
            }
            n if n < 0 => return Err(cannot(std::io::Error::last_os_error())),
            _ => {}
        }
    }
    // SAFETY: fcntl on a descriptor `file` owns; F_SETFL takes an int of flags.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, 0) } != 0 {
        return Err(cannot(std::io::Error::last_os_error()));
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(cannot)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigError(format!(
            "{label} is larger than {MAX_FILE_BYTES} bytes: is it the right file?"
        )));
    }
    Ok(text)
}

/// Reads `path` and turns each key the command line and environment left unset into command
/// line arguments: `(id, args)` per key. Errors are one line naming the file as `label` gives
/// it (`--config cfg.toml`, `PC_HOST_CONFIG=cfg.toml`), with the file's line number.
fn read_file(
    path: &Path,
    label: &str,
    given: &ArgMatches,
) -> Result<Vec<(String, usize, Vec<String>)>, ConfigError> {
    let p = label;
    let text = read_text(path, p)?;
    let table: toml::Table = toml::from_str(&text).map_err(|e: toml::de::Error| {
        let msg = toml_message(&e, &text);
        match e.span() {
            Some(span) => ConfigError(format!("{p} line {}: {msg}", line_of(&text, span.start))),
            None => ConfigError(format!("{p}: {msg}")),
        }
    })?;
    let cmd = Cli::command();
    let mut out = Vec::new();
    for (key, value) in &table {
        let line = key_line(&text, key);
        let at = format!("{p} line {line}");
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && key != "config")
            .ok_or_else(|| {
                let keys: Vec<String> = cmd
                    .get_arguments()
                    .filter_map(clap::Arg::get_long)
                    .filter(|k| !["config", "no-pin", "help", "version"].contains(k))
                    .map(str::to_string)
                    .collect();
                let nearest = did_you_mean(key, &keys);
                ConfigError(format!("{at}: unknown key `{key}`{nearest}"))
            })?;
        let id = arg.get_id().as_str().to_string();
        if key == "no-pin" {
            return Err(ConfigError(format!(
                "{at}: use `pin = false` instead of `no-pin`"
            )));
        }
        if key == "pin" {
            let toml::Value::Boolean(on) = value else {
                return Err(ConfigError(format!("{at}: `pin` must be true or false")));
            };
            if !pin_set(given) {
                let (id, flag) = if *on {
                    ("pin", "--pin")
                } else {
                    ("no_pin", "--no-pin")
                };
                out.push((id.to_string(), line, vec![flag.to_string()]));
            }
            continue;
        }
        let items = match value {
            toml::Value::Array(_) if !matches!(arg.get_action(), clap::ArgAction::Append) => {
                return Err(ConfigError(format!(
                    "{at}: `{key}` takes one value, not a list"
                )));
            }
            toml::Value::Array(items) => items.clone(),
            v => vec![v.clone()],
        };
        let raw = items
            .iter()
            .map(|v| scalar(v).map(|s| (s, v.to_string())))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                ConfigError(format!(
                    "{at}: `{key}` takes a number, a string or a list of strings"
                ))
            })?;
        if matches!(
            given.value_source(&id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue; // a higher layer set it
        }
        let mut args = Vec::new();
        for (v, shown) in raw {
            let arg = format!("--{key}={v}");
            // Parse it alone, so an error names this key and line.
            if let Err(e) = Cli::command().try_get_matches_from(["pc-host", arg.as_str()]) {
                let why = first_line(&e.to_string());
                return Err(ConfigError(format!("{at}: `{key} = {shown}`: {why}")));
            }
            args.push(arg);
        }
        out.push((id, line, args));
    }
    Ok(out)
}

/// Whether a flag or `PC_HOST_PIN` already chose pinning (see `config::pick_pin`).
fn pin_set(given: &ArgMatches) -> bool {
    ["pin", "no_pin"]
        .iter()
        .any(|id| given.value_source(id) == Some(ValueSource::CommandLine))
        || std::env::var_os("PC_HOST_PIN").is_some()
}

/// A TOML scalar as command-line text.
fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        // With its point or exponent (`2.0`, `1000.0` for `1e3`): a whole-number option
        // refuses it, as it refuses `--producers 2.0`; a float option takes it.
        toml::Value::Float(f) => Some(format!("{f:?}")),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The TOML parser's message as one line, in pc-host's words where the parser's would name no
/// key or speak of its own internals: a key set twice is named, and a number past TOML's
/// 64-bit integers says so (the parser reports it as a type error about `i128`).
fn toml_message(e: &toml::de::Error, text: &str) -> String {
    let msg = e.message().replace('\n', " ");
    let msg = msg.trim();
    let spanned = e
        .span()
        .and_then(|span| text.get(span))
        .map(str::trim)
        .filter(|s| !s.is_empty());
    match spanned {
        Some(key) if msg == "duplicate key" => format!("`{key}` is set twice"),
        Some(value) if msg.contains("i128") => format!(
            "`{value}` is too large: a number here is at most {} (TOML's 64-bit integers)",
            i64::MAX
        ),
        _ => msg.to_string(),
    }
}

/// The 1-based line of byte `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The line on which top-level `key` is set (1 if not found): `key = ...`, a dotted
/// `key.x = ...`, or a table header `[key]`, `[key.x]`, `[[key]]`.
fn key_line(text: &str, key: &str) -> usize {
    let named = |l: &str| -> Option<char> {
        let (quoted, single) = (format!("\"{key}\""), format!("'{key}'"));
        let rest = l
            .strip_prefix(key)
            .or_else(|| l.strip_prefix(&quoted))
            .or_else(|| l.strip_prefix(&single))?;
        rest.trim_start().chars().next()
    };
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            let header = l.trim_start_matches('[');
            if header.len() < l.len() {
                return matches!(named(header.trim_start()), Some(']' | '.'));
            }
            matches!(named(l), Some('=' | '.'))
        })
        .map_or(1, |i| i + 1)
}

/// clap's message without "error: " and the usage lines after it.
/// clap's error for the command line and environment as one line: its first line, the values
/// it would take when it lists them, and, when the bad value came from a `PC_HOST_*` variable
/// rather than a flag, the variable (`PC_HOST_PRODUCERS=abc: invalid value 'abc' for ..`).
pub fn usage_error_line(e: &clap::Error, argv: &[OsString]) -> String {
    use clap::error::{ContextKind, ContextValue};
    if e.kind() == clap::error::ErrorKind::InvalidUtf8
        && let Some(line) = variable_not_utf8()
    {
        return line;
    }
    let line = joined_lines(&e.to_string());
    let cli = Cli::command();
    let subcommand = cli.get_subcommands().find(|c| {
        argv.iter()
            .skip(1)
            .any(|a| a.to_str() == Some(c.get_name()))
    });
    let (Some(ContextValue::String(arg)), Some(ContextValue::String(value))) = (
        e.get(ContextKind::InvalidArg),
        e.get(ContextKind::InvalidValue),
    ) else {
        return line;
    };
    let Some(long) = arg
        .strip_prefix("--")
        .and_then(|a| a.split([' ', '=']).next())
    else {
        return line;
    };
    let flag = format!("--{long}");
    let on_command_line = argv.iter().any(|a| {
        a.to_str()
            .is_some_and(|a| a == flag || a.starts_with(&format!("{flag}=")))
    });
    // A subcommand's own flag reads the variable it declares, if any (`verify` and `plot`
    // read `--db` from PC_HOST_DB; plot's `-o` none, though the run's `--output` has one); any
    // other flag is the run's, read from its option table's variable even under a subcommand.
    let own = subcommand.and_then(|sub| sub.get_arguments().find(|a| a.get_long() == Some(long)));
    let var = match own {
        None => env_name(&long.replace('-', "_")),
        Some(arg) => arg
            .get_env()
            .and_then(|v| v.to_str())
            .unwrap_or_default()
            .to_owned(),
    };
    if !on_command_line && !var.is_empty() && std::env::var_os(&var).is_some() {
        return format!("{var}={value}: {line}");
    }
    line
}

/// clap's message up to its usage block, as one line: `the following required arguments were
/// not provided: --output <FILE.svg>`, `unexpected argument '--producer' found; tip: a similar
/// argument exists: '--producers'`.
fn joined_lines(msg: &str) -> String {
    let mut line = String::new();
    for part in msg
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        if !line.is_empty() {
            line.push_str(if line.ends_with(':') { " " } else { "; " });
        }
        line.push_str(part);
    }
    line.strip_prefix("error: ").unwrap_or(&line).to_string()
}

fn first_line(msg: &str) -> String {
    let line = msg.lines().next().unwrap_or(msg);
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_error_names_the_line_of_a_table_or_dotted_key() {
        let text = "duration = 0.5\nrps = 100\n\n[section]\nx = 1\n [[arr]]\n\"q\".k = 3\n";
        assert_eq!(key_line(text, "rps"), 2);
        assert_eq!(key_line(text, "section"), 4);
        assert_eq!(key_line(text, "arr"), 6);
        assert_eq!(key_line(text, "q"), 7);
        // A key that starts another key's name is not that key.
        assert_eq!(key_line("rps_x = 1\nrps = 2\n", "rps"), 2);
        assert_eq!(key_line("[rpsx]\n[rps.y]\n", "rps"), 2);
        assert_eq!(key_line("x = 1\n'rps' = 2\n", "rps"), 2);
    }

    /// The message `read_file` gives for a config file holding `text`.
    fn file_error(text: &str) -> String {
        let e = toml::from_str::<toml::Table>(text).unwrap_err();
        toml_message(&e, text)
    }

    #[test]
    fn a_config_key_set_twice_is_named_and_a_too_large_number_says_so() {
        assert_eq!(
            file_error("producers = 3\nproducers = 4\n"),
            "`producers` is set twice"
        );
        let big = file_error("producers = 99999999999999999999999\n");
        assert_eq!(
            big,
            "`99999999999999999999999` is too large: a number here is at most \
             9223372036854775807 (TOML's 64-bit integers)"
        );
        // Other parser messages pass through as they are.
        let e = toml::from_str::<toml::Table>("producers = \n").unwrap_err();
        assert_eq!(
            file_error("producers = \n"),
            e.message().replace('\n', " ").trim()
        );
    }

    #[test]
    fn a_misspelt_variable_is_an_error_naming_the_nearest_and_others_pass() {
        let known = known_variables();
        assert!(known.iter().any(|k| k == "PC_HOST_PRODUCERS"));
        assert!(known.iter().any(|k| k == "PC_HOST_PIN"));
        let vars = |names: &[&str]| names.iter().map(|n| (*n).to_string()).collect::<Vec<_>>();
        let e = unknown_variable(vars(&["HOME", "PC_HOST_PRODUCRS"]), &known).unwrap();
        assert_eq!(
            e.0,
            "PC_HOST_PRODUCRS is set, but pc-host has no such variable (did you mean \
             PC_HOST_PRODUCERS?): unset it, or see `pc-host --help` for the PC_HOST_* names"
        );
        // Two letters swapped in a short name.
        let e = unknown_variable(vars(&["PC_HOST_BD"]), &known).unwrap();
        assert!(e.0.contains("(did you mean PC_HOST_DB?)"), "{}", e.0);
        // Only the prefix in common is no likeness.
        for far in ["PC_HOST_XYZZY", "PC_HOST_VERSION", "PC_HOST_HELP"] {
            let e = unknown_variable(vars(&[far]), &known).unwrap();
            assert!(
                e.0.starts_with(&format!("{far} is set, but pc-host has no such variable: ")),
                "{}",
                e.0
            );
        }
        assert!(
            unknown_variable(vars(&["PC_HOST_RPS", "PC_HOST_PIN", "PC_TEST_X"]), &known).is_none()
        );
    }
}
