//! What the daemon does on every pass: attach to the pod interfaces, have
//! the enforcer compile and publish, hand over from a previous daemon once
//! ready, and report.

use std::{collections::BTreeMap, net::IpAddr, sync::Arc};

use netseg_policy::{Compiled, LocalEndpoint, PodRef};
use tracing::{error, info, instrument, warn};

use super::Daemon;
use crate::{
    datapath::state::SlotState,
    flows::{FlowContext, Naming},
    node::{self, NodeView},
    sources::Source,
    status::{self, InterfaceStatus},
};

impl Daemon {
    pub(super) fn take_update(&mut self, source: &mut Source) {
        self.status.reloads += 1;
        let update = source.update();
        self.enforcer.take_update(update, || source.snapshot());
        self.status.synced = self.enforcer.synced();
    }

    pub(super) fn sweep(&mut self) {
        match self.datapath.sweep() {
            Ok(swept) => {
                if swept.connections + swept.fragments > 0 {
                    info!(
                        connections = swept.connections,
                        fragments = swept.fragments,
                        "reclaimed expired entries"
                    );
                }
                self.metrics.datapath.observe_tables(&swept.tables);
                self.metrics.datapath.observe_connections(&swept.states);
            }
            Err(error) => warn!(%error, "reclaiming expired conntrack and fragment entries"),
        }
    }

    #[instrument(skip_all)]
    pub(super) fn reconcile(&mut self, view: &NodeView) {
        if self.cni.retain_present(view) {
            self.enforcer.recompile();
        }
        self.enforcer.set_node_addresses(&view.addresses);
        let compiled = self.enforcer.compiled(&mut self.cni);
        self.attach_pod_interfaces(view, &compiled);
        let (desired, interfaces) = if self.enforcer.synced() {
            self.slot_state(&compiled, view)
        } else {
            // A partial read is no policy (a kind not listed yet may deny
            // what the others allow): until the source has read everything
            // once, every pod interface of this daemon denies everything.
            (SlotState::default(), BTreeMap::new())
        };
        if let Some(stages) = self.enforcer.publish(&desired) {
            self.metrics.datapath.policy_implemented(&stages);
            self.status.last_change = Some(stages);
        }
        self.take_over_when_ready();
        if !self.names_the_same(&compiled, &interfaces) {
            self.publish_flow_context(&compiled, &interfaces);
        }
        self.report(&compiled, &interfaces);
        if self.enforcer.check_warnings() {
            self.report(&compiled, &interfaces);
        }
        self.served = interfaces;
    }

    /// Swaps this daemon's programs into the links a previous daemon pinned,
    /// once the enforcer no longer waits for anything (see
    /// [`Enforcer::waits_for`]).
    fn take_over_when_ready(&mut self) {
        let waits_for = self.enforcer.waits_for();
        if waits_for != self.status.waiting_for {
            if let Some(reason) = waits_for {
                warn!(
                    waits_for = reason,
                    "the previous daemon's pinned programs keep enforcing until then"
                );
            }
            self.status.waiting_for = waits_for;
        }
        if waits_for.is_some() {
            return;
        }
        if let Err(error) = self.datapath.take_over() {
            error!(
                error = format!("{:#}", anyhow::Error::from(error)),
                "taking over the pinned links"
            );
        }
    }

    fn named_as_pod(&self, name: &str) -> bool {
        node::pod_named(&self.config.interface_prefixes, name)
    }

    /// Programs go on every pod interface first: until its pod's policy is
    /// published, the interface has no endpoint and everything is denied.
    /// A pod interface is one named with a pod prefix, one the CNI plugin
    /// reported, or one a local pod's address alone is routed to.
    fn attach_pod_interfaces(&mut self, view: &NodeView, compiled: &Compiled) {
        let routed: Vec<u32> = compiled
            .endpoints
            .values()
            .flat_map(endpoint_ips)
            .filter_map(|ip| view.host_route_interface(ip))
            .collect();
        let mut present: BTreeMap<&str, u32> = view
            .links
            .iter()
            .filter(|link| self.named_as_pod(&link.name) || routed.contains(&link.ifindex))
            .map(|link| (link.name.as_str(), link.ifindex))
            .collect();
        present.extend(self.cni.interfaces());
        let live: Vec<u32> = present.values().copied().collect();
        if let Err(error) = self.datapath.sweep_stale_pins(&live) {
            warn!(
                error = format!("{:#}", anyhow::Error::from(error)),
                "removing stale pins"
            );
        }
        let gone: Vec<(String, u32)> = self
            .datapath
            .attached()
            .into_iter()
            .filter(|(name, ifindex)| present.get(name.as_str()) != Some(ifindex))
            // The link thread attaches pod-named links as they appear,
            // maybe after `view` was read: one still there stays attached.
            .filter(|(name, ifindex)| {
                !(self.named_as_pod(name) && node::current_ifindex(name) == Some(*ifindex))
            })
            .collect();
        for (name, ifindex) in gone {
            self.datapath.detach(&name);
            // A renamed interface keeps its ifindex, and its programs come back.
            if !live.contains(&ifindex) {
                // The exporter may have stopped; its error is its own to report.
                let _ = self.detached.send(ifindex);
            }
        }
        for (name, ifindex) in present {
            if let Err(error) = self.datapath.attach(name, ifindex) {
                error!(
                    interface = name,
                    error = format!("{:#}", anyhow::Error::from(error)),
                    "attach"
                );
            }
        }
    }

    /// The desired slot contents, and which pod each attached interface serves.
    fn slot_state(
        &self,
        compiled: &Compiled,
        view: &NodeView,
    ) -> (SlotState, BTreeMap<u32, PodRef>) {
        let attached: BTreeMap<u32, String> = self
            .datapath
            .attached()
            .into_iter()
            .map(|(name, index)| (index, name))
            .collect();
        let mut endpoints = BTreeMap::new();
        let mut interfaces = BTreeMap::new();
        let mut contested = BTreeMap::new();
        for (pod, endpoint) in &compiled.endpoints {
            let routed = || {
                let ip = endpoint_ips(endpoint).next()?;
                view.interface_for(ip)
            };
            // An interface the plugin reported is that pod's alone, even if
            // a stale Pod object's address still routes there.
            let ifindex = match self.cni.interface_of(pod) {
                Some(reported) => Some(reported),
                None => routed().filter(|i| !self.cni.interfaces().any(|(_, r)| r == *i)),
            }
            .filter(|i| attached.contains_key(i));
            if let Some(ifindex) = ifindex {
                endpoints.insert(ifindex, endpoint.to_contract());
                if let Some(other) = interfaces.insert(ifindex, pod.clone()) {
                    contested.insert(ifindex, other);
                }
            }
        }
        // Two pods whose address routes to one interface (a terminating
        // pod's address reused before its object is gone): which one the
        // interface serves cannot be told, so it serves neither and denies
        // everything until one of them is gone.
        for (ifindex, other) in contested {
            let pod = interfaces.remove(&ifindex);
            endpoints.remove(&ifindex);
            warn!(
                ifindex,
                pods = format!(
                    "{other}, {}",
                    pod.map(|p| p.to_string()).unwrap_or_default()
                ),
                "two local pods claim one interface: it denies everything until one is gone"
            );
        }
        let state = SlotState {
            endpoints,
            ipcache: compiled.ipcache.clone(),
            policy: compiled.policy.clone(),
        };
        (state, interfaces)
    }

    /// What the exporter is to name flows' parties from.
    fn naming<'a>(
        &'a self,
        compiled: &'a Compiled,
        interfaces: &'a BTreeMap<u32, PodRef>,
    ) -> Naming<'a> {
        Naming {
            endpoints: interfaces,
            compiled,
            node_addresses: self.enforcer.node_addresses(),
            labels: &self.config.flow_labels,
        }
    }

    /// Whether the exporter already names what `compiled` and `interfaces` do.
    fn names_the_same(&self, compiled: &Compiled, interfaces: &BTreeMap<u32, PodRef>) -> bool {
        (self.flow_context.borrow()).names_the_same(&self.naming(compiled, interfaces))
    }

    fn publish_flow_context(&self, compiled: &Compiled, interfaces: &BTreeMap<u32, PodRef>) {
        let previous = Arc::clone(&self.flow_context.borrow());
        let context = FlowContext::new(&self.naming(compiled, interfaces), &previous);
        self.flow_context.send_replace(Arc::new(context));
    }

    /// Updates the status (and its file) and the metrics.
    fn report(&mut self, compiled: &Compiled, interfaces: &BTreeMap<u32, PodRef>) {
        let served: Vec<&PodRef> = interfaces.values().collect();
        self.metrics.datapath.observe_tables(self.enforcer.tables());
        self.status.revision = self.enforcer.revision();
        self.status.problems = self.enforcer.problems().cloned().collect();
        self.status.endpoints = interfaces.len();
        self.status.interfaces = self
            .datapath
            .attached()
            .into_iter()
            .map(|(name, ifindex)| InterfaceStatus {
                name,
                ifindex,
                pod: interfaces.get(&ifindex).map(ToString::to_string),
            })
            .collect();
        let unenforced: Vec<String> = compiled
            .endpoints
            .keys()
            // Before the source is synced no pod is served, by design.
            .filter(|pod| self.enforcer.synced() && !served.contains(pod))
            .map(ToString::to_string)
            .collect();
        for pod in unenforced
            .iter()
            .filter(|pod| !self.status.pods_without_interface.contains(pod))
        {
            error!(
                pod,
                "local pod NOT enforced: no interface to attach to (its address is not routed to an interface of its own); the daemon reports unready"
            );
        }
        if unenforced.is_empty() && !self.status.pods_without_interface.is_empty() {
            info!("every local pod is enforced again");
        }
        self.status.pods_without_interface = unenforced;
        let counters = status::read_counters(&self.counters);
        self.status.counters = status::named(&counters);
        self.metrics.observe(&self.status, &counters);
        if let Some(path) = &self.config.status_file
            && let Err(error) = status::write(path, &self.status)
        {
            warn!(path = %path.display(), %error, "writing the status file");
        }
        if let Some(cluster) = &mut self.cluster {
            cluster.report(&self.enforcer, &self.status, &self.metrics);
        }
    }
}

fn endpoint_ips(endpoint: &LocalEndpoint) -> impl Iterator<Item = IpAddr> {
    let v4 = endpoint.ipv4.map(IpAddr::V4);
    let v6 = endpoint.ipv6.map(IpAddr::V6);
    v4.into_iter().chain(v6)
}
