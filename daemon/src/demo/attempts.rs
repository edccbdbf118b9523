//! Connection attempts of the demo and what the policies should make of them.

use std::net::IpAddr;

use anyhow::Result;
use netseg_testbed::{Family, Netns, Node, Outside, Pod, ping, tcp_probe, udp_request};

use super::TIMEOUT;

/// One end of an attempt.
#[derive(Clone, Copy)]
pub enum Party<'a> {
    Pod(&'a Pod),
    Node(&'a Node),
    Outside(&'a Outside),
}

impl Party<'_> {
    fn ip(self, family: Family) -> IpAddr {
        match self {
            Party::Pod(pod) => pod.ip(family),
            Party::Node(node) => node.ip(family),
            Party::Outside(_) => Outside::ip(family),
        }
    }
}

#[derive(Clone, Copy)]
pub enum Probe {
    Tcp(u16),
    Udp(u16),
    Ping,
}

pub struct Attempt<'a> {
    pub what: &'static str,
    pub from: Party<'a>,
    pub to: Party<'a>,
    pub probe: Probe,
    pub family: Family,
    pub allowed: bool,
}

impl<'a> Attempt<'a> {
    /// An IPv4 attempt.
    pub fn new(
        what: &'static str,
        from: Party<'a>,
        to: Party<'a>,
        probe: Probe,
        allowed: bool,
    ) -> Self {
        Self {
            what,
            from,
            to,
            probe,
            family: Family::V4,
            allowed,
        }
    }

    /// The same attempt over IPv6.
    pub fn ipv6(self) -> Self {
        Self {
            family: Family::V6,
            ..self
        }
    }

    fn connect(&self) -> Result<bool> {
        let address = self.to.ip(self.family);
        match self.from {
            Party::Pod(pod) => probe(pod, address, self.probe),
            Party::Node(node) => probe(node, address, self.probe),
            Party::Outside(outside) => probe(outside, address, self.probe),
        }
    }
}

fn probe(from: &impl Netns, address: IpAddr, probe: Probe) -> Result<bool> {
    match probe {
        Probe::Tcp(port) => tcp_probe(from, address, port, TIMEOUT),
        Probe::Udp(port) => udp_request(from, address, port, TIMEOUT),
        Probe::Ping => ping(from, address, TIMEOUT),
    }
}

/// Runs the attempts in order, prints expected and observed verdicts, and
/// returns how many came out wrong.
pub fn run_attempts(attempts: &[Attempt<'_>]) -> Result<usize> {
    println!("{:<44} {:<10} {:<10}", "connection", "expected", "observed");
    let mut wrong = 0;
    for attempt in attempts {
        let connected = attempt.connect()?;
        let verdict = |allowed| if allowed { "allowed" } else { "denied" };
        let mark = if connected == attempt.allowed {
            ""
        } else {
            "  <- WRONG"
        };
        wrong += usize::from(connected != attempt.allowed);
        println!(
            "{:<44} {:<10} {:<10}{mark}",
            attempt.what,
            verdict(attempt.allowed),
            verdict(connected)
        );
    }
    println!();
    Ok(wrong)
}
