//! The connections the cases probe, all at once (a denied one costs a
//! probe timeout).

use anyhow::Result;
use netseg_testbed::{Family, PROBE_TIMEOUT, Pod, tcp_probe, udp_request};

/// Whether each gets through: a→b TCP 80, a→b UDP 53, b→a TCP 80 (b and a
/// must serve them).
pub fn verdicts(a: &Pod, b: &Pod) -> Result<[bool; 3]> {
    let (a_ip, b_ip) = (a.ip(Family::V4), b.ip(Family::V4));
    std::thread::scope(|scope| {
        let tcp = scope.spawn(|| tcp_probe(a, b_ip, 80, PROBE_TIMEOUT));
        let udp = scope.spawn(|| udp_request(a, b_ip, 53, PROBE_TIMEOUT));
        let back = scope.spawn(|| tcp_probe(b, a_ip, 80, PROBE_TIMEOUT));
        let join = |probe: std::thread::ScopedJoinHandle<'_, Result<bool>>| {
            probe
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        };
        Ok([join(tcp)?, join(udp)?, join(back)?])
    })
}
