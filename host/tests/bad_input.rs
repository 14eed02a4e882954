//! Bad input: clap's errors exit 2; bad values, files and databases give one clear line and a
//! non-zero exit, never a panic, and never damage a file pc-host did not create.

mod common;

use common::OutputWithin as _;
use common::{Scratch, assert_error, assert_one_line_error, run, run_env};

#[test]
fn unknown_and_malformed_flags_are_clap_errors() {
    let s = Scratch::new("clap");
    assert_error(
        &run(s.dir(), &["--bogus"]),
        2,
        "unexpected argument '--bogus'",
    );
    assert_error(
        &run(s.dir(), &["--producers", "many"]),
        2,
        "invalid value 'many'",
    );
    assert_error(
        &run(s.dir(), &["--synchronous", "off"]),
        2,
        "invalid value 'off'",
    );
    assert_error(
        &run(s.dir(), &["--output", "xml"]),
        2,
        "invalid value 'xml'",
    );
    assert_error(
        &run_env(s.dir(), &[], &[("PC_HOST_CONSUMERS", "x")]),
        2,
        "invalid value 'x'",
    );
    assert!(
        !s.path("pc-host.db").exists(),
        "no database is created on a usage error"
    );
}

/// A unit or a word where a number of seconds or milliseconds goes says so (std's "invalid
/// float literal" named no fix).
#[test]
fn a_unit_or_a_word_for_a_number_option_says_it_must_be_a_number_without_a_unit() {
    let s = Scratch::new("number");
    for (flag, value, text) in [
        ("--duration", "SECS", "10s"),
        ("--batch-wait-ms", "MS", "2ms"),
        ("--report-interval", "SECS", "often"),
    ] {
        assert_one_line_error(
            &run(s.dir(), &[flag, text]),
            2,
            &format!(
                "invalid value '{text}' for '{flag} <{value}>': it must be a number, without a \
                 unit (e.g. 10 or 0.5)"
            ),
        );
    }
    assert!(
        !s.path("pc-host.db").exists(),
        "no database on a usage error"
    );
}

#[test]
fn a_fraction_or_a_word_for_a_whole_number_option_says_it_must_be_a_whole_number() {
    let s = Scratch::new("whole-number");
    for (flag, value, text) in [
        ("--rps", "MSG_PER_S", "1.5"),
        ("--producers", "N", "ten"),
        ("--page-size", "BYTES", "4k"),
        ("--messages", "N", "1e6"),
    ] {
        assert_one_line_error(
            &run(s.dir(), &[flag, text]),
            2,
            &format!("invalid value '{text}' for '{flag} <{value}>': it must be a whole number"),
        );
    }
    assert!(
        !s.path("pc-host.db").exists(),
        "no database on a usage error"
    );
}

/// A refused value is named as it was typed: `1e400`, not the `inf` it parses to, nor
/// `1e308` written out in 309 digits; a number too large for its type, or a run id that is
/// not a number, says what would do instead of std's parse error.
#[test]
fn a_refused_value_is_quoted_as_typed_with_what_would_do() {
    let s = Scratch::new("as-typed");
    /// Arguments, environment, and what the one line says.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            &["--duration", "1e400"],
            &[],
            "--duration 1e400 is not a usable number of seconds: give a finite number",
        ),
        (
            &[],
            &[("PC_HOST_DURATION", "1e400")],
            "PC_HOST_DURATION=1e400 is not a usable number of seconds",
        ),
        (
            &["--warmup", "1e308", "--duration", "1"],
            &[],
            "--warmup 1e308 is too long: at most 1000000 s",
        ),
        (
            &["--rps", "99999999999999999999999"],
            &[],
            "invalid value '99999999999999999999999' for '--rps <MSG_PER_S>': it is too large \
             for this option",
        ),
        (
            &["--page-size", "99999999999"],
            &[],
            "invalid value '99999999999' for '--page-size <BYTES>': it is too large for this \
             option",
        ),
        (
            &["verify", "--run", "abc"],
            &[],
            "invalid value 'abc' for '--run <ID>': a run id is a whole number",
        ),
        (
            &["plot", "--run", "1.5", "-o", "p.svg"],
            &[],
            "invalid value '1.5' for '--run <ID>': a run id is a whole number",
        ),
        (
            &["verify", "--run", "99999999999999999999"],
            &[],
            "invalid value '99999999999999999999' for '--run <ID>': no run id is that large",
        ),
    ];
    for (args, env, needle) in cases {
        assert_one_line_error(&run_env(s.dir(), args, env), 2, needle);
    }
    // As typed, but for a password, hidden as everywhere else.
    let out = run(
        s.dir(),
        &[
            "--source",
            "nats://u:secret@127.0.0.1:4222/S?lane=zz",
            "--lanes",
            "a:1",
        ],
    );
    assert_one_line_error(
        &out,
        2,
        "--source nats://u:***@127.0.0.1:4222/S?lane=zz: lane `zz` is not declared",
    );
    assert!(!out.stderr.contains("secret"), "{}", out.stderr);
    // A config file's value, whose text is not kept: a long number in exponent form.
    let cfg = std::env::temp_dir().join(format!("pc-as-typed-{}.toml", std::process::id()));
    std::fs::write(&cfg, "warmup = 1e300\n").unwrap();
    let cfg_arg = cfg.display().to_string();
    let out = run(s.dir(), &["--config", &cfg_arg, "--messages", "1"]);
    std::fs::remove_file(&cfg).unwrap();
    assert_one_line_error(&out, 2, "`warmup = 1e300` in");
    let names: Vec<_> = std::fs::read_dir(s.dir()).unwrap().flatten().collect();
    assert!(names.is_empty(), "nothing written: {names:?}");
}

#[test]
fn a_negative_number_for_a_numeric_option_says_it_must_not_be_negative() {
    let s = Scratch::new("negative");
    // Whole-number options: their parser says so, where clap took `-1` for an unknown flag.
    for (flag, value) in [
        ("--rps", "MSG_PER_S"),
        ("--messages", "N"),
        ("--producers", "N"),
        ("--capacity", "SLOTS"),
        ("--batch-size", "ROWS"),
        ("--payload-size", "BYTES"),
        ("--max-record-bytes", "BYTES"),
        ("--busy-timeout-ms", "MS"),
        ("--page-size", "BYTES"),
    ] {
        assert_one_line_error(
            &run(s.dir(), &[flag, "-1"]),
            2,
            &format!("invalid value '-1' for '{flag} <{value}>': it must not be negative"),
        );
    }
    // Options with fractions: the value reaches the range check, which names it.
    for (flag, said) in [
        (
            "--duration",
            "--duration -1 is not a usable number of seconds: it must be more than 0",
        ),
        (
            "--warmup",
            "--warmup -1 is not a usable number of seconds: it must be 0 or more",
        ),
        (
            "--report-interval",
            "--report-interval -1 is not a usable number of seconds: it must be 0 or more",
        ),
        (
            "--scale-interval",
            "--scale-interval -1 is not a usable number of seconds: it must be more than 0",
        ),
        (
            "--retry-for",
            "--retry-for -1 is not a usable number of seconds: it must be 0 or more",
        ),
        (
            "--batch-wait-ms",
            "--batch-wait-ms -1 is not a usable wait: it must be 0..=60000 ms",
        ),
    ] {
        assert_one_line_error(&run(s.dir(), &[flag, "-1"]), 2, said);
    }
    assert_one_line_error(
        &run(s.dir(), &["--consumers", "-1"]),
        2,
        "--consumers -1: it must not be negative",
    );
    assert_one_line_error(
        &run(s.dir(), &["--consumers", "-1..4"]),
        2,
        "--consumers -1..4: MIN and MAX must both be whole numbers",
    );
    // The value left out: the next option is not read as a count.
    assert_one_line_error(
        &run(s.dir(), &["--consumers", "--no-pin"]),
        2,
        "--consumers needs a value before --no-pin: give a count N or a range MIN..MAX",
    );
    assert_one_line_error(
        &run(s.dir(), &["--rps", "-2.5"]),
        2,
        "invalid value '-2.5' for '--rps <MSG_PER_S>': it must not be negative",
    );
    // The environment and the config file say the same, naming where the value came from.
    assert_one_line_error(
        &run_env(s.dir(), &[], &[("PC_HOST_RPS", "-1")]),
        2,
        "PC_HOST_RPS=-1: invalid value '-1' for '--rps <MSG_PER_S>': it must not be negative",
    );
    std::fs::write(s.path("cfg.toml"), "messages = -3\n").unwrap();
    assert_one_line_error(
        &run(s.dir(), &["--config", "cfg.toml"]),
        2,
        "cfg.toml line 1: `messages = -3`: invalid value '-3' for '--messages <N>': it must not \
         be negative",
    );
    assert_one_line_error(
        &run(s.dir(), &["verify", "--max-record-bytes", "-1"]),
        2,
        "invalid value '-1' for '--max-record-bytes <BYTES>': it must not be negative",
    );
    assert!(
        !s.path("pc-host.db").exists(),
        "no database is created on a usage error"
    );
}

#[test]
fn out_of_range_values_get_one_clear_line() {
    let s = Scratch::new("values");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--producers", "0"],
            "--producers 0 is too small: producers must be at least 1",
        ),
        (
            &["--consumers", "0"],
            "--consumers 0 is too small: consumers must be at least 1",
        ),
        (&["--producers", "100000"], "producers can be at most 1024"),
        // verify and plot take it too, with the run's limit (SQLite's own panicked past 2^31 ms).
        (
            &["--busy-timeout-ms", "3600001"],
            "it is too long: at most 3600000 ms (one hour)",
        ),
        (
            &["verify", "--busy-timeout-ms", "99999999999"],
            "it is too long: at most 3600000 ms (one hour)",
        ),
        (
            &["plot", "-o", "p.svg", "--busy-timeout-ms", "99999999999"],
            "it is too long: at most 3600000 ms (one hour)",
        ),
        // It was blamed on the warm-up ("the warm-up must be shorter than the duration (0 s)").
        (
            &["--duration", "1e-10"],
            "--duration 1e-10 is too short: it is less than a nanosecond",
        ),
        (
            &["--capacity", "1000"],
            "not a usable ring capacity: it must be a power of two",
        ),
        (&["--capacity", "1"], "power of two from 2 to"),
        (
            &["--capacity", "1073741824"],
            "power of two from 2 to 16777216",
        ),
        (
            &["--payload-size", "2000000"],
            "is too large: a message can be at most 1048576 bytes",
        ),
        (
            &["--capacity", "16777216", "--payload-size", "1048576"],
            "GiB in memory",
        ),
        // What each generator holds before pushing counts too (it was left out: 1024 producers
        // of 1 MiB messages were accepted, and 64 aborted a 4 GiB machine).
        (
            &[
                "--producers",
                "1024",
                "--payload-size",
                "1048576",
                "--rps",
                "0",
                "--capacity",
                "256",
            ],
            "records in the ring and the sources' hands",
        ),
        (&["--batch-size", "0"], "batch-size must be at least 1"),
        (
            &["--duration", "0"],
            "--duration 0 is not a usable number of seconds",
        ),
        (&["--duration", "NaN"], "not a usable number of seconds"),
        (&["--duration", "1e12"], "too long"),
        (&["--messages", "0"], "give at least 1 message"),
        (
            &["--rps", "10000000000"],
            "the rate can be at most 1000000000",
        ),
        (
            &["--warmup", "5", "--duration", "2"],
            "the warm-up must be shorter than the duration",
        ),
        (&["--report-interval", "0.001"], "too short"),
        (
            &["--report-interval", "inf"],
            "--report-interval inf is not a usable number of seconds: give a finite number",
        ),
        (&["--batch-wait-ms=-1"], "not a usable wait"),
        (
            &["--warmup=-1"],
            "--warmup -1 is not a usable number of seconds: it must be 0 or more",
        ),
    ];
    for (args, needle) in cases {
        let out = run(s.dir(), args);
        assert_one_line_error(&out, 2, needle);
    }
    assert!(!s.path("pc-host.db").exists());
}

#[test]
fn a_bad_consumer_range_or_scale_interval_gets_one_clear_line() {
    let s = Scratch::new("scale-values");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--consumers", "0..4"],
            "--consumers 0..4: MIN must be at least 1: give a count N or a range MIN..MAX",
        ),
        (
            &["--consumers", "5..2"],
            "--consumers 5..2: MIN is more than MAX",
        ),
        (
            &["--consumers", "1.."],
            "--consumers 1..: MIN and MAX must both be whole numbers",
        ),
        (
            &["--consumers", "a..b"],
            "--consumers a..b: MIN and MAX must both be whole numbers",
        ),
        (&["--consumers", "1..5000"], "MAX can be at most 1024"),
        (
            &["--consumers", "many"],
            "--consumers many: invalid value 'many'",
        ),
        (
            &["--scale-interval", "0"],
            "--scale-interval 0 is not a usable number of seconds: it must be more than 0",
        ),
        (&["--scale-interval", "0.001"], "too short"),
    ];
    for (args, needle) in cases {
        let out = run(s.dir(), args);
        assert_one_line_error(&out, 2, needle);
    }
    let out = run_env(s.dir(), &[], &[("PC_HOST_CONSUMERS", "3..1")]);
    assert_one_line_error(&out, 2, "PC_HOST_CONSUMERS=3..1: MIN is more than MAX");
    assert!(!s.path("pc-host.db").exists());
}

#[test]
fn environment_and_config_file_layers() {
    let s = Scratch::new("layers");
    // A bad value from the environment names the variable.
    let out = run_env(s.dir(), &[], &[("PC_HOST_PRODUCERS", "0")]);
    assert_one_line_error(&out, 2, "PC_HOST_PRODUCERS=0 is too small");
    // A flag beats the environment, which beats the file.
    let cfg = s.path("cfg.toml");
    std::fs::write(
        &cfg,
        "producers = 0\nconsumers = 1\nmessages = 5\nrps = 0\nreport-interval = 0\n",
    )
    .unwrap();
    let out = run(s.dir(), &["--config", cfg.to_str().unwrap()]);
    assert_one_line_error(&out, 2, "`producers = 0` in");
    let out = run_env(
        s.dir(),
        &["--config", "cfg.toml", "--output", "json"],
        &[("PC_HOST_PRODUCERS", "2")],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v = common::json(&out);
    assert_eq!(
        (
            v["config"]["producers"].as_u64(),
            v["config"]["messages"].as_u64()
        ),
        (Some(2), Some(5))
    );
    let out = run_env(
        s.dir(),
        &[
            "--config",
            "cfg.toml",
            "--producers",
            "3",
            "--duration",
            "0.1",
            "--output",
            "json",
        ],
        &[("PC_HOST_PRODUCERS", "0"), ("PC_HOST_RPS", "100")],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v = common::json(&out);
    assert_eq!(v["config"]["producers"], 3, "flag beats env");
    assert_eq!(v["config"]["rps"], 100, "env beats file");
    assert_eq!(
        v["stop_reason"], "duration",
        "a --duration flag beats the file's `messages`"
    );

    // --pin / --no-pin beat PC_HOST_PIN, which beats `pin` in the file.
    std::fs::write(
        &cfg,
        "producers = 1\nconsumers = 1\nmessages = 5\nreport-interval = 0\npin = false\n",
    )
    .unwrap();
    let pin = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["--config", "cfg.toml", "--output", "json"];
        all.extend_from_slice(args);
        let out = run_env(s.dir(), &all, env);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        common::json(&out)["config"]["pin"].as_bool().unwrap()
    };
    assert!(!pin(&[], &[]));
    assert!(pin(&[], &[("PC_HOST_PIN", "true")]));
    assert!(!pin(&["--no-pin"], &[("PC_HOST_PIN", "true")]));
    assert!(pin(&["--no-pin", "--pin"], &[("PC_HOST_PIN", "false")]));
    // The adaptive batch wait (the default, up to 2 ms) and a fixed one given as 2 ms are told
    // apart in the run's recorded config.
    let fixed = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["--config", "cfg.toml", "--output", "json"];
        all.extend_from_slice(args);
        let out = run_env(s.dir(), &all, env);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let v = common::json(&out);
        assert_eq!(v["config"]["batch_wait_ms"], 2.0);
        v["config"]["batch_wait_fixed"].as_bool().unwrap()
    };
    assert!(!fixed(&[], &[]));
    assert!(fixed(&["--batch-wait-ms", "2"], &[]));
    assert!(fixed(&[], &[("PC_HOST_BATCH_WAIT_MS", "2")]));
    assert_one_line_error(
        &run_env(s.dir(), &[], &[("PC_HOST_PIN", "maybe")]),
        2,
        "PC_HOST_PIN=maybe is not a boolean",
    );
    assert_one_line_error(
        &run_env(s.dir(), &[], &[("PC_HOST_PIN", "")]),
        2,
        "PC_HOST_PIN is set but empty",
    );
    // A --messages flag beats PC_HOST_DURATION.
    let out = run_env(
        s.dir(),
        &[
            "--config",
            "cfg.toml",
            "--messages",
            "7",
            "--output",
            "json",
        ],
        &[("PC_HOST_DURATION", "600")],
    );
    assert_eq!(common::json(&out)["stored"], 7);

    std::fs::write(&cfg, "producers = 2\nproducer = 3\n").unwrap();
    assert_one_line_error(
        &run(s.dir(), &["--config", "cfg.toml"]),
        2,
        "cfg.toml line 2: unknown key `producer` (did you mean producers?)",
    );
    std::fs::write(&cfg, "zzz = 1\n").unwrap();
    let out = run(s.dir(), &["--config", "cfg.toml"]);
    assert_one_line_error(&out, 2, "cfg.toml line 1: unknown key `zzz`");
    assert!(!out.stderr.contains("did you mean"), "{}", out.stderr);
    std::fs::write(&cfg, "producers = \"ten\"\n").unwrap();
    assert_one_line_error(&run(s.dir(), &["--config", "cfg.toml"]), 2, "line 1");
    std::fs::write(&cfg, "rps = 0\nproducers = [1, 2]\n").unwrap();
    assert_one_line_error(
        &run(s.dir(), &["--config", "cfg.toml"]),
        2,
        "cfg.toml line 2: `producers` takes one value, not a list",
    );
    std::fs::write(&cfg, "duration = 1\nmessages = 10\n").unwrap();
    assert_one_line_error(
        &run(s.dir(), &["--config", "cfg.toml"]),
        2,
        "both say when to stop",
    );
    std::fs::write(&cfg, "db = \"\"\n").unwrap();
    assert_one_line_error(
        &run(s.dir(), &["--config", "cfg.toml"]),
        2,
        "cfg.toml line 1: `db = \"\"`: a value is required for '--db <PATH>'",
    );
    assert_one_line_error(
        &run(s.dir(), &["--config", "missing.toml"]),
        2,
        "cannot read --config missing.toml",
    );
    // Given by the variable, the file is named by the variable, not a flag nobody typed.
    assert_one_line_error(
        &run_env(s.dir(), &[], &[("PC_HOST_CONFIG", "missing.toml")]),
        2,
        "error: cannot read PC_HOST_CONFIG=missing.toml",
    );
    std::fs::write(s.path("typo.toml"), "producers = 2\nprodcers = 3\n").unwrap();
    assert_one_line_error(
        &run_env(s.dir(), &[], &[("PC_HOST_CONFIG", "typo.toml")]),
        2,
        "error: PC_HOST_CONFIG=typo.toml line 2: unknown key `prodcers` (did you mean producers?)",
    );
    // A value out of range names the file as the variable gave it too.
    std::fs::write(s.path("zero.toml"), "producers = 0\n").unwrap();
    assert_one_line_error(
        &run_env(s.dir(), &[], &[("PC_HOST_CONFIG", "zero.toml")]),
        2,
        "error: `producers = 0` in PC_HOST_CONFIG=zero.toml line 1 is too small",
    );
    // A value the file gives and a later check refuses names its line too.
    std::fs::write(s.path("sink.toml"), "producers = 2\n\nsink = \"bogus:x\"\n").unwrap();
    assert_one_line_error(
        &run_env(s.dir(), &[], &[("PC_HOST_CONFIG", "sink.toml")]),
        2,
        "error: `sink = bogus:x` in PC_HOST_CONFIG=sink.toml line 3: unknown sink `bogus`",
    );
    // A table or a dotted key is named at its own line.
    std::fs::write(s.path("table.toml"), "producers = 2\n\n[section]\nx = 1\n").unwrap();
    assert_one_line_error(
        &run(s.dir(), &["--config", "table.toml"]),
        2,
        "error: --config table.toml line 3: unknown key `section`",
    );
}

#[test]
fn unusable_database_paths_fail_before_any_thread_starts() {
    let s = Scratch::new("paths");
    let out = run(
        s.dir(),
        &["--db", "/nonexistent-pc-host-dir/x.db", "--messages", "1"],
    );
    assert_one_line_error(
        &out,
        1,
        "cannot open database /nonexistent-pc-host-dir/x.db: its directory /nonexistent-pc-host-dir: No such file",
    );
    // A link to a place whose directory is missing names the link, its target and why.
    std::os::unix::fs::symlink("nowhere/x.db", s.path("dangling.db")).unwrap();
    let out = run(s.dir(), &["--db", "dangling.db", "--messages", "1"]);
    assert_one_line_error(
        &out,
        1,
        "cannot open database dangling.db: it is a symbolic link to ./nowhere/x.db, whose \
         directory ./nowhere: No such file",
    );
    assert!(!s.path("nowhere").exists());
    // A -shm that is a link: SQLite refuses to open the database, and the line says why.
    let made = run(s.dir(), &["--db", "l.db", "--messages", "1"]);
    assert_eq!(made.code, Some(0), "{}", made.stderr);
    std::fs::write(s.path("elsewhere"), "").unwrap();
    std::os::unix::fs::symlink("elsewhere", s.path("l.db-shm")).unwrap();
    for args in [
        &["--db", "l.db", "--messages", "1"][..],
        &["verify", "--db", "l.db"],
    ] {
        let out = run(s.dir(), args);
        assert_one_line_error(&out, 1, "l.db-shm is a symbolic link, and SQLite opens");
    }
    assert_eq!(std::fs::read(s.path("elsewhere")).unwrap(), b"");
    std::fs::remove_file(s.path("l.db-shm")).unwrap();
    let out = run(
        s.dir(),
        &["--db", s.dir().to_str().unwrap(), "--messages", "1"],
    );
    assert_one_line_error(&out, 1, "is a directory");
    let out = run(s.dir(), &["verify", "--db", "nothing.db"]);
    assert_one_line_error(&out, 1, "no database file at nothing.db");
    // A pipe or device is refused, and nothing is written beside it (`--db /dev/null` left a
    // `/dev/null-journal`).
    let fifo = std::ffi::CString::new(s.path("fifo").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates the named pipe.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0, "mkfifo");
    let out = run(s.dir(), &["--db", "fifo", "--messages", "1"]);
    assert_one_line_error(&out, 1, "fifo is not a regular file");
    for leftover in ["fifo-journal", "fifo-wal", "fifo-shm"] {
        assert!(!s.path(leftover).exists(), "{leftover} was created");
    }
    // verify and plot say what is there instead of a database file, as a run does.
    let dir = s.dir().to_str().unwrap();
    for (db, said) in [
        (dir, "is a directory"),
        ("fifo", "fifo is not a regular file"),
    ] {
        for args in [
            &["verify", "--db", db][..],
            &["plot", "--db", db, "-o", "p.svg"],
        ] {
            assert_one_line_error(&run(s.dir(), args), 1, said);
        }
    }
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_untouched() {
    let s = Scratch::new("notdb");
    let file = s.path("notes.txt");
    let content = "These are my notes, not a database.\n".repeat(200);
    std::fs::write(&file, &content).unwrap();
    let out = run(s.dir(), &["--db", "notes.txt", "--messages", "10"]);
    assert_one_line_error(&out, 1, "notes.txt is not an SQLite database");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), content);
    assert!(!s.path("notes.txt-wal").exists());
    assert_one_line_error(
        &run(s.dir(), &["verify", "--db", "notes.txt"]),
        1,
        "not an SQLite database",
    );
}

/// Files beside a database that SQLite would apply or remove, and that are not a pc-host
/// database's, are left as they are: a `-wal`, `-shm` or `-journal` where there is no
/// database yet (a run deleted them and made a database there), and a `-journal` beside
/// another program's database (opening rolled that transaction back into its file).
#[test]
fn journals_another_program_left_beside_a_database_are_refused_and_left_untouched() {
    let s = Scratch::new("side-files");
    for suffix in ["-wal", "-shm", "-journal"] {
        let side = s.path(&format!("new.db{suffix}"));
        std::fs::write(&side, "precious\n").unwrap();
        let out = run(s.dir(), &["--db", "new.db", "--messages", "10"]);
        let shown = format!("new.db{suffix} is there");
        assert_one_line_error(&out, 1, &shown);
        assert_eq!(std::fs::read_to_string(&side).unwrap(), "precious\n");
        assert!(
            !s.path("new.db").exists(),
            "no database made beside {suffix}"
        );
        std::fs::remove_file(&side).unwrap();
    }
    // Another program's database in the middle of a rollback-journal transaction.
    let db = s.path("theirs.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('theirs');")
        .unwrap();
    drop(c);
    let journal = s.path("theirs.db-journal");
    std::fs::write(&journal, "their unfinished transaction\n").unwrap();
    let (before, journal_before) = (
        std::fs::read(&db).unwrap(),
        std::fs::read(&journal).unwrap(),
    );
    for args in [
        &[
            "--db",
            "theirs.db",
            "--messages",
            "10",
            "--busy-timeout-ms",
            "100",
        ][..],
        &["verify", "--db", "theirs.db"],
        &["plot", "--db", "theirs.db", "-o", "p.svg"],
    ] {
        let out = run(s.dir(), args);
        assert_one_line_error(
            &out,
            1,
            "theirs.db-journal is there: a transaction on theirs.db in rollback-journal mode \
             did not finish",
        );
        assert_eq!(std::fs::read(&db).unwrap(), before, "{args:?}");
        assert_eq!(std::fs::read(&journal).unwrap(), journal_before, "{args:?}");
    }
}

/// A file another program put where SQLite keeps a database's log or shared-memory index
/// (`x.db-wal`, `x.db-shm` beside a pc-host database) is refused, not discarded: opening the
/// database would have removed or overwritten it. A log SQLite wrote (a run's, left by a
/// crash) is not in the way.
#[test]
fn a_foreign_file_where_the_databases_log_goes_is_refused_and_left_untouched() {
    let s = Scratch::new("foreign-side");
    let made = run(s.dir(), &["--db", "g.db", "--messages", "5"]);
    assert_eq!(made.code, Some(0), "{}", made.stderr);
    let looks: [&[&str]; 3] = [
        &["--db", "g.db", "--messages", "5"],
        &["verify", "--db", "g.db"],
        &["plot", "--db", "g.db", "-o", "g.svg"],
    ];
    for suffix in ["-wal", "-shm"] {
        let side = s.path(&format!("g.db{suffix}"));
        let shown = format!("g.db{suffix} is beside g.db but is not SQLite's {suffix} file");
        std::fs::write(&side, "precious notes\n").unwrap();
        for args in looks {
            let out = run(s.dir(), args);
            assert_one_line_error(&out, 1, &shown);
            assert_eq!(std::fs::read_to_string(&side).unwrap(), "precious notes\n");
        }
        std::fs::remove_file(&side).unwrap();
        // A pipe there is refused too, without waiting for a writer to open it.
        let fifo = std::ffi::CString::new(side.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates the named pipe.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0, "mkfifo");
        for args in looks {
            assert_one_line_error(&run(s.dir(), args), 1, &shown);
        }
        std::fs::remove_file(&side).unwrap();
    }
    assert!(!s.path("g.svg").exists(), "plotted beside a foreign file");
    // A pipe where the journal goes is refused as a journal would be, without waiting.
    let fifo = std::ffi::CString::new(s.path("g.db-journal").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates the named pipe.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0, "mkfifo");
    for args in looks {
        let out = run(s.dir(), &[args, &["--busy-timeout-ms", "50"]].concat());
        assert_one_line_error(&out, 1, "g.db-journal is there");
    }
    std::fs::remove_file(s.path("g.db-journal")).unwrap();
    // A log SQLite wrote: kept open by a connection that never checkpoints it away.
    let holder = rusqlite::Connection::open(s.path("g.db")).unwrap();
    holder
        .execute_batch("PRAGMA wal_autocheckpoint = 0; INSERT INTO runs (started_at, producers, first_id, config) SELECT started_at, producers, first_id, config FROM runs LIMIT 1;")
        .unwrap();
    assert!(std::fs::metadata(s.path("g.db-wal")).unwrap().len() > 0);
    let out = run(s.dir(), &["--db", "g.db", "--messages", "5"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

/// A database name SQLite would take for another database's log (or journal, or index) is
/// refused before anything is made: opening the other database would remove it. A database
/// already there by such a name is read and written while no database is beside it by the
/// shorter name (whose log it could be), and refused once one is.
#[test]
fn a_db_named_like_a_databases_side_file_is_refused() {
    let s = Scratch::new("side-named");
    for name in ["d1.db-wal", "d1.db-shm", "d1.db-journal"] {
        let out = run(s.dir(), &["--db", name, "--messages", "5"]);
        assert_one_line_error(&out, 2, "is the name SQLite gives the");
        assert!(!s.path(name).exists(), "{name} made");
    }
    // A log left behind by a database since removed is not a database.
    std::fs::write(s.path("gone.db-wal"), "a log\n").unwrap();
    let out = run(s.dir(), &["verify", "--db", "gone.db-wal"]);
    assert_one_line_error(&out, 2, "is the name SQLite gives the");
    let made = run(s.dir(), &["--db", "audit.db", "--messages", "5"]);
    assert_eq!(made.code, Some(0), "{}", made.stderr);
    std::fs::rename(s.path("audit.db"), s.path("audit-journal")).unwrap();
    for args in [
        &["verify", "--db", "audit-journal"][..],
        &["--db", "audit-journal", "--messages", "5"],
    ] {
        let out = run(s.dir(), args);
        assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
    }
    std::fs::write(s.path("audit"), "").unwrap();
    let out = run(s.dir(), &["verify", "--db", "audit-journal"]);
    assert_one_line_error(&out, 2, "is the name SQLite gives the");
    // From `audit`'s side, the database by the journal's name is not taken for a journal to
    // roll back (SQLite opening `audit` would delete it).
    std::fs::copy(s.path("audit-journal"), s.path("audit")).unwrap();
    let kept = std::fs::read(s.path("audit-journal")).unwrap();
    for args in [
        &["verify", "--db", "audit"][..],
        &["plot", "--db", "audit", "-o", "a.svg"],
        &["--db", "audit", "--messages", "5"],
    ] {
        let out = run(s.dir(), args);
        assert_one_line_error(
            &out,
            1,
            "audit-journal is a SQLite database, not the journal",
        );
        assert_eq!(std::fs::read(s.path("audit-journal")).unwrap(), kept);
    }
}

#[test]
fn an_empty_existing_db_file_is_refused_and_left_untouched() {
    let s = Scratch::new("emptydb");
    let file = s.path("empty.db");
    std::fs::write(&file, "").unwrap();
    let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
    // SQLite would take a 0-byte file for a new database and make it one.
    // Refused once it is still empty after the busy timeout (it could have been another
    // pc-host's, about to get its first page).
    for args in [
        &[
            "--db",
            "empty.db",
            "--messages",
            "10",
            "--busy-timeout-ms",
            "50",
        ][..],
        &[
            "--sink",
            "sqlite:empty.db",
            "--messages",
            "10",
            "--busy-timeout-ms",
            "50",
        ],
    ] {
        assert_one_line_error(
            &run(s.dir(), args),
            1,
            "empty.db is an empty file (0 bytes): another program's, or one a pc-host run was \
             killed while creating; pc-host will not write to it",
        );
    }
    // verify and plot, which only read, refuse it as well, saying what to give instead.
    for args in [
        &["verify", "--db", "empty.db"][..],
        &["plot", "--db", "empty.db", "-o", "p.svg"],
    ] {
        assert_one_line_error(
            &run(s.dir(), args),
            1,
            "empty.db is an empty file (0 bytes): another program's, or one a pc-host run was \
             killed while creating; give the --db",
        );
    }
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(
        (meta.len(), meta.modified().unwrap()),
        (0, modified),
        "the file was written to"
    );
    let mut left: Vec<String> = std::fs::read_dir(s.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["empty.db"],
        "nothing (-wal, -shm, -journal, p.svg) is made beside it"
    );
}

/// A file whose size reads 0 but which reading fills (the kernel's files under /proc) is not
/// called empty, and is refused at once, for a run and for the commands that only read.
#[test]
fn a_proc_file_whose_size_reads_zero_is_refused_as_not_a_database_not_as_empty() {
    let s = Scratch::new("procdb");
    let proc_file = std::path::Path::new("/proc/self/status");
    if !std::fs::metadata(proc_file).is_ok_and(|m| m.is_file() && m.len() == 0) {
        println!("SKIP: no /proc file whose size reads 0 here");
        return;
    }
    for (args, then) in [
        (
            &["--db", "/proc/self/status", "--messages", "5"][..],
            "give another --db",
        ),
        (&["verify", "--db", "/proc/self/status"], "give the --db"),
        (
            &["plot", "--db", "/proc/self/status", "-o", "p.svg"],
            "give the --db",
        ),
    ] {
        let out = run(s.dir(), args);
        assert_one_line_error(
            &out,
            1,
            "/proc/self/status is not a database: its size reads 0 bytes, yet reading it gives \
             some",
        );
        let err = &out.stderr;
        assert!(err.contains(then), "{err}");
        assert!(!err.contains("empty file"), "{err}");
    }
}

/// A database another program made and left without tables (in WAL mode or not) is not
/// pc-host's, though SQLite would let pc-host create its tables there: refused unchanged,
/// once the busy timeout has passed (it could have been another pc-host's, being set up).
#[test]
fn a_blank_database_another_program_made_is_refused_and_left_untouched() {
    let s = Scratch::new("blankdb");
    for (name, setup) in [
        ("blank.db", "PRAGMA user_version = 0; VACUUM;"),
        ("blank-wal.db", "PRAGMA journal_mode = WAL;"),
    ] {
        let file = s.path(name);
        let conn = rusqlite::Connection::open(&file).unwrap();
        conn.execute_batch(setup).unwrap();
        drop(conn);
        let before = std::fs::read(&file).unwrap();
        assert!(!before.is_empty(), "{name}: SQLite wrote its header");
        let out = run(
            s.dir(),
            &["--db", name, "--messages", "10", "--busy-timeout-ms", "50"],
        );
        assert_one_line_error(
            &out,
            1,
            &format!("{name} is a database with no tables and no pc-host mark"),
        );
        assert_eq!(
            std::fs::read(&file).unwrap(),
            before,
            "{name} was written to"
        );
    }
}

/// A `--db` that is a symbolic link to where nothing is yet names a new database at the
/// link's target, as SQLite opens it: the run creates it there (it took the target SQLite had
/// just made for a file someone else created, and refused it).
#[test]
fn a_db_given_as_a_link_to_nothing_yet_is_created_at_the_target() {
    let s = Scratch::new("db-dangling-link");
    std::fs::create_dir(s.path("data")).unwrap();
    std::os::unix::fs::symlink("data/target.db", s.path("link.db")).unwrap();
    let out = run(
        s.dir(),
        &[
            "--db",
            "link.db",
            "--messages",
            "5",
            "--report-interval",
            "0",
        ],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let meta = std::fs::symlink_metadata(s.path("link.db")).unwrap();
    assert!(meta.file_type().is_symlink(), "the link stays a link");
    let rows: i64 = rusqlite::Connection::open(s.path("data/target.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 5);
}

#[test]
fn a_database_with_another_schema_is_refused_and_left_untouched() {
    let s = Scratch::new("schema");
    let db = s.path("seed.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, message TEXT, created_at DATETIME);
         INSERT INTO messages (message, created_at) VALUES ('Message from producer 1: #1', '2024-01-01');",
    )
    .unwrap();
    drop(conn);
    let out = run(s.dir(), &["--db", "seed.db", "--messages", "10"]);
    assert_one_line_error(
        &out,
        1,
        "seed.db is not a pc-host database (it has tables: messages)",
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    let tables: i64 = conn
        .query_row("SELECT COUNT(*) FROM sqlite_schema", [], |r| r.get(0))
        .unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        (n, tables, mode.as_str()),
        (1, 1, "delete"),
        "the file was not changed"
    );
    // verify and plot only read: their refusal says what to give instead, not "will not write".
    for args in [
        &["verify", "--db", "seed.db"][..],
        &["plot", "--db", "seed.db", "-o", "p.svg"],
    ] {
        let out = run(s.dir(), args);
        assert_one_line_error(
            &out,
            1,
            "seed.db is not a pc-host database (it has tables: messages); give the --db that a \
             pc-host run wrote",
        );
    }
    assert!(!s.path("p.svg").exists(), "plot wrote a picture of nothing");
}

#[test]
fn a_database_locked_by_another_process_is_waited_for_then_reported() {
    let s = Scratch::new("locked");
    let out = run(
        s.dir(),
        &["--messages", "10", "--rps", "0", "--report-interval", "0"],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let holder = rusqlite::Connection::open(s.path("pc-host.db")).unwrap();
    holder
        .execute_batch("BEGIN IMMEDIATE; UPDATE runs SET config = config;")
        .unwrap();
    let out = run(s.dir(), &["--messages", "10", "--busy-timeout-ms", "200"]);
    assert_one_line_error(
        &out,
        1,
        "is locked by another process (gave up after waiting 0.2 s)",
    );
    holder.execute_batch("ROLLBACK").unwrap();
    // Once the lock is gone the same command works, and the failed attempt left no run behind.
    let out = run(
        s.dir(),
        &[
            "--messages",
            "10",
            "--busy-timeout-ms",
            "200",
            "--output",
            "json",
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(common::json(&out)["run_id"], 2);
}

/// `verify` and `plot` wait for a locked database as long as `--busy-timeout-ms` (or
/// `PC_HOST_BUSY_TIMEOUT_MS`) says, as their message suggests (verify refused the flag, and
/// both took the variable and waited 5 s).
#[test]
fn verify_and_plot_wait_for_a_lock_as_long_as_busy_timeout_says() {
    let s = Scratch::new("locked-reads");
    let out = run(
        s.dir(),
        &["--messages", "10", "--rps", "0", "--report-interval", "0"],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // A WAL database's readers wait only for an exclusive lock.
    let holder = rusqlite::Connection::open(s.path("pc-host.db")).unwrap();
    holder
        .execute_batch(
            "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; UPDATE runs SET config = config;",
        )
        .unwrap();
    let needle = "is locked by another process (gave up after waiting 0.2 s)";
    for args in [
        &["verify", "--busy-timeout-ms", "200"][..],
        &["plot", "-o", "p.svg", "--busy-timeout-ms", "200"],
    ] {
        assert_one_line_error(&run(s.dir(), args), 1, needle);
    }
    let env = [("PC_HOST_BUSY_TIMEOUT_MS", "200")];
    assert_one_line_error(&run_env(s.dir(), &["verify"], &env), 1, needle);
    assert_one_line_error(&run_env(s.dir(), &["plot", "-o", "p.svg"], &env), 1, needle);
    holder.execute_batch("ROLLBACK").unwrap();
}

/// A variable whose value is not UTF-8 is named (clap said only "one or more arguments"),
/// where its option takes text; a path option takes any bytes, from a variable too.
#[test]
fn an_environment_value_that_is_not_utf8_names_its_variable() {
    use std::os::unix::ffi::OsStrExt as _;
    let s = Scratch::new("env-utf8");
    for args in [&["--messages", "5"][..], &["verify"][..]] {
        let out: common::Out = common::pc_host(s.dir())
            .args(args)
            .env("PC_HOST_PRODUCERS", std::ffi::OsStr::from_bytes(b"\xff"))
            .output_within()
            .unwrap()
            .into();
        assert_one_line_error(
            &out,
            2,
            "PC_HOST_PRODUCERS: its value is not valid UTF-8: give it as text",
        );
    }
    let out: common::Out = common::pc_host(s.dir())
        .args(["--messages", "5", "--rps", "0", "--report-interval", "0"])
        .env("PC_HOST_DB", std::ffi::OsStr::from_bytes(b"\xff.db"))
        .output_within()
        .unwrap()
        .into();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        s.dir()
            .join(std::ffi::OsStr::from_bytes(b"\xff.db"))
            .exists()
    );
}

/// A config file that is a pipe is read to its end, as `--config <(...)` gives one, once its
/// writer writes, even if it starts after pc-host; one that nobody writes to is refused after a
/// wait, not waited on for ever (its open did) nor read as empty (the run then went ahead on
/// the defaults, into another database).
#[test]
fn a_config_file_that_is_a_pipe_waits_a_little_for_its_writer() {
    let s = Scratch::new("config-fifo");
    let fifo =
        std::ffi::CString::new(s.path("cfg.toml").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let args = ["--messages", "4", "--rps", "0", "--output", "json"];
    let out = run_env(s.dir(), &args, &[("PC_HOST_CONFIG", "cfg.toml")]);
    assert_one_line_error(
        &out,
        2,
        "PC_HOST_CONFIG=cfg.toml is a pipe nobody wrote to within 5 s: start its writer first",
    );
    assert!(!s.path("pc-host.db").exists(), "no run on the defaults");
    // A writer that opens the pipe only once pc-host has (its open waits for a reader).
    let path = s.path("cfg.toml");
    let writer = std::thread::spawn(move || {
        std::fs::write(path, "consumers = 3\n").expect("write the pipe");
    });
    let mut late = vec!["--config", "cfg.toml"];
    late.extend(args);
    let out = run(s.dir(), &late);
    writer.join().unwrap();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(common::json(&out)["config"]["consumers"], 3);
    // A pipe with the config in it, as `--config <(...)` passes one (here as stdin).
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: pipe(2) just made both descriptors, and nothing else owns them.
    let (read, write) = unsafe {
        use std::os::fd::FromRawFd as _;
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    std::io::Write::write_all(&mut { write }, b"consumers = 3\n").unwrap();
    let out: common::Out = common::pc_host(s.dir())
        .args(["--config", "/dev/stdin"])
        .args(args)
        .stdin(std::process::Stdio::from(read))
        .output_within()
        .unwrap()
        .into();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(common::json(&out)["config"]["consumers"], 3);
}

/// A TOML float in a config file is a float for a whole-number option too, as `--producers
/// 2.0` and `--rps 1e3` are on the command line (the file's `2.0` ran 2 producers, and
/// `producers = 1e3` a thousand); a float option still takes one.
#[test]
fn a_float_in_the_config_file_is_refused_for_a_whole_number_option_as_a_flag_is() {
    let s = Scratch::new("config-floats");
    for (line, shown, flag) in [
        ("producers = 2.0", "producers = 2.0", "--producers <N>"),
        ("rps = 1e3", "rps = 1000.0", "--rps <MSG_PER_S>"),
    ] {
        std::fs::write(s.path("cfg.toml"), format!("{line}\n")).unwrap();
        assert_one_line_error(
            &run(s.dir(), &["--config", "cfg.toml"]),
            2,
            &format!(
                "cfg.toml line 1: `{shown}`: invalid value '{}' for '{flag}': it must be a whole number",
                &shown[shown.find("= ").unwrap() + 2..]
            ),
        );
    }
    std::fs::write(
        s.path("cfg.toml"),
        "messages = 5\nrps = 0\nreport-interval = 5e-1\n",
    )
    .unwrap();
    let out = run(s.dir(), &["--config", "cfg.toml", "--output", "json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(common::json(&out)["config"]["report_interval_s"], 0.5);
}

#[test]
fn a_lock_held_mid_run_without_retries_fails_the_run_with_an_error_and_a_non_zero_exit() {
    let s = Scratch::new("midlock");
    let mut r = common::Running::start(
        &s,
        &[
            "--producers",
            "2",
            "--consumers",
            "2",
            "--rps",
            "2000",
            "--duration",
            "600",
            "--report-interval",
            "0.05",
            "--busy-timeout-ms",
            "100",
            "--retry-for",
            "0",
            "--output",
            "json",
        ],
    );
    r.err.wait("showing messages stored", common::stored_some);
    let holder = rusqlite::Connection::open(s.path("pc-host.db")).unwrap();
    holder
        .busy_timeout(std::time::Duration::from_secs(60))
        .unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    // pc-host's next commit waits 100 ms for the lock, then the run stops with an error.
    let out = common::finish(r);
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(out.code, Some(1), "a failed run exits non-zero");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("still one JSON object");
    assert_eq!(v["ok"], false);
    assert_eq!(v["stop_reason"], "error");
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("locked by another process"), "{error}");
    assert!(
        common::u(&v, "stored") < common::u(&v, "consumed"),
        "the failed batch is not stored"
    );
    let stderr: Vec<&str> = out.stderr.lines().collect();
    assert!(!stderr.iter().any(|l| l.contains("panicked")), "{stderr:?}");
}

/// After one commit fails, the other consumers do not each wait out the busy timeout on the
/// same lock (20 consumers took 23 s to stop): the first failure ends every later commit at
/// once, so the lock is named once and the rest say an earlier commit failed.
#[test]
fn after_a_failed_commit_the_other_consumers_stop_without_waiting_again() {
    let s = Scratch::new("failed-once");
    let mut r = common::Running::start(
        &s,
        &[
            "--producers",
            "2",
            "--consumers",
            "5",
            "--batch-size",
            "10",
            "--rps",
            "20000",
            "--duration",
            "600",
            "--report-interval",
            "0.05",
            "--busy-timeout-ms",
            "200",
            "--retry-for",
            "0",
            "--output",
            "json",
        ],
    );
    r.err.wait("showing messages stored", common::stored_some);
    let holder = rusqlite::Connection::open(s.path("pc-host.db")).unwrap();
    holder
        .busy_timeout(std::time::Duration::from_secs(60))
        .unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let out = common::finish(r);
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(out.code, Some(1));
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON object");
    let error = v["error"].as_str().unwrap();
    assert_eq!(
        error.matches("committing a batch").count(),
        1,
        "only the first commit waits on the lock: {error}"
    );
}

/// A foreign database whose WAL was never folded in (its writer died) is refused and left
/// byte for byte as it was: pc-host looks through a read-only connection, so nothing
/// checkpoints that WAL into the file on close (it did, growing the file).
#[test]
fn a_foreign_database_with_a_live_wal_is_refused_and_not_checkpointed() {
    let s = Scratch::new("foreign-wal");
    let holder = rusqlite::Connection::open(s.path("a.db")).unwrap();
    holder
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE notes (x TEXT);
             INSERT INTO notes VALUES ('one'), ('two'), ('three');",
        )
        .unwrap();
    // A copy taken while the writer is open is a database with a live WAL and no connection.
    std::fs::copy(s.path("a.db"), s.path("f.db")).unwrap();
    std::fs::copy(s.path("a.db-wal"), s.path("f.db-wal")).unwrap();
    drop(holder);
    let before = std::fs::read(s.path("f.db")).unwrap();
    let wal_before = std::fs::read(s.path("f.db-wal")).unwrap();
    let out = run(s.dir(), &["--db", "f.db", "--messages", "1"]);
    assert_one_line_error(
        &out,
        1,
        "f.db is not a pc-host database (it has tables: notes)",
    );
    assert_eq!(
        std::fs::read(s.path("f.db")).unwrap(),
        before,
        "f.db was written to"
    );
    assert_eq!(
        std::fs::read(s.path("f.db-wal")).unwrap(),
        wal_before,
        "its WAL was folded in or changed"
    );
}

/// A foreign database in WAL mode, closed cleanly (nothing beside it), is refused and left
/// as it was found: no `-wal` or `-shm` of pc-host's stays beside it (they did: the look that
/// refused it opened them and, not to checkpoint into a foreign file, kept them on close).
#[test]
fn a_refused_foreign_wal_database_is_left_without_side_files() {
    let s = Scratch::new("foreign-clean-wal");
    let conn = rusqlite::Connection::open(s.path("f.db")).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('a');",
    )
    .unwrap();
    drop(conn);
    let before = std::fs::read(s.path("f.db")).unwrap();
    for args in [
        &["--db", "f.db", "--messages", "1"][..],
        &["verify", "--db", "f.db"],
    ] {
        let out = run(s.dir(), args);
        assert_one_line_error(
            &out,
            1,
            "f.db is not a pc-host database (it has tables: notes)",
        );
        let mut beside: Vec<String> = std::fs::read_dir(s.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("f.db") && name != "f.db")
            .collect();
        beside.sort();
        assert_eq!(
            beside,
            Vec::<String>::new(),
            "{args:?} left files beside f.db"
        );
        assert_eq!(
            std::fs::read(s.path("f.db")).unwrap(),
            before,
            "f.db was written to"
        );
    }
}

/// A dead-letter file pc-host cannot or must not write, and an unusable --retry-for, are
/// refused before the run starts: one line, exit 2, no database created, the file that is
/// there left as it was.
#[test]
fn lane_combinations_that_cannot_work_are_one_line_errors_with_exit_2() {
    let s = Scratch::new("lanes");
    std::fs::write(s.path("a.log"), "one\n").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--lanes", ""], "--lanes : names no lane"),
        (&["--lanes", "high"], "`high` is not NAME:WEIGHT"),
        (&["--lanes", "high:1,"], "`` is not NAME:WEIGHT"),
        (
            &["--lanes", ":1,low:9"],
            "a lane needs a name (NAME:WEIGHT)",
        ),
        (
            &["--lanes", "high:1", "--source", "file:a.log?lane="],
            "file:a.log?lane=: a lane needs a name",
        ),
        (&["--lanes", "high:0,low:9"], "lane `high`: weight `0`"),
        (
            &["--lanes", "high:1,high:9"],
            "lane `high` is declared twice",
        ),
        (&["--lanes", "a.b:1"], "not a usable lane name"),
        (
            &["--lanes", "high:1,low:9", "--producers", "1"],
            "--producers 1 cannot be split across the 2 lanes of --lanes high:1,low:9",
        ),
        (
            &["--lanes", "high:1,low:9", "--messages", "1"],
            "--messages 1 cannot be split across the 2 lanes",
        ),
        (
            &["--lanes", "a:1,b:1,c:1", "--rps", "2"],
            "--rps 2 cannot be split across the 3 lanes",
        ),
        (
            &["--source", "file:a.log?lane=high"],
            "--source file:a.log?lane=high: lane= needs --lanes",
        ),
        (
            &["--lanes", "high:1,low:9", "--source", "file:a.log?lane=mid"],
            "--source file:a.log?lane=mid: lane `mid` is not declared by --lanes high:1,low:9 \
             (lanes: high, low)",
        ),
        (
            &["--source", "generate?lane=high"],
            "generate takes no parameters",
        ),
    ];
    for (args, needle) in cases {
        let out = run(s.dir(), args);
        assert_one_line_error(&out, 2, needle);
        assert!(
            !s.path("pc-host.db").exists(),
            "{args:?} created the database"
        );
    }
    assert_one_line_error(
        &run_env(s.dir(), &[], &[("PC_HOST_LANES", "high:1,low:x")]),
        2,
        "PC_HOST_LANES=high:1,low:x: lane `low`: weight `x`",
    );
}

/// A dead-letter file that is also an input reads back every record it dead-letters, for as
/// long as the run lasts: refused when the input is standard input redirected from it, or a
/// hard link of it, as when it is named as the input itself.
#[test]
fn a_dead_letter_file_that_is_the_input_on_stdin_or_through_a_hard_link_is_refused() {
    let s = Scratch::new("dead-letter-is-input");
    std::fs::write(s.path("bad.txt"), b"bad \xff 1\nbad \xff 2\n").unwrap();
    let (made, _) = common::run_with_file_stdin(
        s.dir(),
        &["--source", "-", "--dead-letter", "dead.jsonl"],
        "bad.txt",
    );
    assert_eq!(made.code, Some(0), "{}", made.stderr);
    let dead = std::fs::read(s.path("dead.jsonl")).unwrap();
    assert_eq!(
        dead.iter().filter(|&&b| b == b'\n').count(),
        2,
        "two dead letters"
    );
    std::fs::hard_link(s.path("dead.jsonl"), s.path("link.jsonl")).unwrap();
    let replay = "stdin?format=dead-letter";
    let (on_stdin, _) = common::run_with_file_stdin(
        s.dir(),
        &["--source", replay, "--dead-letter", "dead.jsonl"],
        "dead.jsonl",
    );
    let linked = run(
        s.dir(),
        &[
            "--source",
            "file:dead.jsonl?format=dead-letter",
            "--dead-letter",
            "link.jsonl",
        ],
    );
    for (out, flag) in [(on_stdin, "dead.jsonl"), (linked, "link.jsonl")] {
        assert_one_line_error(
            &out,
            2,
            &format!("--dead-letter {flag} is the database or an input of this run"),
        );
    }
    assert_eq!(
        std::fs::read(s.path("dead.jsonl")).unwrap(),
        dead,
        "the file changed"
    );
}

#[test]
fn dead_letter_and_retry_for_bad_values_are_one_line_errors_with_exit_2() {
    let s = Scratch::new("dead-letter-values");
    let foreign = s.path("notes.txt");
    let notes = b"my notes\nnot a dead-letter file\n".to_vec();
    std::fs::write(&foreign, &notes).unwrap();
    std::fs::create_dir_all(s.path("adir")).unwrap();
    let long_name = format!("{}.jsonl", "x".repeat(300));
    let cases: &[(&[&str], &str)] = &[
        (
            &["--dead-letter", "adir"],
            "--dead-letter adir is a directory: give a file path",
        ),
        (
            &["--dead-letter", "missing/dead.jsonl"],
            "--dead-letter missing/dead.jsonl: directory missing does not exist",
        ),
        (
            &["--dead-letter", "notes.txt"],
            "--dead-letter notes.txt exists and is not a pc-host dead-letter file",
        ),
        (
            &["--dead-letter", "notes.txt/dead.jsonl"],
            "--dead-letter notes.txt/dead.jsonl: directory notes.txt is not a directory",
        ),
        (&["--dead-letter", &long_name], "File name too long"),
        (
            &["--db", "pc-host.db", "--dead-letter", "pc-host.db"],
            "is the database or an input of this run",
        ),
        (
            &["--dead-letter", "./pc-host.db"],
            "is the database or an input of this run",
        ),
        (
            &["--retry-for", "-1"],
            "--retry-for -1 is not a usable number of seconds: it must be 0 or more",
        ),
        (&["--retry-for", "nan"], "not a usable number of seconds"),
        (
            &["--retry-for", "100000"],
            "is too long: at most 86400 s (one day)",
        ),
    ];
    for (args, needle) in cases {
        let mut all = args.to_vec();
        all.extend(["--messages", "10"]);
        let out = run(s.dir(), &all);
        assert_one_line_error(&out, 2, needle);
        assert!(
            !s.path("pc-host.db").exists(),
            "{args:?} created the database"
        );
        assert!(!s.path("missing").exists(), "{args:?} made the directory");
    }
    assert_eq!(std::fs::read(&foreign).unwrap(), notes, "notes.txt changed");

    // A directory it may not write to (as root, pc-host runs as nobody to see one).
    let ro = s.path("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    let mut cmd = common::pc_host(s.dir());
    cmd.args(["--dead-letter", "ro/dead.jsonl", "--messages", "10"]);
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
        std::os::unix::process::CommandExt::gid(&mut cmd, 65534);
    }
    let out: common::Out = cmd.output_within().expect("run pc-host").into();
    assert_one_line_error(
        &out,
        2,
        "--dead-letter ro/dead.jsonl: directory ro is not writable",
    );
    assert!(!ro.join("dead.jsonl").exists());
    assert!(!s.path("pc-host.db").exists());

    // A file system that refuses new files whatever the permissions say (where this process
    // may write there as far as `access` tells: as root, and /sys mounted read-write).
    // SAFETY: the path is a NUL-terminated literal; access only reads it.
    if unsafe { libc::access(c"/sys/kernel".as_ptr(), libc::W_OK) } == 0 {
        let out = run(
            s.dir(),
            &[
                "--dead-letter",
                "/sys/kernel/dead.jsonl",
                "--messages",
                "10",
            ],
        );
        assert_one_line_error(
            &out,
            2,
            "--dead-letter /sys/kernel/dead.jsonl: cannot make a file in /sys/kernel:",
        );
        assert!(!s.path("pc-host.db").exists());
    } else {
        println!("SKIP the /sys case: /sys/kernel is not writable to this process here");
    }
    let made: Vec<_> = std::fs::read_dir(s.dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".pc-host-"))
        .collect();
    assert!(made.is_empty(), "the checks left {made:?}");
}

#[test]
fn a_page_size_that_cannot_apply_is_one_line_and_leaves_the_database_as_it_was() {
    let s = Scratch::new("page-size");
    for size in ["1000", "256", "131072"] {
        assert_one_line_error(
            &run(s.dir(), &["--page-size", size, "--messages", "10"]),
            2,
            &format!("--page-size {size} is not a SQLite page size"),
        );
    }
    assert_one_line_error(
        &run_env(
            s.dir(),
            &["--messages", "10"],
            &[("PC_HOST_PAGE_SIZE", "3000")],
        ),
        2,
        "PC_HOST_PAGE_SIZE=3000 is not a SQLite page size",
    );
    assert_one_line_error(
        &run(
            s.dir(),
            &[
                "--page-size",
                "4096",
                "--sink",
                "postgres://nobody@127.0.0.1:1/none",
            ],
        ),
        2,
        "only a SQLite database has a page size",
    );
    assert!(
        !s.path("pc-host.db").exists(),
        "no database on a usage error"
    );

    // A database made with an unthrottled run's default pages (16 KiB) refuses another size,
    // and gets no new run.
    let made = run(
        s.dir(),
        &["--rps", "0", "--messages", "10", "--report-interval", "0"],
    );
    assert_eq!(made.code, Some(0), "stderr:\n{}", made.stderr);
    let runs = |db: &std::path::Path| -> i64 {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM runs", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(runs(&s.path("pc-host.db")), 1);
    let before = std::fs::read(s.path("pc-host.db")).unwrap();
    assert_one_line_error(
        &run(s.dir(), &["--page-size", "4096", "--messages", "10"]),
        1,
        "--page-size 4096: database pc-host.db has 16384-byte pages; a page size is set when \
         a database is created",
    );
    assert_eq!(
        std::fs::read(s.path("pc-host.db")).unwrap(),
        before,
        "the refused run changed no byte"
    );
    for litter in ["pc-host.db-wal", "pc-host.db-shm"] {
        assert!(!s.path(litter).exists(), "the refused run left {litter}");
    }
    assert_one_line_error(
        &run_env(
            s.dir(),
            &["--messages", "10"],
            &[("PC_HOST_PAGE_SIZE", "8192")],
        ),
        1,
        "PC_HOST_PAGE_SIZE=8192: database pc-host.db has 16384-byte pages",
    );
    assert_eq!(
        runs(&s.path("pc-host.db")),
        1,
        "the refused run left no row"
    );
    // An empty database SQLite already gave pages to is another program's: refused before
    // its page size is looked at (see `a_blank_database_another_program_made_is_refused_..`).
    rusqlite::Connection::open(s.path("empty.db"))
        .unwrap()
        .execute_batch("PRAGMA page_size = 8192; VACUUM;")
        .unwrap();
    assert_one_line_error(
        &run(
            s.dir(),
            &[
                "--page-size",
                "4096",
                "--messages",
                "10",
                "--db",
                "empty.db",
            ],
        ),
        1,
        "empty.db is a database with no tables and no pc-host mark",
    );
    // Given and matching, it is accepted.
    let again = run(s.dir(), &["--page-size", "16384", "--messages", "10"]);
    assert_eq!(again.code, Some(0), "stderr:\n{}", again.stderr);
    assert_eq!(runs(&s.path("pc-host.db")), 2);
}

#[test]
fn a_bad_value_from_the_environment_is_one_line_naming_the_variable() {
    let s = Scratch::new("env-values");
    let cases: &[(&str, &str, &str)] = &[
        (
            "PC_HOST_PRODUCERS",
            "abc",
            "PC_HOST_PRODUCERS=abc: invalid value 'abc' for '--producers <N>'",
        ),
        (
            "PC_HOST_OUTPUT",
            "JSON",
            "PC_HOST_OUTPUT=JSON: invalid value 'JSON' for '--output <FORMAT>'; [possible values: \
             text, json]",
        ),
        ("PC_HOST_CONFIG", "", "PC_HOST_CONFIG=: a value is required"),
    ];
    for (var, value, needle) in cases {
        let out = run_env(s.dir(), &[], &[(var, value)]);
        assert_one_line_error(&out, 2, needle);
    }
    // The same value given as a flag is named as the flag, also on one line.
    let out = run(s.dir(), &["--producers", "abc"]);
    assert_one_line_error(&out, 2, "error: invalid value 'abc' for '--producers <N>'");
    // clap's further lines (what is missing, its tip) join the one line.
    let out = run(s.dir(), &["--producer", "3"]);
    assert_one_line_error(
        &out,
        2,
        "unexpected argument '--producer' found; tip: a similar argument exists: '--producers'",
    );
    // A run's variable set badly breaks a subcommand too (clap reads it): the error names it.
    let out = run_env(s.dir(), &["verify"], &[("PC_HOST_PRODUCERS", "x")]);
    assert_one_line_error(
        &out,
        2,
        "error: PC_HOST_PRODUCERS=x: invalid value 'x' for '--producers <N>'",
    );
    let out = run_env(s.dir(), &["plot", "-o"], &[("PC_HOST_OUTPUT", "json")]);
    assert_one_line_error(
        &out,
        2,
        "error: a value is required for '--output <FILE.svg>' but none was supplied",
    );
    let out = run(s.dir(), &["plot"]);
    assert_one_line_error(
        &out,
        2,
        "the following required arguments were not provided: --output <FILE.svg>",
    );
    assert!(!s.path("pc-host.db").exists());
}

/// A misspelt `PC_HOST_*` variable would be ignored without a word (clap reads only the names
/// it knows); it is refused as an unknown key in the `--config` file is.
#[test]
fn a_misspelt_pc_host_variable_is_one_line_naming_the_nearest_option() {
    let s = Scratch::new("env-typo");
    let out = run_env(s.dir(), &["--messages", "3"], &[("PC_HOST_PRODUCRS", "3")]);
    assert_one_line_error(
        &out,
        2,
        "error: PC_HOST_PRODUCRS is set, but pc-host has no such variable (did you mean \
         PC_HOST_PRODUCERS?)",
    );
    assert!(!s.path("pc-host.db").exists(), "no database on bad input");
    // Letter case aside, the nearest name is still offered.
    let out = run_env(s.dir(), &["--messages", "3"], &[("PC_HOST_producers", "3")]);
    assert_one_line_error(
        &out,
        2,
        "error: PC_HOST_producers is set, but pc-host has no such variable (did you mean \
         PC_HOST_PRODUCERS?)",
    );
    // A name that is not UTF-8 is no option either: refused, not skipped.
    let mut cmd = common::pc_host(s.dir());
    cmd.args(["--messages", "3"]).env(
        std::os::unix::ffi::OsStrExt::from_bytes(b"PC_HOST_PRODUCERS\xff".as_slice())
            as &std::ffi::OsStr,
        "3",
    );
    let out: common::Out = cmd.output_within().expect("run pc-host").into();
    assert_one_line_error(
        &out,
        2,
        "error: PC_HOST_PRODUCERS\u{fffd} is set, but pc-host has no such variable",
    );
    assert!(!s.path("pc-host.db").exists(), "no database on bad input");
    let out = run_env(
        s.dir(),
        &["--messages", "3", "--rps", "0"],
        &[("PC_HOST_PRODUCERS", "3"), ("PC_HOST_PIN", "false")],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn a_bad_source_from_the_environment_or_a_config_file_names_where_it_came_from() {
    let s = Scratch::new("source-origin");
    std::fs::write(s.path("ok.log"), "fine\n").unwrap();
    let env = |value: &str| run_env(s.dir(), &[], &[("PC_HOST_SOURCE", value)]);
    assert_one_line_error(
        &env("bogus:x"),
        2,
        "error: PC_HOST_SOURCE=bogus:x: unknown source `bogus`",
    );
    // Found when the file is opened, after the URL was parsed.
    assert_one_line_error(
        &env("file:missing.log"),
        2,
        "error: PC_HOST_SOURCE: file:missing.log: no such file",
    );
    assert_one_line_error(
        &env("file:ok.log?lane=high"),
        2,
        "error: PC_HOST_SOURCE=file:ok.log?lane=high: lane= needs --lanes",
    );
    let cfg = |text: &str| {
        std::fs::write(s.path("cfg.toml"), text).unwrap();
        run(s.dir(), &["--config", "cfg.toml"])
    };
    assert_one_line_error(
        &cfg("source = [\"file:ok.log\", \"file:missing.log\"]\n"),
        2,
        "error: `source` in cfg.toml line 1: file:missing.log: no such file",
    );
    let out = cfg("source = [\"file:ok.log\", \"file:./ok.log\"]\n");
    assert_one_line_error(&out, 2, "error: `source` in cfg.toml line 1: file:");
    assert_one_line_error(&out, 2, "are the same file: give it once");
    // Given as a flag, the source is the one just typed: the line is as before.
    let out = run(s.dir(), &["--source", "file:missing.log"]);
    assert_one_line_error(&out, 2, "error: file:missing.log: no such file");
    assert!(!s.path("pc-host.db").exists(), "no database was created");
}

/// A path ending in `/` names a directory: SQLite would create the file without the slash
/// (and the run then find no database at the path it was given), and the other outputs would
/// fail only when first written. Each is refused at once, and nothing is made.
#[test]
fn a_path_spelled_as_a_directory_is_refused_before_anything_is_written() {
    let s = Scratch::new("dir-spelling");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--db", "newdir/"],
            "--db: `newdir/` names a directory, not a database file: give a file path (e.g. \
             newdir/pc-host.db)",
        ),
        (&["--sink", "sqlite:out/"], "`out/` names a directory"),
        (
            &["--dead-letter", "dlx/"],
            "--dead-letter dlx/: this names a directory, not a file: give a file path (e.g. \
             dlx/dead.jsonl)",
        ),
        (
            &["--profile", "pp/"],
            "--profile pp/: this names a directory, not a file",
        ),
        (
            &["--latency-log", "ll/"],
            "--latency-log ll/: this names a directory, not a file",
        ),
        (
            &["--dead-letter", "."],
            "--dead-letter .: this names a directory",
        ),
        (
            &["verify", "--db", "newdir/"],
            "`newdir/` names a directory",
        ),
        (
            &["plot", "--db", "newdir/", "-o", "p.svg"],
            "`newdir/` names a directory",
        ),
        (
            &["plot", "-o", "out/"],
            "--output out/: this names a directory, not a file: give a file path (e.g. out/plot.svg)",
        ),
    ];
    for (args, needle) in cases {
        let mut all = args.to_vec();
        if !matches!(args[0], "verify" | "plot") {
            all.extend(["--messages", "5"]);
        }
        assert_one_line_error(&run(s.dir(), &all), 2, needle);
        let names: Vec<_> = std::fs::read_dir(s.dir()).unwrap().flatten().collect();
        assert!(names.is_empty(), "{args:?} wrote {names:?}");
    }
}

/// `plot -o` and `--profile` write SVG: a name like `run.png` would hold SVG and open as a
/// broken image, so it is refused before anything is read or written.
#[test]
fn an_svg_output_not_named_svg_is_refused_before_anything_is_written() {
    let s = Scratch::new("svg-names");
    let cases: &[(&[&str], &str)] = &[
        (
            &["plot", "-o", "run.png"],
            "--output run.png: pc-host writes SVG there: give a file name ending in .svg (e.g. run.svg)",
        ),
        (
            &["--profile", "flame", "--messages", "3"],
            "--profile flame: pc-host writes SVG there: give a file name ending in .svg (e.g. \
             flame.svg)",
        ),
    ];
    for (args, needle) in cases {
        assert_one_line_error(&run(s.dir(), args), 2, needle);
        let names: Vec<_> = std::fs::read_dir(s.dir()).unwrap().flatten().collect();
        assert!(names.is_empty(), "{args:?} wrote {names:?}");
    }
}

#[test]
fn a_database_path_sqlite_would_read_as_a_uri_is_refused_before_anything_is_written() {
    let s = Scratch::new("db-uri");
    let hint = "would be read by SQLite as a URI, not a file name: give the path itself (x.db), \
                or ./file:x.db for a file of that name";
    let out = run(s.dir(), &["--db", "file:x.db", "--messages", "3"]);
    assert_one_line_error(&out, 2, &format!("--db: `file:x.db` {hint}"));
    let out = run(s.dir(), &["--sink", "sqlite:file:x.db", "--messages", "3"]);
    assert_one_line_error(&out, 2, &format!("`file:x.db` {hint}"));
    let out = run_env(
        s.dir(),
        &["--messages", "3"],
        &[("PC_HOST_DB", "file:x.db")],
    );
    assert_one_line_error(&out, 2, &format!("PC_HOST_DB: `file:x.db` {hint}"));
    // The path suggested for a file:/// URL is the path itself.
    let out = run(s.dir(), &["--db", "file:///tmp/x.db", "--messages", "3"]);
    assert_one_line_error(&out, 2, "give the path itself (/tmp/x.db)");
    // A sink URL given as the path is refused too, and made no file of that name.
    let out = run(s.dir(), &["--db", "sqlite:x.db", "--messages", "3"]);
    assert_one_line_error(
        &out,
        2,
        "is a sqlite: URL, not a file path: give it as --sink",
    );
    // verify and plot refuse it too, rather than let SQLite open some other file.
    for args in [
        &["verify", "--db", "file:x.db"][..],
        &["plot", "--db", "file:x.db", "-o", "p.svg"],
    ] {
        let out = run(s.dir(), args);
        assert_one_line_error(&out, 2, &format!("`file:x.db` {hint}"));
    }
    // From the variable, the error names it, not a flag nobody gave.
    let out = run_env(s.dir(), &["verify"], &[("PC_HOST_DB", "file:x.db")]);
    assert_one_line_error(
        &out,
        2,
        &format!(
            "error: PC_HOST_DB=file:x.db: invalid value 'file:x.db' for '--db <PATH>': `file:x.db` {hint}"
        ),
    );
    let names: Vec<_> = std::fs::read_dir(s.dir()).unwrap().flatten().collect();
    assert!(names.is_empty(), "nothing written: {names:?}");
    // Spelled as a path, a file of that very name is a database like any other.
    let out = run(
        s.dir(),
        &["--db", "./file:x.db", "--messages", "3", "--rps", "0"],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(s.path("file:x.db").is_file());
}

/// A `postgres://` URL at a port where something else answers (here a listener that replies
/// as an HTTP server would) gets the driver's words and a hint at the cause, not only "bytes
/// remaining on stream".
#[test]
fn a_postgres_url_at_a_port_that_is_not_postgres_says_so() {
    let s = Scratch::new("not-postgres");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        // Take the client's startup message whole, answer, and let the client close first:
        // closing with its bytes unread would reset the connection instead.
        let mut startup = [0u8; 1024];
        let _ = std::io::Read::read(&mut conn, &mut startup);
        let _ = std::io::Write::write_all(&mut conn, b"HTTP/1.1 400 Bad Request\r\n\r\n");
        let _ = conn.shutdown(std::net::Shutdown::Write);
        let _ = std::io::Read::read_to_end(&mut conn, &mut Vec::new());
    });
    let url = format!("postgres://postgres@127.0.0.1:{port}/test");
    let out = run(s.dir(), &["--sink", &url, "--messages", "1"]);
    server.join().unwrap();
    assert_one_line_error(
        &out,
        1,
        &format!(
            "{url}: cannot connect: bytes remaining on stream; the server there does not speak \
             PostgreSQL's protocol: is it the right port?"
        ),
    );
}

/// `--synchronous` is SQLite's setting: given with a server or NATS sink (as a flag, from the
/// environment), it is refused rather than kept in the run's configuration as if it applied.
#[test]
fn synchronous_with_a_sink_that_is_not_sqlite_is_refused() {
    let s = Scratch::new("sync-server");
    let out = run(
        s.dir(),
        &[
            "--sink",
            "postgres://u@127.0.0.1:1/x",
            "--synchronous",
            "full",
        ],
    );
    assert_one_line_error(
        &out,
        2,
        "--synchronous full: only a SQLite sink has this setting",
    );
    let out = run_env(
        s.dir(),
        &["--sink", "nats://127.0.0.1:1/a.b", "--messages", "1"],
        &[("PC_HOST_SYNCHRONOUS", "normal")],
    );
    assert_one_line_error(&out, 2, "PC_HOST_SYNCHRONOUS=normal: only a SQLite sink");
    let out = run(s.dir(), &["--synchronous", "full", "--messages", "5"]);
    assert_eq!(
        out.code,
        Some(0),
        "SQLite takes it; stderr:\n{}",
        out.stderr
    );
}

/// A failure before any reply (a name that does not resolve, a refused port) is the driver's
/// words alone: the hint that the server does not speak PostgreSQL is only for a reply that
/// could not be read as PostgreSQL's.
#[test]
fn a_postgres_connect_failure_before_any_reply_gets_no_wrong_port_hint() {
    let s = Scratch::new("pg-no-reply");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    for (url, said) in [
        // `.invalid` never resolves (RFC 6761).
        (
            "postgres://postgres@pc-host-test.invalid:5432/test".to_string(),
            "cannot connect: failed to lookup address information",
        ),
        (
            format!("postgres://postgres@127.0.0.1:{port}/test"),
            "cannot connect: connection refused",
        ),
    ] {
        let out = run(s.dir(), &["--sink", &url, "--messages", "1"]);
        assert_one_line_error(&out, 1, said);
        assert!(!out.stderr.contains("right port"), "{}", out.stderr);
    }
}

#[test]
fn a_server_url_option_the_driver_refuses_is_bad_input_and_no_password_is_printed() {
    let s = Scratch::new("server-url-options");
    let cases: &[(&str, &str)] = &[
        (
            "postgres://pc:secret@127.0.0.1:5432/test?bogus=1",
            "--sink postgres://pc:***@127.0.0.1:5432/test?bogus=1: not a usable URL: invalid \
             connection string: unknown option `bogus`",
        ),
        (
            "mysql://root:secret@127.0.0.1:3306/test?bogus=1",
            "--sink mysql://root:***@127.0.0.1:3306/test?bogus=1: Unknown URL parameter `bogus'",
        ),
        (
            "mariadb://root:secret@127.0.0.1:0/test",
            "--sink mariadb://root:***@127.0.0.1:0/test: `0` is not a port (1..=65535)",
        ),
        // No database: PostgreSQL would pick the one named after the user (its maintenance
        // database, `postgres`, for the superuser) and create pc-host's tables there.
        (
            "postgres://postgres:secret@127.0.0.1:5432",
            "--sink postgres://postgres:***@127.0.0.1:5432: the URL names no database: add \
             /DBNAME after the host and port",
        ),
        (
            "postgresql://postgres:secret@127.0.0.1:5432/",
            "--sink postgresql://postgres:***@127.0.0.1:5432/: the URL names no database",
        ),
        (
            "mysql://root:secret@127.0.0.1:3306",
            "--sink mysql://root:***@127.0.0.1:3306: the URL names no database",
        ),
        // The example is of the scheme given.
        (
            "mysql:/test",
            "--sink mysql:/test: a server URL starts with `//` after the scheme, e.g. \
             mysql://user@127.0.0.1:3306/db",
        ),
    ];
    for (url, needle) in cases {
        let out = run(s.dir(), &["--sink", url, "--messages", "1"]);
        assert_one_line_error(&out, 2, needle);
        assert!(!out.stderr.contains("secret"), "{}", out.stderr);
        // verify reads the same URLs, and says the same.
        let out = run(s.dir(), &["verify", "--sink", url]);
        assert_one_line_error(&out, 2, needle);
        assert!(!out.stderr.contains("secret"), "{}", out.stderr);
    }
    // A password given as a parameter, too.
    let out = run(
        s.dir(),
        &[
            "verify",
            "--sink",
            "postgres://postgres@127.0.0.1:5432?password=secret",
        ],
    );
    assert_one_line_error(
        &out,
        2,
        "--sink postgres://postgres@127.0.0.1:5432?password=***: the URL names no database",
    );
    assert!(!out.stderr.contains("secret"), "{}", out.stderr);
    // A NATS sink is no database to read back: bad input, quoted as typed.
    let out = run(s.dir(), &["verify", "--sink", "nats://127.0.0.1:4222/S"]);
    assert_one_line_error(
        &out,
        2,
        "--sink nats://127.0.0.1:4222/S: verify reads a database: give the database the stream",
    );
    // From the variable, the line names the variable, not a flag nobody typed.
    let out = run_env(
        s.dir(),
        &["verify"],
        &[(
            "PC_HOST_SINK",
            "postgres://pc:secret@127.0.0.1:5432/test?bogus=1",
        )],
    );
    assert_one_line_error(
        &out,
        2,
        "error: PC_HOST_SINK=postgres://pc:***@127.0.0.1:5432/test?bogus=1: not a usable URL",
    );
    assert!(!out.stderr.contains("secret"), "{}", out.stderr);
    let out = run(
        s.dir(),
        &[
            "--source",
            "nats://u:secret@127.0.0.1:4222/S?bogus=1",
            "--messages",
            "1",
        ],
    );
    assert_one_line_error(
        &out,
        2,
        "--source nats://u:***@127.0.0.1:4222/S?bogus=1: unknown parameter",
    );
    assert!(!out.stderr.contains("secret"), "{}", out.stderr);
}

/// A local port whose listener takes connections and never answers (a hung server, or
/// something else on the port), for the rest of the test process.
fn silent_listener() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = listener.local_addr().expect("its address").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn); // kept open, never answered
        }
    });
    port
}

/// The same for MySQL: the connection's reply wait (three lock waits of
/// `--busy-timeout-ms` plus 5 s, 10 s at the least) ends the start, and the line says how
/// long it waited and why.
#[test]
fn a_mysql_url_whose_listener_never_answers_says_how_long_it_waited() {
    let port = silent_listener();
    let s = Scratch::new("mysql-silent");
    let url = format!("mysql://root@127.0.0.1:{port}/x");
    let args = [
        "--sink",
        &url,
        "--messages",
        "1",
        "--busy-timeout-ms",
        "1000",
    ];
    let out = run(s.dir(), &args);
    assert_one_line_error(&out, 1, "no reply from the server within 10 s");
}

/// A listener that takes a connection and never answers (a hung server, or something else
/// on the port) holds no start for ever: PostgreSQL's connect is given `connect_timeout=`
/// plus a few seconds in all, start-up included, and `verify`, `plot` and a run each end with
/// one line (exit 1). (The driver's own timeout covers only the TCP connection.)
#[test]
fn a_postgres_url_whose_listener_never_answers_fails_with_one_line() {
    let port = silent_listener();
    let s = Scratch::new("pg-silent");
    let url = format!("postgres://postgres@127.0.0.1:{port}/x?connect_timeout=1");
    for args in [
        &["verify", "--sink", url.as_str()][..],
        &["plot", "--sink", url.as_str(), "-o", "p.svg"],
        &["--sink", url.as_str(), "--messages", "1"],
    ] {
        let out = run(s.dir(), args);
        assert_one_line_error(&out, 1, "did not answer within 6 s");
    }
}
