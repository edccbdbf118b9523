//! The daemon in Kubernetes mode on real traffic: the real kube client in
//! the daemon watches a fake API server (the `netseg-fake-apiserver` crate)
//! that listens on the loopback of the node namespace, and the real
//! datapath enforces what it lists. The objects are the manifests the other
//! daemon tests write, mirrored into the fake; the cases change them there
//! (watch events), break the fake (refusals, absence) and kill the daemon.
//!
//! Root only. Build the daemon first: `cargo build -p netseg`.

mod common;

mod kube_source {
    pub mod capabilities;
    pub mod cluster;
    pub mod restarts;
    pub mod startup;
    pub mod status;
    pub mod traffic;
    pub mod watch;
}
