//! What the server pod does with the 64-byte stream (UDP to its port 9).
//!
//! With the `stack` receiver every packet goes up the server's stack: a
//! socket lookup that finds nothing, an ICMP port unreachable (rate
//! limited), so each packet costs the receiving side work that dilutes the
//! enforcement's share of the ratio. With the `drop` receiver a constant-cost
//! program on the server's `eth0` ingress drops the stream before the stack
//! sees it, so the ratio shows what enforcement costs the forwarding path.
//! Either way the server's `/proc/net/dev` receive counter counts every
//! packet: veth counts it on transmit, before the peer's tc ingress runs.

use std::fs;

use anyhow::{Context, Result, bail};
use netseg_testbed::{Netns, in_netns};

use crate::bed::{self, Bed, SINK_PORT};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Receiver {
    Stack,
    Drop,
}

impl Receiver {
    pub const ALL: [Receiver; 2] = [Receiver::Stack, Receiver::Drop];

    pub fn name(self) -> &'static str {
        match self {
            Receiver::Stack => "stack",
            Receiver::Drop => "drop",
        }
    }

    pub fn parse(name: &str) -> Option<Receiver> {
        Receiver::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// Classic BPF in `tc`'s `bytecode` notation (code jt jf k), run in
/// direct-action mode on the server's `eth0` ingress: an unfragmented (or
/// first-fragment) IPv4 UDP packet to [`SINK_PORT`] returns `TC_ACT_SHOT`
/// (2), anything else `TC_ACT_OK` (0). Offsets count from the Ethernet
/// header. Classic BPF because this kernel has neither `cls_flower` nor the
/// `gact` action, and `cls_bpf` takes classic programs without an object
/// file.
fn sink_drop_bytecode() -> String {
    let program: [(u16, u8, u8, u32); 11] = [
        (0x28, 0, 0, 12),                   // ldh [12]: EtherType
        (0x15, 0, 8, 0x0800),               // IPv4, else pass
        (0x30, 0, 0, 23),                   // ldb [23]: protocol
        (0x15, 0, 6, 17),                   // UDP, else pass
        (0x28, 0, 0, 20),                   // ldh [20]: flags and fragment offset
        (0x45, 4, 0, 0x1fff),               // a later fragment: pass
        (0xb1, 0, 0, 14),                   // x = IPv4 header length
        (0x48, 0, 0, 16),                   // ldh [x + 16]: UDP destination port
        (0x15, 0, 1, u32::from(SINK_PORT)), // the sink port, else pass
        (0x06, 0, 0, 2),                    // drop
        (0x06, 0, 0, 0),                    // pass
    ];
    let mut text = program.len().to_string();
    for (code, jt, jf, k) in program {
        text.push_str(&format!(",{code} {jt} {jf} {k}"));
    }
    text
}

/// The `drop` receiver installed on the server pod; removed on drop.
pub struct SinkDrop<'a> {
    bed: &'a Bed,
}

impl<'a> SinkDrop<'a> {
    pub fn install(bed: &'a Bed) -> Result<Self> {
        let ns = bed.server.netns_name();
        bed::run_in(ns, &["tc", "qdisc", "add", "dev", "eth0", "clsact"])?;
        let guard = Self { bed };
        bed::run_in(
            ns,
            &[
                "tc",
                "filter",
                "add",
                "dev",
                "eth0",
                "ingress",
                "bpf",
                "bytecode",
                &sink_drop_bytecode(),
                "direct-action",
            ],
        )?;
        Ok(guard)
    }
}

impl Drop for SinkDrop<'_> {
    fn drop(&mut self) {
        if let Err(e) = bed::run_in(
            self.bed.server.netns_name(),
            &["tc", "qdisc", "del", "dev", "eth0", "clsact"],
        ) {
            eprintln!("netseg-bench: removing the drop receiver: {e:#}");
        }
    }
}

/// The server's count of UDP datagrams to a port nothing listens on
/// (`Udp: NoPorts` of `/proc/net/snmp`): what reached its stack.
pub fn udp_no_ports(pod: &impl Netns) -> Result<u64> {
    let text = in_netns(pod.netns_name(), || {
        fs::read_to_string("/proc/thread-self/net/snmp")
    })??;
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        bail!("no Udp lines in /proc/net/snmp of {}", pod.netns_name());
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "NoPorts")
        .context("no Udp NoPorts in /proc/net/snmp")?
        .1
        .parse()
        .context("Udp NoPorts")
}

/// Fails unless packets arrived and the receiver did what it names: with
/// `drop` almost none of the `received` packets reached the server's
/// stack, with `stack` almost all did.
pub fn check(receiver: Receiver, received: u64, reached_stack: u64) -> Result<()> {
    if received == 0 {
        bail!("the server received no packets");
    }
    let share = reached_stack as f64 / received as f64;
    match receiver {
        Receiver::Drop if share > 0.01 => bail!(
            "drop receiver: {reached_stack} of {received} received packets reached the server's stack"
        ),
        Receiver::Stack if share < 0.9 => bail!(
            "stack receiver: only {reached_stack} of {received} received packets reached the server's stack"
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytecode_jumps_land_on_pass_or_drop() {
        let text = sink_drop_bytecode();
        let mut fields = text.split(',');
        let count: usize = fields.next().unwrap().parse().unwrap();
        let program: Vec<Vec<u32>> = fields
            .map(|i| i.split(' ').map(|f| f.parse().unwrap()).collect())
            .collect();
        assert_eq!(program.len(), count);
        let (drop, pass) = (count - 2, count - 1);
        assert_eq!(program[drop], [6, 0, 0, 2], "TC_ACT_SHOT");
        assert_eq!(program[pass], [6, 0, 0, 0], "TC_ACT_OK");
        for (i, insn) in program.iter().enumerate() {
            if insn[0] & 0x07 == 0x05 {
                for offset in [insn[1], insn[2]] {
                    let target = i + 1 + offset as usize;
                    assert!(
                        target == pass || target == drop || offset == 0,
                        "{i}: {insn:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_receiver_that_did_not_do_what_it_names_fails() {
        assert!(check(Receiver::Drop, 1_000_000, 3).is_ok());
        assert!(check(Receiver::Drop, 1_000_000, 900_000).is_err());
        assert!(check(Receiver::Stack, 1_000_000, 999_000).is_ok());
        assert!(check(Receiver::Stack, 1_000_000, 0).is_err());
        assert!(check(Receiver::Drop, 0, 0).is_err(), "nothing arrived");
    }
}
