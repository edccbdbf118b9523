//! Verdict counters and flow events. New connections are always reported.
//! A denial gets a record of its own while its endpoint and all endpoints
//! together are under their per-second budgets and its flow had none in the
//! last second; every other denial is counted per endpoint and reason in
//! `DENY_COUNTS`, which the daemon turns into aggregated records.

use aya_ebpf::{
    bindings::{
        BPF_NOEXIST, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE,
    },
    helpers::bpf_ktime_get_ns,
};
use netseg_contract::{
    BudgetKey, CONFIG_DENY_RECORDS_PER_ENDPOINT, CONFIG_DENY_RECORDS_TOTAL, CONFIG_FLOW_EVENTS_OFF,
    DENY_SAMPLE_INTERVAL_NS, DenyCountKey, FlowEvent, RecordBudget, VERDICT_ALLOW, VERDICT_DENY,
    flow_events_off, reason,
};

use crate::{
    atomic,
    conntrack::conn_key,
    maps::{CONFIG, COUNTERS, DENY_BUDGETS, DENY_COUNTS, DENY_SAMPLES, EVENTS},
    parse::Tuple,
};

/// What happened to a packet, and which rule decided.
#[derive(Clone, Copy)]
pub struct Decision {
    pub allow: bool,
    pub reason: u8,
    pub rule: u32,
}

impl Decision {
    #[inline(always)]
    pub fn allow(reason: u8, rule: u32) -> Self {
        Self {
            allow: true,
            reason,
            rule,
        }
    }

    #[inline(always)]
    pub fn deny(reason: u8, rule: u32) -> Self {
        Self {
            allow: false,
            reason,
            rule,
        }
    }
}

/// Where the packet was seen, and when.
#[derive(Clone, Copy)]
pub struct Hook {
    pub ifindex: u32,
    pub direction: u8,
    pub revision: u32,
    /// CLOCK_MONOTONIC. On the established path the coarse clock (a tick
    /// behind at most), enough to expire entries and restamp them; any other
    /// path reads the precise one ([`Hook::precisely`]), since its records'
    /// timestamps, and a new connection's `opened_ns` that its open record
    /// must equal, are what analysts and the daemon see.
    pub now: u64,
}

impl Hook {
    /// At the same place, with the precise time.
    #[inline(always)]
    pub fn precisely(self) -> Self {
        Self {
            // SAFETY: a helper without preconditions.
            now: unsafe { bpf_ktime_get_ns() },
            ..self
        }
    }
}

#[inline(always)]
pub fn count(index: u8) {
    if let Some(counter) = COUNTERS.get_ptr_mut(index as u32) {
        // SAFETY: per-CPU slot of this CPU; programs do not preempt each other on it.
        unsafe { *counter += 1 };
    }
}

/// Counts the decision and reports it when a user would want to see it
/// (and has not turned that kind of event off).
#[inline(always)]
pub fn record(hook: &Hook, tuple: &Tuple, decision: &Decision) {
    count(decision.reason);
    if decision.allow {
        if decision.reason == reason::NEW_ALLOWED
            && reported(flow_events_off::ALLOWED)
            && !emit(hook, tuple, decision)
        {
            count(reason::COUNTER_EVENTS_LOST);
        }
        return;
    }
    if !reported(flow_events_off::DENIED) {
        return;
    }
    // A denial the ring buffer has no room for is counted like any other.
    if !(own_record_due(hook, tuple) && emit(hook, tuple, decision)) {
        count_denial(hook, decision.reason);
    }
}

/// Whether events of kind `off_bit` are reported. Read only when an event
/// is due, so established traffic never pays for it.
#[inline(always)]
fn reported(off_bit: u32) -> bool {
    let off = CONFIG.get(CONFIG_FLOW_EVENTS_OFF).copied().unwrap_or(0);
    off & off_bit == 0
}

/// Whether this denial gets a record of its own, spending the budgets when
/// it does. The budgets are checked before the flow's sample, so a flood of
/// new flows past its budget does not touch `DENY_SAMPLES` either.
#[inline(always)]
fn own_record_due(hook: &Hook, tuple: &Tuple) -> bool {
    let second = hook.now / 1_000_000_000;
    let endpoint = BudgetKey::endpoint(hook.ifindex, hook.direction);
    let Some(own) = budget_left(&endpoint, second, CONFIG_DENY_RECORDS_PER_ENDPOINT) else {
        return false;
    };
    let Some(all) = budget_left(&BudgetKey::ALL, second, CONFIG_DENY_RECORDS_TOTAL) else {
        return false;
    };
    if !flow_quiet_for_a_second(hook, tuple) {
        return false;
    }
    atomic::add(own, 1);
    atomic::add(all, 1);
    true
}

/// The `used` count of `key`'s budget for `second` when some is left.
/// Two CPUs may both see the last unit left: a second's records exceed the
/// budget by at most the number of CPUs less one.
#[inline(always)]
fn budget_left(key: &BudgetKey, second: u64, limit_index: u32) -> Option<*mut u64> {
    let limit = u64::from(CONFIG.get(limit_index).copied().unwrap_or(0));
    let budget = match DENY_BUDGETS.get_ptr_mut(key) {
        Some(budget) => budget,
        None => {
            let fresh = RecordBudget { second, used: 0 };
            DENY_BUDGETS.insert(key, &fresh, 0).ok()?;
            DENY_BUDGETS.get_ptr_mut(key)?
        }
    };
    // SAFETY: a valid pointer into the map's value; a race only resets a second twice.
    let budget = unsafe { &mut *budget };
    if budget.second != second {
        budget.second = second;
        budget.used = 0;
    }
    (budget.used < limit).then_some(&raw mut budget.used)
}

/// Whether the flow had no record of its own in the last second (and marks
/// that it has one now).
#[inline(always)]
fn flow_quiet_for_a_second(hook: &Hook, tuple: &Tuple) -> bool {
    let key = conn_key(hook.ifindex, hook.direction, tuple);
    match DENY_SAMPLES.get_ptr_mut(&key) {
        Some(last_emit_ns) => {
            // SAFETY: a valid pointer into the map's value.
            let last_emit_ns = unsafe { &mut *last_emit_ns };
            // Saturating: another CPU may have emitted after this packet read the clock.
            if hook.now.saturating_sub(*last_emit_ns) < DENY_SAMPLE_INTERVAL_NS {
                return false;
            }
            *last_emit_ns = hook.now;
            true
        }
        None => {
            let _ = DENY_SAMPLES.insert(&key, &hook.now, 0);
            true
        }
    }
}

/// Counts a denial without a record of its own where the daemon reads it.
#[inline(always)]
fn count_denial(hook: &Hook, why: u8) {
    let key = DenyCountKey {
        ifindex: hook.ifindex,
        direction: hook.direction,
        reason: why,
        _pad: [0; 2],
    };
    let counted = match DENY_COUNTS.get_ptr_mut(&key) {
        Some(total) => {
            atomic::add(total, 1);
            true
        }
        // Another CPU may create the key first: then add to its count.
        None => match DENY_COUNTS.insert(&key, &1, u64::from(BPF_NOEXIST)) {
            Ok(()) => true,
            Err(_) => DENY_COUNTS
                .get_ptr_mut(&key)
                .map(|count| atomic::add(count, 1))
                .is_some(),
        },
    };
    count(if counted {
        reason::COUNTER_EVENTS_SAMPLED
    } else {
        reason::COUNTER_EVENTS_LOST
    });
}

/// Puts the event into the ring buffer; false when it is full. The daemon
/// drains the ring on a timer (`flows::DRAIN_INTERVAL`), so a record wakes
/// it only once the unread part holds an eighth of the ring: a new
/// connection does not pay for a wakeup of its own (an interrupt on this
/// CPU, a context switch on another), and a burst still reaches the daemon
/// long before the ring fills.
#[inline(always)]
fn emit(hook: &Hook, tuple: &Tuple, decision: &Decision) -> bool {
    let Some(mut entry) = EVENTS.reserve::<FlowEvent>(0) else {
        return false;
    };
    entry.write(FlowEvent {
        timestamp_ns: hook.now,
        ifindex: hook.ifindex,
        rule: decision.rule,
        revision: hook.revision,
        _pad: 0,
        src: tuple.src.0,
        dst: tuple.dst.0,
        src_port: tuple.src_port,
        dst_port: tuple.dst_port,
        protocol: tuple.protocol,
        direction: hook.direction,
        verdict: if decision.allow {
            VERDICT_ALLOW
        } else {
            VERDICT_DENY
        },
        reason: decision.reason,
    });
    let unread = EVENTS.query(u64::from(BPF_RB_AVAIL_DATA));
    let size = EVENTS.query(u64::from(BPF_RB_RING_SIZE));
    let wakeup = if unread.saturating_mul(8) >= size {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    entry.submit(u64::from(wakeup));
    true
}
