//! Expectations about real traffic between pods and the outside host,
//! probed all at once: a case pays one probe timeout for all its denials.
//! A denied TCP connection must time out: netseg drops silently, so a
//! refusal or an ICMP error fails the expectation as surely as a
//! connection does.

use std::net::IpAddr;

use anyhow::Result;
use netseg_testbed::{
    ConnectOutcome, Family, Netns, Outside, PROBE_TIMEOUT, Pod, ping, tcp_connect, tcp_probe,
    udp_request,
};

/// A source or destination of probes.
pub trait Host: Netns + Sync {
    fn address(&self, family: Family) -> IpAddr;
    /// How failure messages name it.
    fn label(&self) -> String;
}

impl Host for Pod {
    fn address(&self, family: Family) -> IpAddr {
        self.ip(family)
    }

    fn label(&self) -> String {
        self.full_name()
    }
}

impl Host for Outside {
    fn address(&self, family: Family) -> IpAddr {
        Outside::ip(family)
    }

    fn label(&self) -> String {
        "outside".to_owned()
    }
}

/// What a probe sends: a TCP connection exchanging a message, one UDP
/// datagram and its echo, or an ICMP echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Traffic {
    Tcp(u16),
    Udp(u16),
    Icmp,
}

impl Traffic {
    /// The destination port, if the protocol has ports.
    pub fn port(self) -> Option<u16> {
        match self {
            Traffic::Tcp(port) | Traffic::Udp(port) => Some(port),
            Traffic::Icmp => None,
        }
    }

    /// The `protocol` of its flow records.
    pub fn record_protocol(self, family: Family) -> &'static str {
        match (self, family) {
            (Traffic::Tcp(_), _) => "tcp",
            (Traffic::Udp(_), _) => "udp",
            (Traffic::Icmp, Family::V4) => "icmp",
            (Traffic::Icmp, Family::V6) => "icmpv6",
        }
    }
}

/// One expected outcome of one probe.
pub struct Expect<'a> {
    from: &'a dyn Host,
    to: &'a dyn Host,
    family: Family,
    traffic: Traffic,
    allowed: bool,
}

/// `traffic` from `from` to `to` (IPv4) gets through.
pub fn allowed<'a>(from: &'a dyn Host, to: &'a dyn Host, traffic: Traffic) -> Expect<'a> {
    Expect {
        from,
        to,
        family: Family::V4,
        traffic,
        allowed: true,
    }
}

/// `traffic` from `from` to `to` (IPv4) is silently dropped.
pub fn denied<'a>(from: &'a dyn Host, to: &'a dyn Host, traffic: Traffic) -> Expect<'a> {
    Expect {
        allowed: false,
        ..allowed(from, to, traffic)
    }
}

impl Expect<'_> {
    /// The same expectation over IPv6.
    pub fn v6(self) -> Self {
        Self {
            family: Family::V6,
            ..self
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} -> {} {:?} {:?}: expected {}",
            self.from.label(),
            self.to.label(),
            self.traffic,
            self.family,
            if self.allowed { "allowed" } else { "dropped" }
        )
    }

    /// What happened, in words, when it is not what was expected.
    fn mismatch(&self) -> Result<Option<&'static str>> {
        let from = NetnsOf(self.from);
        let to = self.to.address(self.family);
        let delivered = match (self.traffic, self.allowed) {
            (Traffic::Tcp(port), false) => {
                return Ok(match tcp_connect(&from, to, port, PROBE_TIMEOUT)? {
                    ConnectOutcome::TimedOut => None,
                    ConnectOutcome::Connected => Some("connected"),
                    ConnectOutcome::Refused => Some("refused, not silently dropped"),
                    ConnectOutcome::Unreachable => Some("unreachable, not silently dropped"),
                });
            }
            (Traffic::Tcp(port), true) => tcp_probe(&from, to, port, PROBE_TIMEOUT)?,
            (Traffic::Udp(port), _) => udp_request(&from, to, port, PROBE_TIMEOUT)?,
            (Traffic::Icmp, _) => ping(&from, to, PROBE_TIMEOUT)?,
        };
        Ok(match (delivered, self.allowed) {
            (true, false) => Some("delivered"),
            (false, true) => Some("not delivered"),
            _ => None,
        })
    }
}

/// Probes every expectation in parallel, then those that failed once more
/// (a lost packet is no verdict), and fails naming each that failed twice.
pub fn check(expectations: &[Expect<'_>]) -> Result<()> {
    let first = in_parallel(expectations.iter().collect())?;
    let again: Vec<&Expect<'_>> = expectations
        .iter()
        .zip(&first)
        .filter(|(_, mismatch)| mismatch.is_some())
        .map(|(expect, _)| expect)
        .collect();
    let second = in_parallel(again.clone())?;
    let failures: Vec<String> = again
        .iter()
        .zip(second)
        .filter_map(|(expect, mismatch)| Some(format!("{}, {}", expect.describe(), mismatch?)))
        .collect();
    anyhow::ensure!(
        failures.is_empty(),
        "{} of {} expectations failed:\n  {}",
        failures.len(),
        expectations.len(),
        failures.join("\n  ")
    );
    Ok(())
}

fn in_parallel(expectations: Vec<&Expect<'_>>) -> Result<Vec<Option<&'static str>>> {
    std::thread::scope(|scope| {
        let probes: Vec<_> = expectations
            .iter()
            .map(|expect| scope.spawn(|| expect.mismatch()))
            .collect();
        probes
            .into_iter()
            .map(|probe| match probe.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// A host's namespace, for the probes that take `impl Netns`.
struct NetnsOf<'a>(&'a dyn Host);

impl Netns for NetnsOf<'_> {
    fn netns_name(&self) -> &str {
        self.0.netns_name()
    }
}
