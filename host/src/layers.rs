//! The layers a run option can come from, highest first: command-line flag, environment
//! (`PC_HOST_*`, applied by clap), the `--config` TOML file, the built-in default. Each value
//! remembers where it came from, so an error can say "`producers = 0` in cfg.toml".

use std::fmt;
use std::path::{Path, PathBuf};

use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::Deserialize;

use crate::cli::{Output, Synchronous};
use crate::config::ConfigError;

/// The `--config` file: the same names as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub producers: Option<u64>,
    pub consumers: Option<u64>,
    pub rps: Option<u64>,
    pub duration: Option<f64>,
    pub messages: Option<u64>,
    pub capacity: Option<u64>,
    pub batch_size: Option<u64>,
    pub batch_wait_ms: Option<f64>,
    pub payload_size: Option<u64>,
    pub db: Option<PathBuf>,
    pub synchronous: Option<Synchronous>,
    pub pin: Option<bool>,
    pub warmup: Option<f64>,
    pub report_interval: Option<f64>,
    pub output: Option<Output>,
    pub busy_timeout_ms: Option<u64>,
}

/// Where a value came from, for error messages.
#[derive(Clone, Debug)]
pub enum Source {
    Flag(&'static str),
    Env(&'static str),
    File(&'static str, PathBuf),
    Default,
}

impl Source {
    pub fn rank(&self) -> u8 {
        match self {
            Self::Flag(_) => 3,
            Self::Env(_) => 2,
            Self::File(..) => 1,
            Self::Default => 0,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(flag) => write!(f, "--{flag}"),
            Self::Env(var) => write!(f, "{var}"),
            Self::File(key, path) => write!(f, "`{key}` in {}", path.display()),
            Self::Default => f.write_str("the default"),
        }
    }
}

/// One option's value and where it came from.
#[derive(Debug)]
pub struct Picked<T> {
    pub value: T,
    pub from: Source,
}

impl<T: fmt::Display> Picked<T> {
    /// The value as the user wrote it: `--producers 0`, `PC_HOST_PRODUCERS=0`,
    /// `producers = 0` in cfg.toml.
    pub fn show(&self) -> String {
        let v = &self.value;
        match &self.from {
            Source::Flag(flag) => format!("--{flag} {v}"),
            Source::Env(var) => format!("{var}={v}"),
            Source::File(key, path) => format!("`{key} = {v}` in {}", path.display()),
            Source::Default => format!("the default {v}"),
        }
    }
}

/// Resolves the layers of one option.
#[derive(Debug)]
pub struct Layers<'a> {
    pub matches: &'a ArgMatches,
    pub file_path: Option<PathBuf>,
}

impl Layers<'_> {
    /// `flag`: the long flag name (kebab-case), which is also the file key; `id`: clap's id.
    pub fn pick<T>(
        &self,
        cli: Option<T>,
        id: &str,
        flag: &'static str,
        env: &'static str,
        file: Option<T>,
    ) -> Option<Picked<T>> {
        if let Some(value) = cli {
            let from = match self.matches.value_source(id) {
                Some(ValueSource::EnvVariable) => Source::Env(env),
                _ => Source::Flag(flag),
            };
            return Some(Picked { value, from });
        }
        let path = self.file_path.clone()?;
        file.map(|value| Picked {
            value,
            from: Source::File(flag, path),
        })
    }

    pub fn or<T>(picked: Option<Picked<T>>, default: T) -> Picked<T> {
        picked.unwrap_or(Picked {
            value: default,
            from: Source::Default,
        })
    }
}

/// Reads and parses the `--config` file; errors are one line with the line number.
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let p = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read --config {p}: {e}")))?;
    toml::from_str(&text).map_err(|e: toml::de::Error| {
        let msg = e.message().replace('\n', " ");
        let msg = msg.trim();
        match e.span() {
            Some(span) => {
                let line = text.as_bytes()[..span.start.min(text.len())]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1;
                ConfigError(format!("--config {p} line {line}: {msg}"))
            }
            None => ConfigError(format!("--config {p}: {msg}")),
        }
    })
}
