//! `--profile FILE.svg`: a flame graph of the run, and never a write to a file pc-host did not
//! write.

mod common;

use common::{Scratch, assert_one_line_error, run};

#[test]
fn a_profile_is_a_flame_graph_of_the_runs_own_threads() {
    let s = Scratch::new("profile");
    // Unthrottled, so every producer and consumer is busy for the whole run: a throttled
    // producer uses so little CPU that a run of a second can hold no sample of it.
    let out = run(
        s.dir(),
        &["--rps", "0", "--messages", "300000", "--profile", "p.svg"],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let svg = std::fs::read_to_string(s.path("p.svg")).expect("the profile is written");
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(&svg, options).expect("the profile is SVG");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(
        svg.contains("pc-host profile: run 1"),
        "titled with its run"
    );
    // Frames are named by thread first: the pipeline's own threads were sampled.
    assert!(
        svg.contains("consumer-") && svg.contains("producer-"),
        "no consumer or producer frames in the flame graph"
    );
    // A second run replaces the profile pc-host wrote.
    let again = run(
        s.dir(),
        &["--duration", "0.5", "--rps", "1000", "--profile", "p.svg"],
    );
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    let svg = std::fs::read_to_string(s.path("p.svg")).unwrap();
    assert!(svg.contains("pc-host profile: run 2"));
}

#[test]
fn a_profile_path_pc_host_did_not_write_is_refused_and_left_as_it_was() {
    let s = Scratch::new("profile-foreign");
    std::fs::write(s.path("mine.svg"), "<svg>my drawing</svg>").unwrap();
    let out = run(s.dir(), &["--duration", "1", "--profile", "mine.svg"]);
    assert_one_line_error(&out, 2, "is not a pc-host profile");
    assert_eq!(
        std::fs::read_to_string(s.path("mine.svg")).unwrap(),
        "<svg>my drawing</svg>"
    );
    assert!(
        !s.path("pc-host.db").exists(),
        "refused before the database"
    );
    let out = run(
        s.dir(),
        &["--duration", "1", "--profile", "no/such/dir/p.svg"],
    );
    assert_one_line_error(&out, 2, "does not exist");
}
