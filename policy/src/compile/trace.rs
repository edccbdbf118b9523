//! `explain`'s trace, from the compiler's own order of steps: the walk that
//! [`Order::decide`] does for the map entries, with what each step made of
//! one connection recorded.

use super::entries::{EntryContext, order};
use super::precedence::{Class, Order};
use super::{Compiler, verdict_of};
use crate::lookup::identity_in;
use crate::trace::{Connection, Trace, TraceStep};
use crate::types::{IdentityInfo, IdentityKind};
use crate::{CompileOptions, Snapshot};

impl Compiler {
    /// The steps `connection` meets at its endpoint, as compiled for the
    /// node of `options`; `None` when the endpoint is not a local endpoint
    /// of that node (the datapath then has no policy for it).
    ///
    /// The verdict is the one [`crate::lookup`] finds in
    /// [`Compiler::compile`]'s output for the same connection: both walk
    /// the same [`Order`].
    pub fn trace(
        &mut self,
        snapshot: &Snapshot,
        options: &CompileOptions,
        connection: &Connection,
    ) -> Option<Trace> {
        let mut prepared = self.prepare(snapshot, options);
        let ipcache = prepared.classes.ipcache();
        let peer_id = identity_in(&ipcache, connection.peer);
        let (inv, selection) = (&prepared.inv, &prepared.selection);
        let local = selection
            .locals
            .iter()
            .position(|&i| inv.pods[i].pod_ref == connection.endpoint)?;
        let pod = &inv.pods[selection.locals[local]];
        let applicable = selection.applicable(inv, &prepared.resolved, local, connection.direction);
        let key = applicable.key(pod);
        let ctx = EntryContext {
            classes: &prepared.classes,
            peers: &prepared.peers,
            options,
        };
        let order = order(&ctx, &key, &applicable);
        // The datapath looks an identity up only where some step names it,
        // and falls back to the entries of every other address.
        let class = if order.named_identities().contains(&peer_id) {
            Class::Identity(peer_id)
        } else {
            Class::Other
        };
        let protocol = Some(connection.protocol);
        let decision = order.decide(class, &order.active(class), protocol, connection.port);
        Some(Trace {
            connection: connection.clone(),
            peer_identity: peer_identity(&prepared.classes.identities, peer_id),
            steps: steps(&order, class, protocol, connection.port),
            verdict: verdict_of(&order, &decision),
        })
    }
}

fn steps(order: &Order<'_>, class: Class, protocol: Option<u8>, port: u16) -> Vec<TraceStep> {
    let mut steps = Vec::new();
    order.walk_seen(
        class,
        0..order.steps.len(),
        protocol,
        port,
        false,
        |i, outcome| {
            let step = &order.steps[i];
            steps.push(TraceStep {
                band: step.band,
                decider: step.decided_by.clone(),
                action: step.action,
                fails_closed: step.fails_closed.clone(),
                outcome,
            });
        },
    );
    steps
}

fn peer_identity(
    identities: &std::collections::BTreeMap<u32, IdentityInfo>,
    id: u32,
) -> IdentityInfo {
    identities.get(&id).cloned().unwrap_or(IdentityInfo {
        kind: IdentityKind::World,
        pods: Default::default(),
        prefixes: Default::default(),
    })
}

#[cfg(test)]
mod tests;
