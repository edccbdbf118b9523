use std::collections::BTreeMap;

use netseg_contract::{PolicyValue, VERDICT_ALLOW};
use netseg_policy::PolicyEntryKey;

use super::Publisher;
use super::memory::MemoryMaps;
use crate::datapath::state::SlotState;

fn state(rules: &[(u32, u32)]) -> SlotState {
    let policy = rules
        .iter()
        .map(|&(identity, rule)| {
            let key = PolicyEntryKey {
                policy: 1,
                identity,
                protocol: Some(6),
                port: None,
            };
            let value = PolicyValue {
                rule,
                verdict: VERDICT_ALLOW,
                _pad: [0; 3],
            };
            (key, value)
        })
        .collect::<BTreeMap<_, _>>();
    let ipcache = [("10.0.0.1/32".parse().expect("valid prefix"), 16)].into();
    SlotState {
        endpoints: BTreeMap::new(),
        ipcache,
        policy,
    }
}

#[test]
fn each_publication_fills_the_inactive_slot_then_flips() {
    let mut publisher = Publisher::new(MemoryMaps::default());
    let first = state(&[(16, 20)]);
    let second = state(&[(16, 20), (17, 21)]);
    let third = state(&[(17, 21)]);
    for (expected_revision, desired) in [(1, &first), (2, &second), (3, &third)] {
        let published = publisher.publish(desired).expect("publish");
        assert_eq!(published.revision, expected_revision);
        assert_eq!(publisher.writer().active(), desired);
    }
    // The previous policy is still intact in the other slot until the next flip.
    assert_eq!(&publisher.writer().slots[0], &second);
}

#[test]
fn the_diff_into_a_slot_touches_only_changed_entries() {
    let mut publisher = Publisher::new(MemoryMaps::default());
    publisher
        .publish(&state(&[(16, 20), (17, 21)]))
        .expect("publish");
    publisher
        .publish(&state(&[(16, 20), (17, 21)]))
        .expect("unchanged");
    publisher
        .publish(&state(&[(16, 20), (18, 22)]))
        .expect("publish");
    // Slot 1 still holds the first state: removing 17 and writing 18 bring it
    // to the next; the unchanged entries (16 and the ipcache) are not rewritten.
    let published = publisher
        .publish(&state(&[(16, 20), (18, 23)]))
        .expect("publish");
    assert_eq!((published.upserts, published.removals), (1, 1));
}

#[test]
fn an_unchanged_policy_is_not_republished() {
    let mut publisher = Publisher::new(MemoryMaps::default());
    publisher.publish(&state(&[(16, 20)])).expect("publish");
    let again = publisher.publish(&state(&[(16, 20)])).expect("publish");
    assert_eq!(again.revision, 1);
    assert_eq!(again.upserts + again.removals, 0);
}

#[test]
fn a_failed_write_keeps_the_last_good_policy_active() {
    let mut publisher = Publisher::new(MemoryMaps::default());
    let good = state(&[(16, 20)]);
    publisher.publish(&good).expect("publish");
    publisher.writer.fail_after = Some(publisher.writer.writes + 1);
    let bigger = state(&[(16, 20), (17, 21), (18, 22)]);
    let error = publisher.publish(&bigger).expect_err("the map is full");
    assert_eq!(error.active, 1);
    assert_eq!(publisher.revision(), 1);
    assert_eq!(publisher.writer().active(), &good);
    // Once there is room again, the half-written slot is completed correctly.
    publisher.writer.fail_after = None;
    publisher.publish(&bigger).expect("publish");
    assert_eq!(publisher.writer().active(), &bigger);
}
