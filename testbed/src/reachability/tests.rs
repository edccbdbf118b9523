use super::*;

const DELIVERED: Delivery = Delivery::Delivered;
const DROPPED: Delivery = Delivery::Dropped;

fn pods() -> Vec<&'static str> {
    vec!["x/a", "x/b", "y/a"]
}

#[test]
fn peers_match_by_namespace_and_pod() {
    let mut r = Reachability::new(pods(), true);
    r.expect_all_ingress("x/a", false);
    r.expect_peer("y/*", "x/a", true);
    assert!(!r.expected("x/b", "x/a"));
    assert!(r.expected("y/a", "x/a"));
    assert!(r.expected("x/a", "x/b"));
    r.expect_peer("*/a", "*/b", false);
    assert!(!r.expected("y/a", "x/b"));
    assert!(!r.expected("x/a", "x/b"));
}

#[test]
fn self_pairs_are_neither_probed_nor_compared() {
    let mut r = Reachability::new(pods(), false);
    assert_eq!(r.pairs().len(), 6);
    assert!(r.pairs().iter().all(|(from, to)| from != to));
    for (from, to) in r.pairs() {
        r.observe(&from, &to, DROPPED);
    }
    assert!(r.is_correct(), "{r}");
}

#[test]
fn a_missing_or_wrong_observation_is_a_mismatch() {
    let mut r = Reachability::new(pods(), true);
    for (from, to) in r.pairs() {
        r.observe(&from, &to, DELIVERED);
    }
    r.expect("x/a", "y/a", false);
    r.observed[2][0] = None;
    let wrong = r.mismatches();
    assert_eq!(
        wrong,
        vec![
            Mismatch {
                from: "x/a".into(),
                to: "y/a".into(),
                expected_allowed: false,
                observed: Some(DELIVERED),
            },
            Mismatch {
                from: "y/a".into(),
                to: "x/a".into(),
                expected_allowed: true,
                observed: None,
            },
        ]
    );
    assert!(!r.is_correct());
}

#[test]
fn tables_mark_the_cells_that_differ() {
    let mut r = Reachability::new(pods(), true);
    for (from, to) in r.pairs() {
        r.observe(&from, &to, DELIVERED);
    }
    r.expect("x/a", "y/a", false);
    let text = r.to_string();
    assert!(
        text.starts_with("reachability: correct 5, incorrect 1\n"),
        "{text}"
    );
    let observed = text.split("observed:\n").nth(1).expect("observed table");
    let row = observed.lines().nth(1).expect("row of x/a");
    assert!(row.starts_with("x/a"), "{row}");
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["x/a", "-", ".", ".*"]
    );
    let comparison = text
        .split("comparison:\n")
        .nth(1)
        .expect("comparison table");
    assert_eq!(
        comparison
            .lines()
            .nth(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["x/a", "-", ".", "X"])
    );
}

#[test]
#[should_panic(expected = "reachability differs")]
fn assert_correct_panics_with_the_tables() {
    let r = Reachability::new(pods(), true);
    r.assert_correct("nothing observed");
}

#[test]
fn tables_are_aligned_under_their_columns() {
    let mut r = Reachability::new(["x/a", "x/b"], false);
    r.observe("x/a", "x/b", DELIVERED);
    r.observe("x/b", "x/a", DROPPED);
    let text = r.to_string();
    let observed = text.split("observed:\n").nth(1).expect("observed table");
    let lines: Vec<&str> = observed.lines().take(3).collect();
    assert_eq!(
        lines,
        ["from\\to x/a x/b", "x/a     -   .*", "x/b     X   -"],
        "{text}"
    );
}

#[test]
fn a_refusal_is_a_denial_unless_denials_must_be_silent() {
    let mut lenient = Reachability::new(["x/a", "x/b"], false);
    for (from, to) in lenient.pairs() {
        lenient.observe(&from, &to, Delivery::Refused);
    }
    assert!(lenient.is_correct(), "{lenient}");
    let mut strict = lenient.clone().requiring_silent_denials();
    assert_eq!(strict.mismatches().len(), 2, "{strict}");
    strict.observe("x/a", "x/b", DROPPED);
    let text = strict.to_string();
    assert!(text.contains("a denial must be a silent drop"), "{text}");
    assert!(
        text.contains("x/b -> x/a: expected denied, observed refused"),
        "{text}"
    );
    let observed = text.split("observed:\n").nth(1).expect("observed table");
    assert_eq!(
        observed.lines().take(3).collect::<Vec<_>>(),
        ["from\\to x/a x/b", "x/a     -   X", "x/b     R*  -"],
        "{text}"
    );
}

#[test]
fn long_names_are_numbered_in_the_column_headers() {
    let long = ["house-gryffindor/harry-0", "house-slytherin/draco-0"];
    let mut r = Reachability::new(long, true);
    r.observe(long[0], long[1], DELIVERED);
    r.observe(long[1], long[0], DROPPED);
    let text = r.to_string();
    let observed = text.split("observed:\n").nth(1).expect("observed table");
    assert_eq!(
        observed.lines().take(3).collect::<Vec<_>>(),
        [
            "from\\to                    1  2",
            "1 house-gryffindor/harry-0 -  .",
            "2 house-slytherin/draco-0  X* -",
        ],
        "{text}"
    );
}
