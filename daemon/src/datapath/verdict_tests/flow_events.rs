//! Operators may turn kinds of flow events off; verdicts and counters stay.
//! Denials get records of their own within per-second budgets; every other
//! denial is counted per endpoint and reason, none is lost.

use netseg_contract::{DIRECTION_EGRESS, DIRECTION_INGRESS, DenyCountKey, FlowEvent, reason};

use super::packet::{Frame, SYN};
use super::{Bench, DROP, LIMITS, PASS, bench, bench_configured, bench_with};
use crate::datapath::{DenyBudgets, FlowEvents};
use crate::flows::{
    DenialReports, FlowContext, FlowRecord, FlowWriter, RecordKind, monotonic_epoch,
};
use crate::metrics::Metrics;

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

impl Bench {
    /// Denials of `direction` at the test endpoint without a record of their own.
    fn denials_counted(&self, direction: u8, why: u8) -> u64 {
        let key = DenyCountKey {
            ifindex: 1,
            direction,
            reason: why,
            _pad: [0; 2],
        };
        match self.telemetry.denials.get(&key, 0) {
            Ok(count) => count,
            Err(aya::maps::MapError::KeyNotFound) => 0,
            Err(error) => panic!("reading DENY_COUNTS: {error}"),
        }
    }
}

/// A denied SYN from the test endpoint to a port nothing allows, one flow per source port.
fn denied_egress(source_port: u16) -> Frame {
    Frame::tcp("10.0.0.1", source_port, "10.0.0.2", 81, SYN)
}

/// A denied SYN to the test endpoint.
fn denied_ingress(source_port: u16) -> Frame {
    Frame::tcp("10.0.0.2", source_port, "10.0.0.1", 81, SYN)
}

/// Runs `burst` on a fresh bench within one second of the programs' clock
/// (the budgets are per second), and returns the bench.
fn within_one_second(budgets: DenyBudgets, burst: impl Fn(&mut Bench)) -> Bench {
    loop {
        let mut bench = bench_configured(FlowEvents::All, 1024, LIMITS, budgets);
        let second = || crate::flows::monotonic_now().as_secs();
        let started = second();
        burst(&mut bench);
        if second() == started {
            return bench;
        }
    }
}

#[test]
fn past_its_budget_an_endpoint_s_denials_are_counted_not_recorded() {
    let budgets = DenyBudgets {
        per_endpoint: 3,
        total: 1000,
    };
    let mut bench = within_one_second(budgets, |bench| {
        for port in 5000..5010 {
            assert_eq!(bench.egress(&denied_egress(port)), DROP);
        }
    });
    assert_eq!(bench.events(), [reason::POLICY_DENIED; 3]);
    assert_eq!(
        bench.denials_counted(DIRECTION_EGRESS, reason::POLICY_DENIED),
        7
    );
    assert_eq!(bench.counter(reason::COUNTER_EVENTS_SAMPLED), 7);
    assert_eq!(bench.counter(reason::COUNTER_EVENTS_LOST), 0);
}

#[test]
fn the_total_budget_holds_across_endpoints() {
    let budgets = DenyBudgets {
        per_endpoint: 3,
        total: 4,
    };
    let mut bench = within_one_second(budgets, |bench| {
        for port in 5000..5003 {
            assert_eq!(bench.egress(&denied_egress(port)), DROP);
            assert_eq!(bench.ingress(&denied_ingress(port)), DROP);
        }
    });
    assert_eq!(bench.events().len(), 4);
    let counted = bench.denials_counted(DIRECTION_EGRESS, reason::POLICY_DENIED)
        + bench.denials_counted(DIRECTION_INGRESS, reason::POLICY_DENIED);
    assert_eq!(counted, 2);
}

#[test]
fn a_repeated_flow_gets_one_record_a_second_and_its_repeats_are_counted() {
    let mut bench = within_one_second(DenyBudgets::DEFAULT, |bench| {
        for _ in 0..5 {
            assert_eq!(bench.egress(&denied_egress(5000)), DROP);
        }
    });
    assert_eq!(bench.events(), [reason::POLICY_DENIED]);
    assert_eq!(
        bench.denials_counted(DIRECTION_EGRESS, reason::POLICY_DENIED),
        4
    );
}

#[test]
fn a_zero_budget_counts_every_denial() {
    let budgets = DenyBudgets {
        per_endpoint: 0,
        total: 1000,
    };
    let mut bench = bench_configured(FlowEvents::All, 1024, LIMITS, budgets);
    bench.allowed_then_denied();
    assert_eq!(bench.events(), [reason::NEW_ALLOWED]);
    assert_eq!(
        bench.denials_counted(DIRECTION_EGRESS, reason::POLICY_DENIED),
        1
    );
}

#[test]
fn denials_the_ring_buffer_has_no_room_for_are_counted_not_lost() {
    let budgets = DenyBudgets {
        per_endpoint: 100_000,
        total: 100_000,
    };
    // The bench's ring buffer holds well under 2000 events.
    let mut bench = bench_configured(FlowEvents::All, 1024, LIMITS, budgets);
    for port in 10_000..12_000 {
        assert_eq!(bench.egress(&denied_egress(port)), DROP);
    }
    let recorded = bench.events().len() as u64;
    let counted = bench.denials_counted(DIRECTION_EGRESS, reason::POLICY_DENIED);
    assert!(counted > 0, "the ring buffer filled up ({recorded} events)");
    assert_eq!(recorded + counted, 2000);
    assert_eq!(bench.counter(reason::COUNTER_EVENTS_LOST), 0);
}

/// The counts of the aggregated records one reading of `DENY_COUNTS` writes.
fn report(bench: &mut Bench, reports: &mut DenialReports) -> Vec<u64> {
    let metrics = Metrics::new();
    let mut out = Vec::new();
    let mut writer = FlowWriter::new(&mut out, monotonic_epoch(), Some("node-1"), &metrics);
    reports
        .report(
            &mut bench.telemetry.denials,
            &mut writer,
            &FlowContext::default(),
        )
        .expect("read the counts");
    writer.flush().expect("flushing a Vec");
    drop(writer);
    let text = String::from_utf8(out).expect("JSON is UTF-8");
    text.lines()
        .map(|line| {
            let record = FlowRecord::parse(line).expect("a flow record");
            assert_eq!(record.kind, RecordKind::DenyCount);
            record.count.expect("a count")
        })
        .collect()
}

#[test]
fn counts_are_reported_by_growth_and_a_detached_interface_s_are_removed_after_their_last() {
    let budgets = DenyBudgets {
        per_endpoint: 0,
        total: 0,
    };
    let mut bench = bench_configured(FlowEvents::All, 1024, LIMITS, budgets);
    let mut reports = DenialReports::default();
    let deny = |bench: &mut Bench, count| {
        for _ in 0..count {
            assert_eq!(bench.egress(&denied_egress(5000)), DROP);
        }
    };
    deny(&mut bench, 3);
    assert_eq!(report(&mut bench, &mut reports), [3]);
    assert_eq!(report(&mut bench, &mut reports), Vec::<u64>::new());
    reports.detached(1);
    // Packets still in flight while the programs go.
    deny(&mut bench, 2);
    assert_eq!(report(&mut bench, &mut reports), [2]);
    assert_eq!(
        bench.denials_counted(DIRECTION_EGRESS, reason::POLICY_DENIED),
        5
    );
    // One more reading, then the key goes.
    assert_eq!(report(&mut bench, &mut reports), Vec::<u64>::new());
    assert_eq!(
        bench.denials_counted(DIRECTION_EGRESS, reason::POLICY_DENIED),
        0
    );
    // Were the ifindex ever used again, it would count from zero.
    deny(&mut bench, 1);
    assert_eq!(report(&mut bench, &mut reports), [1]);
}
