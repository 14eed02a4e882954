use super::*;

const SECOND: u64 = 1_000_000_000;

fn at(depth: usize) -> Observation {
    Observation {
        depth,
        capacity: 1024,
        waited_ns: 0,
    }
}

fn feed(p: &mut Policy, ticks: &[Observation]) -> Vec<(usize, usize)> {
    ticks
        .iter()
        .filter_map(|&o| p.observe(o))
        .map(|c| (c.from, c.to))
        .collect()
}

#[test]
fn a_queue_growing_for_two_intervals_adds_one_consumer() {
    let mut p = Policy::new(1, 4, SECOND);
    assert_eq!(feed(&mut p, &[at(100)]), []);
    assert_eq!(feed(&mut p, &[at(200)]), [(1, 2)]);
    assert_eq!(p.current(), 2);
}

#[test]
fn each_further_consumer_needs_its_own_two_intervals_of_pressure() {
    let mut p = Policy::new(1, 4, SECOND);
    let growing: Vec<_> = (1..=8).map(|i| at(20 * i)).collect();
    assert_eq!(feed(&mut p, &growing), [(1, 2), (2, 3), (3, 4),]);
    assert_eq!(feed(&mut p, &[at(300), at(400)]), [], "never past MAX");
}

/// Two ticks of pressure for different reasons: the change says two intervals of pressure
/// and names the latest reason as the latest, not as held for both.
#[test]
fn a_scale_up_names_its_latest_reason_as_the_latest() {
    let mut p = Policy::new(1, 4, SECOND);
    assert_eq!(p.observe(at(100)), None, "growing");
    let change = p
        .observe(at(600))
        .expect("half full: the second tick of pressure");
    assert!(
        change
            .why
            .starts_with("under pressure for 2 intervals, now: queue 600 records")
            && change.why.ends_with("at least half full"),
        "{}",
        change.why
    );
}

#[test]
fn a_full_ring_that_cannot_grow_is_pressure() {
    let mut p = Policy::new(1, 2, SECOND);
    assert_eq!(feed(&mut p, &[at(1024), at(1024)]), [(1, 2)]);
}

#[test]
fn a_record_that_waited_a_whole_interval_is_pressure() {
    let mut p = Policy::new(1, 2, SECOND);
    let slow = Observation {
        waited_ns: SECOND,
        ..at(0)
    };
    assert_eq!(feed(&mut p, &[slow, slow]), [(1, 2)]);
}

#[test]
fn a_small_queue_growing_is_not_pressure() {
    let mut p = Policy::new(1, 2, SECOND);
    assert_eq!(feed(&mut p, &[at(1), at(5), at(10), at(16)]), []);
}

#[test]
fn three_near_empty_intervals_remove_one_consumer_down_to_min() {
    let mut p = Policy::new(1, 3, SECOND);
    feed(&mut p, &[at(600), at(600), at(600), at(600)]);
    assert_eq!(p.current(), 3);
    assert_eq!(feed(&mut p, &[at(0), at(16)]), []);
    assert_eq!(feed(&mut p, &[at(3)]), [(3, 2)]);
    assert_eq!(feed(&mut p, &[at(0), at(0), at(0)]), [(2, 1)]);
    assert_eq!(feed(&mut p, &[at(0); 10]), [], "never below MIN");
}

#[test]
fn a_queue_between_near_empty_and_half_full_and_steady_changes_nothing() {
    let mut p = Policy::new(2, 4, SECOND);
    feed(&mut p, &[at(300), at(600)]);
    assert_eq!(p.current(), 3);
    assert_eq!(feed(&mut p, &[at(100); 20]), []);
}

#[test]
fn alternating_pressure_and_idle_ticks_never_flap() {
    let mut p = Policy::new(1, 4, SECOND);
    let ticks: Vec<_> = (0..40)
        .map(|i| at(if i % 2 == 0 { 0 } else { 600 }))
        .collect();
    assert_eq!(feed(&mut p, &ticks), []);
}

#[test]
fn a_neutral_tick_restarts_the_count() {
    let mut p = Policy::new(1, 2, SECOND);
    // Growing, then steady in the middle band, then growing again: no two in a row.
    assert_eq!(feed(&mut p, &[at(100), at(100), at(200)]), []);
    assert_eq!(feed(&mut p, &[at(300)]), [(1, 2)]);
}

#[test]
fn an_undone_change_leaves_the_count_where_it_was() {
    let mut p = Policy::new(1, 2, SECOND);
    let change = feed(&mut p, &[at(600)]).pop();
    assert_eq!(change, None);
    let change = p.observe(at(700)).unwrap();
    p.undo(&change);
    assert_eq!(p.current(), 1);
    assert_eq!(feed(&mut p, &[at(800), at(900)]), [(1, 2)]);
}

#[test]
fn the_reason_names_what_was_seen() {
    let mut p = Policy::new(1, 2, SECOND);
    p.observe(at(600));
    let up = p.observe(at(1024)).unwrap();
    assert_eq!(up.direction(), "up");
    assert!(up.why.contains("at least half full"), "{}", up.why);
    let down: Vec<_> = (0..3).filter_map(|_| p.observe(at(0))).collect();
    assert_eq!(down[0].direction(), "down");
    assert!(down[0].why.contains("for 3 intervals"), "{}", down[0].why);
}

#[test]
fn retirements_are_taken_once_each_and_can_be_taken_back() {
    let s = Shared::default();
    assert!(!s.take_retirement());
    s.retire_one();
    s.retire_one();
    assert!(s.cancel_retirement());
    assert!(s.take_retirement());
    assert!(!s.take_retirement());
    s.waited(5);
    s.waited(3);
    assert_eq!(s.take_waited(), 5);
    assert_eq!(s.take_waited(), 0);
}
