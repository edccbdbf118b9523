//! The questions analysts ask of flow records: which records match a set
//! of filters (the same names in the flow API's URL query and in the flags
//! of `netseg flows`), and who talked to whom the most.
//!
//! Values of one filter are OR'd, filters are AND'd; a pod, namespace,
//! workload, segment, port or address filter matches either party.

use std::{
    collections::{BTreeSet, HashMap},
    net::IpAddr,
    str::FromStr,
    time::{Duration, SystemTime},
};

use ipnetwork::IpNetwork;
use serde::Serialize;

use super::{FlowRecord, Party, RecordKind, end_reason, protocol_name, reason_name};

/// Every filter's name.
pub const FILTER_NAMES: [&str; 15] = [
    "namespace",
    "pod",
    "workload",
    "segment",
    "direction",
    "verdict",
    "kind",
    "reason",
    "policy",
    "rule",
    "port",
    "protocol",
    "ip",
    "since",
    "until",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("unknown filter {name:?} (the filters are {})", FILTER_NAMES.join(", "))]
    Unknown { name: String },
    #[error("filter {name}={value:?}: {why}")]
    BadValue {
        name: &'static str,
        value: String,
        why: String,
    },
    #[error(
        "filter {name} given twice ({first:?} and {second:?}): a time range has one start and one end"
    )]
    Repeated {
        name: &'static str,
        first: String,
        second: String,
    },
}

/// Which records to show. The default matches every record.
#[derive(Debug, Default, PartialEq)]
pub struct FlowFilter {
    namespaces: Vec<String>,
    pods: Vec<String>,
    workloads: Vec<String>,
    segments: Vec<String>,
    directions: Vec<String>,
    verdicts: Vec<String>,
    kinds: Vec<RecordKind>,
    reasons: Vec<String>,
    policies: Vec<String>,
    rules: Vec<String>,
    ports: Vec<u16>,
    protocols: Vec<String>,
    networks: Vec<IpNetwork>,
    since: Option<(SystemTime, String)>,
    until: Option<(SystemTime, String)>,
}

impl FlowFilter {
    /// The filter of `(name, value)` pairs; a `since` or `until` given as
    /// a duration (`10m`) reaches back from `now`.
    pub fn parse<N, V>(
        pairs: impl IntoIterator<Item = (N, V)>,
        now: SystemTime,
    ) -> Result<Self, FilterError>
    where
        N: AsRef<str>,
        V: AsRef<str>,
    {
        let mut filter = Self::default();
        for (name, value) in pairs {
            filter.add(name.as_ref(), value.as_ref(), now)?;
        }
        Ok(filter)
    }

    fn add(&mut self, name: &str, value: &str, now: SystemTime) -> Result<(), FilterError> {
        let Some(&name) = FILTER_NAMES.iter().find(|known| **known == name) else {
            return Err(FilterError::Unknown { name: name.into() });
        };
        let bad = |why: String| FilterError::BadValue {
            name,
            value: value.into(),
            why,
        };
        if value.is_empty() {
            return Err(bad("empty".into()));
        }
        let text = || value.to_owned();
        match name {
            "namespace" => self.namespaces.push(text()),
            "pod" => self.pods.push(text()),
            "workload" => self.workloads.push(text()),
            "segment" => self.segments.push(text()),
            "policy" => self.policies.push(text()),
            "rule" => self.rules.push(text()),
            "direction" => self
                .directions
                .push(one_of(value, &["ingress", "egress"]).map_err(bad)?),
            "verdict" => self
                .verdicts
                .push(one_of(value, &["allow", "deny"]).map_err(bad)?),
            "kind" => self.kinds.push(kind(value).map_err(bad)?),
            "reason" => self
                .reasons
                .push(one_of(value, &known_reasons()).map_err(bad)?),
            "protocol" => self.protocols.push(protocol(value).map_err(bad)?),
            "port" => self.ports.push(
                value
                    .parse()
                    .map_err(|_| bad("not a port number (0 to 65535)".into()))?,
            ),
            "ip" => self.networks.push(
                IpNetwork::from_str(value)
                    .map_err(|error| bad(format!("not an address or CIDR: {error}")))?,
            ),
            "since" => set_once(&mut self.since, name, value, time(value, now).map_err(bad)?)?,
            "until" => set_once(&mut self.until, name, value, time(value, now).map_err(bad)?)?,
            _ => return Err(FilterError::Unknown { name: name.into() }),
        }
        Ok(())
    }

    /// True when no filter was given: every record matches.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    pub fn matches(&self, record: &FlowRecord) -> bool {
        let parties = [&record.src, &record.dst];
        let either = |test: &dyn Fn(&Party) -> bool| parties.iter().any(|party| test(party));
        // The endpoint is one of the parties, and the only one a
        // `deny-count` record names.
        let pods = [&record.src.pod, &record.dst.pod, &record.endpoint];
        let pods = || pods.into_iter().flatten().map(String::as_str);
        let in_time = match (&self.since, &self.until) {
            (None, None) => true,
            (since, until) => record.timestamp().is_some_and(|time| {
                since.as_ref().is_none_or(|(since, _)| time >= *since)
                    && until.as_ref().is_none_or(|(until, _)| time <= *until)
            }),
        };
        in_time
            && any(&self.namespaces, |ns| {
                pods().any(|pod| namespace_of(pod) == Some(ns))
            })
            && any(&self.pods, |wanted| {
                pods().any(|pod| names_match(wanted, pod))
            })
            && any(&self.workloads, |workload| {
                either(&|party| {
                    let known = party.workload.as_deref();
                    known.is_some_and(|w| names_match(workload, w))
                })
            })
            && any(&self.segments, |segment| {
                either(&|party| {
                    let segments = party.segments.as_deref().unwrap_or_default();
                    segments.contains(segment)
                })
            })
            && any(&self.directions, |d| *d == record.direction)
            && any(&self.verdicts, |v| *v == record.verdict)
            && any(&self.kinds, |k| *k == record.kind)
            && any(&self.reasons, |r| *r == record.reason)
            && any(&self.policies, |policy| policy_matches(policy, record))
            && any(&self.rules, |rule| {
                record
                    .policy_rule
                    .as_deref()
                    .is_some_and(|r| rule_matches(rule, r))
            })
            && any(&self.ports, |port| {
                record.src_port == Some(*port) || record.dst_port == Some(*port)
            })
            && any(&self.protocols, |p| record.protocol.as_deref() == Some(p))
            && any(&self.networks, |network| {
                [record.src_ip, record.dst_ip]
                    .into_iter()
                    .flatten()
                    .any(|ip| network.contains(ip))
            })
    }
}

/// True when no value was given, or one of them passes.
fn any<T>(values: &[T], test: impl Fn(&T) -> bool) -> bool {
    values.is_empty() || values.iter().any(test)
}

fn set_once(
    slot: &mut Option<(SystemTime, String)>,
    name: &'static str,
    value: &str,
    time: SystemTime,
) -> Result<(), FilterError> {
    if let Some((_, first)) = slot {
        return Err(FilterError::Repeated {
            name,
            first: first.clone(),
            second: value.into(),
        });
    }
    *slot = Some((time, value.into()));
    Ok(())
}

fn one_of(value: &str, known: &[&str]) -> Result<String, String> {
    match known.contains(&value) {
        true => Ok(value.into()),
        false => Err(expected(known)),
    }
}

fn expected(known: &[&str]) -> String {
    format!("expected one of {}", known.join(", "))
}

fn kind(value: &str) -> Result<RecordKind, String> {
    let found = RecordKind::ALL
        .into_iter()
        .find(|kind| kind.name() == value);
    found.ok_or_else(|| expected(&RecordKind::ALL.map(RecordKind::name)))
}

/// The reasons records give: the datapath's and the ends of connections.
fn known_reasons() -> Vec<&'static str> {
    let datapath = (0..=u8::MAX).map(reason_name);
    let ends = [end_reason::CLOSED, end_reason::EXPIRED, end_reason::REMOVED];
    let names: BTreeSet<&str> = datapath.chain(ends).collect();
    names.into_iter().collect()
}

/// A protocol by name or number, as records name it (`6` is `tcp`).
fn protocol(value: &str) -> Result<String, String> {
    if let Ok(number) = value.parse::<u8>() {
        return Ok(protocol_name(number).into_owned());
    }
    let names = (0..=u8::MAX).map(protocol_name);
    let named: Vec<_> = names.filter(|name| name.parse::<u8>().is_err()).collect();
    if named.iter().any(|name| name == value) {
        return Ok(value.into());
    }
    Err(format!(
        "expected {} or a number (0 to 255)",
        named.join(", ")
    ))
}

/// An RFC 3339 time (UTC), or a duration back from `now` (`10m`, `2h 30m`).
fn time(value: &str, now: SystemTime) -> Result<SystemTime, String> {
    if let Ok(time) = humantime::parse_rfc3339_weak(value) {
        return Ok(time);
    }
    let back: Duration = humantime::parse_duration(value).map_err(|_| {
        "neither an RFC 3339 time (2025-01-31T12:00:00Z) nor a duration back from now (10m)"
            .to_owned()
    })?;
    now.checked_sub(back)
        .ok_or_else(|| "reaches back past the start of time".into())
}

fn namespace_of(pod: &str) -> Option<&str> {
    pod.split_once('/').map(|(ns, _)| ns)
}

/// `wanted` with a `/` names the whole (`app/web`, `Deployment/web`);
/// without, only the part after the last `/` (`web`).
fn names_match(wanted: &str, full: &str) -> bool {
    if wanted.contains('/') {
        full == wanted
    } else {
        full.rsplit('/').next() == Some(wanted)
    }
}

/// `name` or `namespace/name` of the policy that decided.
fn policy_matches(wanted: &str, record: &FlowRecord) -> bool {
    let Some(name) = record.policy_name.as_deref() else {
        return false;
    };
    match (wanted.split_once('/'), record.policy_namespace.as_deref()) {
        (Some((ns, wanted)), Some(namespace)) => ns == namespace && wanted == name,
        (Some(_), None) => false,
        (None, _) => wanted == name,
    }
}

/// A rule as records write it (`ingress[1] "to-db"`), its place alone
/// (`ingress[1]`) or its name alone (`to-db`).
fn rule_matches(wanted: &str, rule: &str) -> bool {
    let (place, name) = match rule.split_once(' ') {
        Some((place, quoted)) => (place, serde_json::from_str::<String>(quoted).ok()),
        None => (rule, None),
    };
    wanted == rule || wanted == place || name.is_some_and(|name| name == wanted)
}

/// One end of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
}

/// Who one end of `record` is, for people: its pod, else its address (with
/// the port when `with_port`), else for a `deny-count` record the endpoint
/// on that side, else `?`.
pub fn party_label(record: &FlowRecord, side: Side, with_port: bool) -> String {
    let (party, ip, port) = match side {
        Side::Source => (&record.src, record.src_ip, record.src_port),
        Side::Destination => (&record.dst, record.dst_ip, record.dst_port),
    };
    if let Some(pod) = &party.pod {
        return pod.clone();
    }
    match (ip, port.filter(|_| with_port)) {
        (Some(IpAddr::V6(ip)), Some(port)) => format!("[{ip}]:{port}"),
        (Some(ip), Some(port)) => format!("{ip}:{port}"),
        (Some(ip), None) => ip.to_string(),
        (None, _) => {
            // The endpoint is the receiving side of ingress, the sending side of egress.
            let endpoint_side = match record.direction.as_str() {
                "ingress" => Side::Destination,
                _ => Side::Source,
            };
            let endpoint = record.endpoint.as_ref().filter(|_| endpoint_side == side);
            endpoint.cloned().unwrap_or_else(|| "?".into())
        }
    }
}

/// `tcp/5432`, `icmp`, or `?` when the record has no packet.
pub fn service_label(record: &FlowRecord) -> String {
    match (&record.protocol, record.dst_port) {
        (Some(protocol), Some(port)) => format!("{protocol}/{port}"),
        (Some(protocol), None) => protocol.clone(),
        (None, _) => "?".into(),
    }
}

/// What a group of records adds up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    pub records: u64,
    /// Packets both ways, or the packets denied ([`FlowRecord::packets`]).
    pub packets: u64,
    pub bytes: u64,
}

impl Traffic {
    fn add(&mut self, record: &FlowRecord) {
        self.records += 1;
        self.packets = self.packets.saturating_add(record.packets());
        self.bytes = self.bytes.saturating_add(record.bytes());
    }
}

/// One line of a top list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Talker {
    pub key: String,
    #[serde(flatten)]
    pub traffic: Traffic,
}

/// Records added up by source, destination, destination service and
/// verdict, and the denials by source, destination and service.
#[derive(Debug, Default)]
pub struct Tally {
    total: Traffic,
    sources: HashMap<String, Traffic>,
    destinations: HashMap<String, Traffic>,
    services: HashMap<String, Traffic>,
    verdicts: HashMap<String, Traffic>,
    denied: HashMap<String, Traffic>,
}

/// The top of each list of a [`Tally`].
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub total: Traffic,
    /// By bytes, then packets, then records.
    pub sources: Vec<Talker>,
    pub destinations: Vec<Talker>,
    /// By destination protocol and port.
    pub services: Vec<Talker>,
    /// By verdict and reason (`deny policy-denied`).
    pub verdicts: Vec<Talker>,
    /// Denials by `source -> destination service`, most packets first.
    pub denied: Vec<Talker>,
}

impl Tally {
    pub fn add(&mut self, record: &FlowRecord) {
        let source = party_label(record, Side::Source, false);
        let destination = party_label(record, Side::Destination, false);
        let service = service_label(record);
        self.total.add(record);
        if !record.allowed() {
            let denial = format!("{source} -> {destination} {service}");
            self.denied.entry(denial).or_default().add(record);
        }
        let verdict = format!("{} {}", record.verdict, record.reason);
        self.verdicts.entry(verdict).or_default().add(record);
        self.sources.entry(source).or_default().add(record);
        self.destinations
            .entry(destination)
            .or_default()
            .add(record);
        self.services.entry(service).or_default().add(record);
    }

    /// The `top` largest of each list.
    pub fn summary(&self, top: usize) -> Summary {
        Summary {
            total: self.total,
            sources: largest(&self.sources, top),
            destinations: largest(&self.destinations, top),
            services: largest(&self.services, top),
            verdicts: largest(&self.verdicts, top),
            denied: largest(&self.denied, top),
        }
    }
}

fn largest(groups: &HashMap<String, Traffic>, top: usize) -> Vec<Talker> {
    let mut talkers: Vec<Talker> = groups
        .iter()
        .map(|(key, traffic)| Talker {
            key: key.clone(),
            traffic: *traffic,
        })
        .collect();
    talkers.sort_by(|a, b| {
        let size = |t: &Talker| (t.traffic.bytes, t.traffic.packets, t.traffic.records);
        size(b).cmp(&size(a)).then_with(|| a.key.cmp(&b.key))
    });
    talkers.truncate(top);
    talkers
}

#[cfg(test)]
mod tests;
