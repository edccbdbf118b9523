//! Verdict counters and flow events. New connections are always reported;
//! denied packets at most once a second per flow, with the rest counted.

use netseg_contract::{
    CONFIG_FLOW_EVENTS_OFF, DENY_SAMPLE_INTERVAL_NS, DenySample, FlowEvent, VERDICT_ALLOW,
    VERDICT_DENY, flow_events_off, reason,
};

use crate::{
    conntrack::conn_key,
    maps::{CONFIG, COUNTERS, DENY_SAMPLES, EVENTS},
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

/// Where the packet was seen.
pub struct Hook {
    pub ifindex: u32,
    pub direction: u8,
    pub revision: u32,
    pub now: u64,
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
        if decision.reason == reason::NEW_ALLOWED && reported(flow_events_off::ALLOWED) {
            emit(hook, tuple, decision, 0);
        }
        return;
    }
    if !reported(flow_events_off::DENIED) {
        return;
    }
    if let Some(suppressed) = sample_denial(hook, tuple) {
        emit(hook, tuple, decision, suppressed);
    }
}

/// Whether events of kind `off_bit` are reported. Read only when an event
/// is due, so established traffic never pays for it.
#[inline(always)]
fn reported(off_bit: u32) -> bool {
    let off = CONFIG.get(CONFIG_FLOW_EVENTS_OFF).copied().unwrap_or(0);
    off & off_bit == 0
}

/// `Some(suppressed count)` when this denial should be reported.
#[inline(always)]
fn sample_denial(hook: &Hook, tuple: &Tuple) -> Option<u32> {
    let key = conn_key(hook.ifindex, hook.direction, tuple);
    match DENY_SAMPLES.get_ptr_mut(&key) {
        Some(sample) => {
            // SAFETY: a valid pointer into the map's value; races only lose a count.
            let sample = unsafe { &mut *sample };
            // Saturating: another CPU may have emitted after this packet read the clock.
            if hook.now.saturating_sub(sample.last_emit_ns) < DENY_SAMPLE_INTERVAL_NS {
                sample.suppressed += 1;
                count(reason::COUNTER_EVENTS_SAMPLED);
                return None;
            }
            let suppressed = sample.suppressed;
            sample.suppressed = 0;
            sample.last_emit_ns = hook.now;
            Some(suppressed)
        }
        None => {
            let sample = DenySample {
                last_emit_ns: hook.now,
                suppressed: 0,
                _pad: 0,
            };
            let _ = DENY_SAMPLES.insert(&key, &sample, 0);
            Some(0)
        }
    }
}

#[inline(always)]
fn emit(hook: &Hook, tuple: &Tuple, decision: &Decision, suppressed: u32) {
    let Some(mut entry) = EVENTS.reserve::<FlowEvent>(0) else {
        count(reason::COUNTER_EVENTS_LOST);
        return;
    };
    entry.write(FlowEvent {
        timestamp_ns: hook.now,
        ifindex: hook.ifindex,
        rule: decision.rule,
        revision: hook.revision,
        suppressed,
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
    entry.submit(0);
}
