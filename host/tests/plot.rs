//! `pc-host plot`: the SVG it draws from the intervals a real run recorded (parsed, its title,
//! legend and one line per series with a point per interval), and its refusals: a missing or
//! foreign database, a run without intervals, a missing output directory and an output file
//! that plot did not write (left unchanged).

mod common;

use std::path::Path;

use common::{Out, OutputWithin as _, Scratch, assert_one_line_error, run};
use rusqlite::Connection;

/// The first line of every file plot writes.
const MARKER: &str = "<!-- pc-host plot -->";
/// The legend's names, throughput then latency, with the `run_intervals` column each draws
/// (`None`: a rate, one per interval).
const SERIES: [(&str, Option<&str>); 5] = [
    ("produced/s", None),
    ("stored/s", None),
    ("p50", Some("latency_p50_ns")),
    ("p99", Some("latency_p99_ns")),
    ("max", Some("latency_max_ns")),
];

/// A one-second generator run into `t.db` that records an interval every 0.1 s.
fn record_run(s: &Scratch) {
    let args = [
        "--db",
        "t.db",
        "--duration",
        "1",
        "--rps",
        "1000",
        "--report-interval",
        "0.1",
    ];
    let out = run(s.dir(), &args);
    assert_eq!(out.code, Some(0), "pc-host run failed:\n{}", out.stderr);
}

/// How many of `run`'s interval rows have a value in `column` (`None`: all of them).
fn intervals(db: &Path, run: i64, column: Option<&str>) -> usize {
    let conn = Connection::open(db).expect("open db");
    let filter = column.map_or(String::new(), |c| format!(" AND {c} IS NOT NULL"));
    let sql = format!("SELECT COUNT(*) FROM run_intervals WHERE run_id = ?1{filter}");
    let n: i64 = conn.query_row(&sql, [run], |r| r.get(0)).expect("count");
    usize::try_from(n).unwrap()
}

fn plot(s: &Scratch, args: &[&str]) -> Out {
    run(s.dir(), &[&["plot", "--db", "t.db"], args].concat())
}

/// A `<polyline>`: its colour and points.
#[derive(Debug)]
struct Line {
    stroke: String,
    points: Vec<(f64, f64)>,
}

/// What a drawing shows: its texts (x, y, content) and lines, and the colours of its dots.
#[derive(Debug)]
struct Drawing {
    texts: Vec<(f64, f64, String)>,
    lines: Vec<Line>,
    dots: Vec<String>,
}

/// Parses an SVG document, failing the test if it is not well-formed.
fn parse(svg: &str) -> Drawing {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not XML: {e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let num = |n: &roxmltree::Node, a: &str| n.attribute(a).unwrap().parse::<f64>().unwrap();
    let mut d = Drawing {
        texts: vec![],
        lines: vec![],
        dots: vec![],
    };
    for n in doc.descendants().filter(roxmltree::Node::is_element) {
        match n.tag_name().name() {
            "text" => d
                .texts
                .push((num(&n, "x"), num(&n, "y"), n.text().unwrap().trim().into())),
            "polyline" => d.lines.push(Line {
                stroke: n.attribute("stroke").unwrap().into(),
                points: points(n.attribute("points").unwrap()),
            }),
            "circle" => d.dots.push(n.attribute("fill").unwrap_or("none").into()),
            _ => {}
        }
    }
    d
}

fn points(list: &str) -> Vec<(f64, f64)> {
    let coord = |c: &str| c.parse::<f64>().unwrap();
    list.split_whitespace()
        .map(|p| {
            p.split_once(',')
                .map(|(x, y)| (coord(x), coord(y)))
                .unwrap()
        })
        .collect()
}

impl Drawing {
    /// The index of the legend's sample line for `name`: the short horizontal line just left
    /// of the label, at its height.
    fn legend_line(&self, name: &str) -> usize {
        let (x, y, _) = self
            .texts
            .iter()
            .find(|t| t.2 == name)
            .unwrap_or_else(|| panic!("no legend text {name:?} in {:?}", self.texts));
        let beside = |l: &Line| match l.points[..] {
            [(x0, y0), (x1, y1)] => {
                y0 == y1 && x1 <= *x && x1 > x - 20.0 && x0 < x1 && (y0 - y).abs() < 1.0
            }
            _ => false,
        };
        let found: Vec<usize> = (0..self.lines.len())
            .filter(|&i| beside(&self.lines[i]))
            .collect();
        assert_eq!(found.len(), 1, "legend lines for {name:?}: {found:?}");
        found[0]
    }

    /// The points drawn for the series `name`: its lines (in the legend's colour, the legend's
    /// own sample left out) and its dots.
    fn series_points(&self, name: &str) -> usize {
        let legend = self.legend_line(name);
        let colour = &self.lines[legend].stroke;
        let on_lines: usize = (0..self.lines.len())
            .filter(|&i| i != legend && self.lines[i].stroke == *colour)
            .map(|i| self.lines[i].points.len())
            .sum();
        on_lines + self.dots.iter().filter(|&d| d == colour).count()
    }
}

/// Asserts `file` is a plot of `run` of `t.db`: marked, parsed, titled, every series in the
/// legend and drawn with one point per interval that has its value.
fn assert_plot_of(s: &Scratch, file: &str, run: i64) {
    let svg = std::fs::read_to_string(s.path(file)).expect("read the plot");
    assert!(
        svg.starts_with(MARKER),
        "no marker first: {}",
        &svg[..80.min(svg.len())]
    );
    let d = parse(&svg);
    let title = format!("pc-host run {run} of t.db");
    assert!(
        d.texts.iter().any(|t| t.2 == title),
        "no title {title:?} in {:?}",
        d.texts
    );
    let db = s.path("t.db");
    for (name, column) in SERIES {
        let want = intervals(&db, run, column);
        assert!(want > 0, "{name}: the run has no interval with a value");
        assert_eq!(
            d.series_points(name),
            want,
            "{name}: points drawn in {file}"
        );
    }
}

#[test]
fn plot_draws_every_interval_of_the_chosen_run_with_title_and_legend() {
    let s = Scratch::new("plot-draws");
    record_run(&s);
    record_run(&s);
    assert!(
        intervals(&s.path("t.db"), 1, None) > 0,
        "pc-host recorded no intervals"
    );

    let out = plot(&s, &["-o", "last.svg"]);
    assert_eq!(out.code, Some(0), "plot failed:\n{}", out.stderr);
    assert_plot_of(&s, "last.svg", 2);

    let out = plot(&s, &["--run", "1", "-o", "first.svg"]);
    assert_eq!(out.code, Some(0), "plot --run 1 failed:\n{}", out.stderr);
    assert_plot_of(&s, "first.svg", 1);
}

/// `plot` reads the database a run would write: `--sink` or `PC_HOST_SINK` as well as `--db`,
/// a flag beating a variable, one layer giving both refused; a NATS sink is refused (there is
/// nothing to read back).
#[test]
fn plot_reads_the_sink_a_run_would_write() {
    let s = Scratch::new("plot-sink-env");
    record_run(&s);
    let plot_env = |args: &[&str], env: &[(&str, &str)]| -> Out {
        let mut cmd = common::pc_host(s.dir());
        cmd.arg("plot").args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output_within().expect("run pc-host").into()
    };
    let out = plot_env(&["-o", "a.svg"], &[("PC_HOST_SINK", "sqlite:t.db")]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_plot_of(&s, "a.svg", 1);
    let elsewhere = [("PC_HOST_SINK", "postgres://pc:secret@db1:5432/pc")];
    let out = plot_env(&["--db", "t.db", "-o", "b.svg"], &elsewhere);
    assert_eq!(
        out.code,
        Some(0),
        "the flag beats the variable: {}",
        out.stderr
    );
    assert_plot_of(&s, "b.svg", 1);
    let both = [elsewhere[0], ("PC_HOST_DB", "t.db")];
    let out = plot_env(&["-o", "c.svg"], &both);
    assert_one_line_error(
        &out,
        2,
        "PC_HOST_SINK and PC_HOST_DB both say which database to plot: give only one",
    );
    // A config file set for the runs is not read, and plot says so.
    let out = plot_env(
        &["-o", "e.svg"],
        &[("PC_HOST_CONFIG", "cfg.toml"), ("PC_HOST_DB", "t.db")],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("PC_HOST_CONFIG=cfg.toml is set, but verify and plot read no config file"),
        "{}",
        out.stderr
    );
    let out = plot_env(&["--sink", "nats://127.0.0.1:4222/S", "-o", "d.svg"], &[]);
    assert_one_line_error(&out, 2, "plot reads a database");
    assert!(!s.path("c.svg").exists() && !s.path("d.svg").exists());
}

#[test]
fn plot_without_run_says_it_skipped_the_later_runs_that_have_no_intervals() {
    let s = Scratch::new("plot-skipped");
    record_run(&s);
    record_run(&s);
    // As a run killed before its first interval leaves it.
    Connection::open(s.path("t.db"))
        .unwrap()
        .execute("DELETE FROM run_intervals WHERE run_id = 2", [])
        .unwrap();

    let out = plot(&s, &["-o", "p.svg"]);
    assert_eq!(out.code, Some(0), "plot failed:\n{}", out.stderr);
    assert!(
        out.stdout.starts_with("plot: run 1 of t.db (")
            && out
                .stdout
                .contains(" intervals; the 1 run after it has no intervals) -> p.svg"),
        "{}",
        out.stdout
    );
    assert_plot_of(&s, "p.svg", 1);
    // Named, the run is plotted without remark.
    let out = plot(&s, &["--run", "1", "-o", "p.svg"]);
    assert!(!out.stdout.contains("after it"), "{}", out.stdout);
}

#[test]
fn plot_replaces_its_own_output_but_leaves_any_other_file_unchanged() {
    let s = Scratch::new("plot-replace");
    record_run(&s);
    for _ in 0..2 {
        let out = plot(&s, &["-o", "p.svg"]);
        assert_eq!(
            out.code,
            Some(0),
            "plot into its own file failed:\n{}",
            out.stderr
        );
        assert_plot_of(&s, "p.svg", 1);
    }
    // Marked, but not on the first line; empty; the database itself.
    let drawing = "<svg xmlns=\"http://www.w3.org/2000/svg\"><!-- pc-host plot --></svg>\n";
    std::fs::write(s.path("drawing.svg"), drawing).unwrap();
    std::fs::write(s.path("empty.svg"), "").unwrap();
    for file in ["drawing.svg", "empty.svg", "t.db"] {
        let before = std::fs::read(s.path(file)).unwrap();
        let out = plot(&s, &["-o", file]);
        assert_one_line_error(&out, 2, "was not written by pc-host plot");
        assert_eq!(
            std::fs::read(s.path(file)).unwrap(),
            before,
            "{file} was changed"
        );
    }
}

#[test]
fn a_missing_or_foreign_database_is_a_one_line_error_and_writes_nothing() {
    let s = Scratch::new("plot-db");
    let out = run(s.dir(), &["plot", "--db", "none.db", "-o", "p.svg"]);
    assert_one_line_error(&out, 1, "no database file at none.db");
    std::fs::write(s.path("notes.txt"), "not a database\n").unwrap();
    let out = run(s.dir(), &["plot", "--db", "notes.txt", "-o", "p.svg"]);
    assert_one_line_error(&out, 1, "notes.txt is not an SQLite database");
    assert!(!s.path("p.svg").exists(), "a plot was written");
}

#[test]
fn a_run_without_intervals_is_a_one_line_error_naming_it() {
    let s = Scratch::new("plot-run");
    record_run(&s);
    let out = plot(&s, &["--run", "99", "-o", "p.svg"]);
    assert_one_line_error(&out, 2, "--run 99: t.db has no run 99");
    record_run(&s);
    Connection::open(s.path("t.db"))
        .unwrap()
        .execute("DELETE FROM run_intervals WHERE run_id = 2", [])
        .unwrap();
    let out = plot(&s, &["--run", "2", "-o", "p.svg"]);
    assert_one_line_error(
        &out,
        2,
        "--run 2: run 2 has no interval rows in t.db (the last run with intervals is 1)",
    );
    assert!(!s.path("p.svg").exists(), "a plot was written");
}

#[test]
fn a_missing_output_directory_is_a_one_line_error_with_exit_2() {
    let s = Scratch::new("plot-dir");
    record_run(&s);
    let out = plot(&s, &["-o", "no/such/dir/p.svg"]);
    assert_one_line_error(&out, 2, "directory no/such/dir does not exist");
    assert!(!s.path("no").exists(), "the directory was created");
    // A file where the directory would be is named as what it is.
    let out = plot(&s, &["-o", "t.db/p.svg"]);
    assert_one_line_error(&out, 2, "--output t.db/p.svg: t.db is not a directory");
}

/// An interval row whose time is not a finite number (edited by hand, or damaged) is refused
/// with one line; plot stretched its time axis to no end and never finished.
#[test]
fn plot_refuses_an_interval_time_that_is_not_finite() {
    let s = Scratch::new("plot-infinite-time");
    record_run(&s);
    let conn = Connection::open(s.path("t.db")).expect("open db");
    let changed = conn
        .execute(
            "UPDATE run_intervals SET t_s = ?1 \
             WHERE t_s = (SELECT MAX(t_s) FROM run_intervals)",
            [f64::INFINITY],
        )
        .expect("update");
    assert_eq!(changed, 1);
    drop(conn);
    assert_one_line_error(
        &plot(&s, &["-o", "inf.svg"]),
        1,
        "has an interval row at t_s = inf, not a time",
    );
    assert!(!s.path("inf.svg").exists(), "nothing written");
}
