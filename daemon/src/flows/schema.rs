//! The flow record as readers see it: one typed definition of the JSON
//! line the exporter writes by hand (`record.rs`), for everything that
//! reads records back (`netseg flows`, the daemon's flow API, the tests).
//! `docs/flow-log.md` documents each field; the tests check that every
//! line the writer produces reads back into this type and nothing is left
//! over.

use std::{collections::BTreeMap, net::IpAddr, time::SystemTime};

use serde::{Deserialize, Serialize};

/// The schema version written in every record's `schema` field.
pub const SCHEMA_VERSION: u32 = 1;

/// What a record reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordKind {
    /// A connection's first packet was allowed.
    Open,
    /// A live connection's traffic since its previous record.
    Update,
    /// A connection ended: its last traffic, and why it ended.
    End,
    /// One denied packet.
    Deny,
    /// Denials at one endpoint for one reason that got no record of their
    /// own, counted since the previous such record.
    DenyCount,
}

impl RecordKind {
    pub const ALL: [RecordKind; 5] = [
        RecordKind::Open,
        RecordKind::Update,
        RecordKind::End,
        RecordKind::Deny,
        RecordKind::DenyCount,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Open => "open",
            RecordKind::Update => "update",
            RecordKind::End => "end",
            RecordKind::Deny => "deny",
            RecordKind::DenyCount => "deny-count",
        }
    }

    pub fn is_connection(self) -> bool {
        matches!(
            self,
            RecordKind::Open | RecordKind::Update | RecordKind::End
        )
    }
}

/// Why a connection's `end` record was written (its `reason`).
pub mod end_reason {
    /// A FIN or RST was seen and the connection went quiet.
    pub const CLOSED: &str = "closed";
    /// The connection was idle past its lifetime.
    pub const EXPIRED: &str = "expired";
    /// Its conntrack entry went before it closed or expired: the policy
    /// revoked it, its endpoint went away, or its tuple was reused.
    pub const REMOVED: &str = "removed";
}

/// One flow record. Field order is the line's order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    pub schema: u32,
    pub kind: RecordKind,
    /// RFC 3339, milliseconds, UTC: when the packet was seen (`open`,
    /// `deny`), when the record was taken (`update`, `deny-count`), or the
    /// connection's last packet (`end`).
    pub time: String,
    /// The node whose daemon wrote the record.
    pub node: Option<String>,
    /// `allow` or `deny`.
    pub verdict: String,
    /// Why: `new-connection`, `established`, an end reason
    /// ([`end_reason`]), or a denial reason (`policy-denied`, `spoofed`, ...).
    pub reason: String,
    /// `ingress` or `egress`, as seen from `endpoint`.
    pub direction: String,
    pub protocol: Option<String>,
    pub src_ip: Option<IpAddr>,
    pub src_port: Option<u16>,
    pub dst_ip: Option<IpAddr>,
    pub dst_port: Option<u16>,
    #[serde(flatten, with = "src_party")]
    pub src: Party,
    #[serde(flatten, with = "dst_party")]
    pub dst: Party,
    /// The local pod whose interface saw the traffic, `namespace/name`.
    pub endpoint: Option<String>,
    /// Connection records: when the connection's first packet was seen.
    pub start: Option<String>,
    /// Connection records: from `start` to `time`.
    pub duration_ms: Option<u64>,
    /// `update` and `end`: what the connection's source (its first
    /// packet's sender) sent since the connection's previous record.
    pub src_packets: Option<u64>,
    pub src_bytes: Option<u64>,
    /// The same for what its destination sent back.
    pub dst_packets: Option<u64>,
    pub dst_bytes: Option<u64>,
    /// What decided: `NetworkPolicy app/db-from-web ingress[1] (Accept)`,
    /// `default-deny`, `default-allow`, `node-traffic`, `conntrack`, `datapath`.
    pub decided_by: String,
    pub policy_band: Option<String>,
    pub policy_kind: Option<String>,
    pub policy_namespace: Option<String>,
    pub policy_name: Option<String>,
    /// `ingress[1]`, or `ingress[1] "name"` when the rule has a name.
    pub policy_rule: Option<String>,
    pub policy_action: Option<String>,
    pub passed_by: Option<String>,
    /// `audit-would-allow` or `audit-would-deny`, when the Audit-mode
    /// policies would decide otherwise.
    pub audit: Option<String>,
    pub audit_by: Option<String>,
    /// The policy revision in force (null on `deny-count`, whose denials
    /// may span revisions).
    pub revision: Option<u32>,
    /// `deny`: 1; `deny-count`: the denials counted; connection records: null.
    pub count: Option<u64>,
}

/// One end of a flow, as the daemon knew it when the flow was seen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    /// `namespace/name`, `node`, or null for an address that is no pod.
    pub pod: Option<String>,
    /// `Kind/name` of the pod's controller (`Deployment/web`), when known.
    pub workload: Option<String>,
    /// The pod's labels that the operator chose to log (`--flow-labels`).
    pub labels: Option<BTreeMap<String, String>>,
    /// The Segments the party belongs to, by name.
    pub segments: Option<Vec<String>>,
}

/// serde's `flatten` with a prefix: `src_pod`, `src_workload`, ...
macro_rules! prefixed_party {
    ($module:ident, $pod:literal, $workload:literal, $labels:literal, $segments:literal) => {
        mod $module {
            use super::*;

            #[derive(Serialize, Deserialize)]
            struct Prefixed {
                #[serde(rename = $pod)]
                pod: Option<String>,
                #[serde(rename = $workload)]
                workload: Option<String>,
                #[serde(rename = $labels)]
                labels: Option<BTreeMap<String, String>>,
                #[serde(rename = $segments)]
                segments: Option<Vec<String>>,
            }

            pub fn serialize<S: serde::Serializer>(party: &Party, s: S) -> Result<S::Ok, S::Error> {
                Prefixed {
                    pod: party.pod.clone(),
                    workload: party.workload.clone(),
                    labels: party.labels.clone(),
                    segments: party.segments.clone(),
                }
                .serialize(s)
            }

            pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Party, D::Error> {
                let p = Prefixed::deserialize(d)?;
                Ok(Party {
                    pod: p.pod,
                    workload: p.workload,
                    labels: p.labels,
                    segments: p.segments,
                })
            }
        }
    };
}

prefixed_party!(
    src_party,
    "src_pod",
    "src_workload",
    "src_labels",
    "src_segments"
);
prefixed_party!(
    dst_party,
    "dst_pod",
    "dst_workload",
    "dst_labels",
    "dst_segments"
);

impl FlowRecord {
    /// Reads one line of a flow log.
    pub fn parse(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line)
    }

    pub fn allowed(&self) -> bool {
        self.verdict == "allow"
    }

    /// Its `time`, or `None` when that is not RFC 3339 (UTC).
    pub fn timestamp(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(&self.time).ok()
    }

    /// The packets it counts: a connection's traffic both ways since its
    /// previous record, or the packets denied.
    pub fn packets(&self) -> u64 {
        match self.kind {
            RecordKind::Deny | RecordKind::DenyCount => self.count.unwrap_or(0),
            _ => (self.src_packets.unwrap_or(0)).saturating_add(self.dst_packets.unwrap_or(0)),
        }
    }

    /// The IP bytes of a connection's traffic both ways since its previous
    /// record (denial records count no bytes).
    pub fn bytes(&self) -> u64 {
        (self.src_bytes.unwrap_or(0)).saturating_add(self.dst_bytes.unwrap_or(0))
    }
}
