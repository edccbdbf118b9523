//! Operators may turn kinds of flow events off; verdicts and counters stay.

use netseg_contract::{FlowEvent, reason};

use super::packet::{Frame, SYN};
use super::{Bench, DROP, PASS, bench, bench_with};
use crate::datapath::FlowEvents;

impl Bench {
    /// The reasons of the flow events reported since the last call.
    fn events(&mut self) -> Vec<u8> {
        self.flow_events()
            .iter()
            .map(|event| event.reason)
            .collect()
    }

    /// The flow events reported since the last call.
    pub(super) fn flow_events(&mut self) -> Vec<FlowEvent> {
        let mut events = Vec::new();
        while let Some(item) = self.telemetry.events.next() {
            assert!(item.len() >= size_of::<FlowEvent>(), "a whole flow event");
            // SAFETY: the programs submit FlowEvent records; the length was checked.
            events.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) });
        }
        events
    }

    pub(super) fn counter(&self, reason: u8) -> u64 {
        let values = self
            .telemetry
            .counters
            .get(&u32::from(reason), 0)
            .expect("read a counter");
        values.iter().sum()
    }

    /// One allowed new connection, then one denied one.
    fn allowed_then_denied(&mut self) {
        let allowed = Frame::tcp("10.0.0.1", 4000, "10.0.0.2", 80, SYN);
        assert_eq!(self.egress(&allowed), PASS);
        let denied = Frame::tcp("10.0.0.1", 4001, "10.0.0.2", 81, SYN);
        assert_eq!(self.egress(&denied), DROP);
    }
}

#[test]
fn by_default_new_connections_and_denials_are_reported() {
    let mut bench = bench();
    bench.allowed_then_denied();
    assert_eq!(bench.events(), [reason::NEW_ALLOWED, reason::POLICY_DENIED]);
}

#[test]
fn denied_only_reports_denials() {
    let mut bench = bench_with(FlowEvents::Denied);
    bench.allowed_then_denied();
    assert_eq!(bench.events(), [reason::POLICY_DENIED]);
}

#[test]
fn none_reports_nothing_but_still_counts_and_enforces() {
    let mut bench = bench_with(FlowEvents::None);
    bench.allowed_then_denied();
    assert_eq!(bench.events(), Vec::<u8>::new());
    assert_eq!(bench.counter(reason::NEW_ALLOWED), 1);
    assert_eq!(bench.counter(reason::POLICY_DENIED), 1);
}
