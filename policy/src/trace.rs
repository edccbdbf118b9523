//! What `explain` shows: the steps of precedence one new connection meets at
//! one endpoint in one direction, each with what it made of the connection,
//! up to the step that decides. Built by [`Compiler::trace`](crate::Compiler::trace)
//! from the same ordered steps the compiler writes into the maps, so the
//! trace's verdict is the one the datapath applies.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::types::{Action, Band, Decider, Direction, IdentityInfo, PodRef, Verdict};

/// A new connection as one endpoint sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// The local pod whose policy decides.
    pub endpoint: PodRef,
    /// Egress when the endpoint sends, ingress when it receives.
    pub direction: Direction,
    /// The other end's address: the destination on egress, the source on ingress.
    pub peer: IpAddr,
    /// IP protocol number.
    pub protocol: u8,
    /// Destination port; 0 for protocols without ports.
    pub port: u16,
}

/// What one step of precedence made of the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StepOutcome {
    /// A rule of an Audit-mode SegmentPolicy: never enforced (it only
    /// counts for the audit verdict).
    AuditOnly,
    /// An earlier Pass rule skipped the rest of this band.
    SkippedByPass,
    /// The peer is not among the step's peers.
    PeerNotMatched,
    /// The peer matched, the protocol or port did not.
    ProtocolNotMatched,
    /// A Pass rule matched: the rest of its band is skipped.
    Passed,
    /// The step matched and decided; the trace ends here.
    Decided,
}

/// One step of precedence: a rule, a NetworkPolicy isolation, a Segment
/// posture, node traffic or the default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceStep {
    /// The band a Pass skips the rest of; `None` for node traffic and the default.
    pub band: Option<Band>,
    /// What the step stands for, as a verdict would name it.
    pub decider: Decider,
    /// What the step does when it matches (a rule that fails closed: see
    /// `fails_closed`).
    pub action: Action,
    /// Why the rule fails closed (an Accept rule then matches nothing, a
    /// Deny or Pass rule denies everything), if it does.
    pub fails_closed: Option<String>,
    pub outcome: StepOutcome,
}

/// The walk of one connection at one endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    pub connection: Connection,
    /// What the peer address is to the policies: which pods hold it, or
    /// which networks, the node, or the rest of the world.
    pub peer_identity: IdentityInfo,
    /// Every step met, in order, up to and including the deciding one.
    pub steps: Vec<TraceStep>,
    /// The verdict, exactly as the compiled verdict id of this connection
    /// stands for it (Pass trail and audit difference included).
    pub verdict: Verdict,
}
