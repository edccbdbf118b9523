//! The one atomic operation the programs need. The BPF target has no
//! `AtomicU64::fetch_add`, and the programs are built for the baseline
//! instruction set, whose atomic add (BPF_XADD) returns nothing.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

/// Adds `delta` (wrapping) to the count at `counter`, exactly across CPUs.
#[inline(always)]
pub fn add(counter: *mut u64, delta: u64) {
    // SAFETY: callers pass a valid, 8-byte aligned pointer into a map value,
    // which outlives the program; the result is unused, so this is BPF_XADD.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(counter, delta) };
}
