//! Cases beyond the upstream snapshot: the directional-isolation and
//! same-priority tests merged upstream later, Pass inside the Baseline tier,
//! and fail-closed handling of a peer netseg does not implement.

use netseg_testbed::suite::{Case, Model};

use super::{baseline_pass, directional, fail_closed, same_priority};

pub fn cases(m: &Model) -> Vec<Case> {
    let mut cases = directional::cases(m);
    cases.extend(same_priority::cases(m));
    cases.push(baseline_pass::case(m));
    cases.push(fail_closed::case(m));
    cases
}
