//! The NetworkPolicy suite's model: namespaces x, y, z with pods a, b, c in
//! each (the older full 3x3 model), every pod serving and declaring TCP,
//! UDP and SCTP on ports 80 and 81, and the helpers its cases write
//! NetworkPolicies with. Cases, world and runner are the testbed's
//! [`netseg_testbed::suite`].

use netseg_testbed::ContainerPort;
use netseg_testbed::suite::Layout;
use serde_json::{Value, json};

pub use netseg_testbed::suite::{Case, Model};

/// The namespaces of the model, each labelled `ns: <name>` (and, like every
/// namespace, `kubernetes.io/metadata.name: <name>`).
pub const NAMESPACES: [&str; 3] = ["x", "y", "z"];
/// The pods of every namespace, each labelled `pod: <name>`.
pub const POD_NAMES: [&str; 3] = ["a", "b", "c"];
/// The ports every model pod serves and declares, named like upstream's
/// `model.go` names them (`serve-80-tcp`).
pub const MODEL_PORTS: [u16; 2] = [80, 81];

/// The 3x3 model. Pods are created `x/a`, `x/b`, ... `z/c`, and so get
/// their addresses in that order (`x/a` host number 1, `z/c` 9).
pub fn model_layout() -> Layout {
    let mut layout = Layout::default().serving(&MODEL_PORTS);
    for ns in NAMESPACES {
        layout = layout.namespace(ns, &[("ns", ns)]);
        for pod in POD_NAMES {
            layout = layout.pod(&format!("{ns}/{pod}"), &[("pod", pod)], model_ports());
        }
    }
    layout
}

/// The model's named ports: `serve-80-tcp`, ..., `serve-81-sctp`.
fn model_ports() -> Vec<ContainerPort> {
    MODEL_PORTS
        .iter()
        .flat_map(|&p| {
            [
                ContainerPort::tcp(p),
                ContainerPort::udp(p),
                ContainerPort::sctp(p),
            ]
        })
        .collect()
}

/// A NetworkPolicy object.
pub fn netpol(namespace: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": { "name": name, "namespace": namespace },
        "spec": spec,
    })
}

/// A selector of the pods labelled `pod: <name>`.
pub fn pod_is(name: &str) -> Value {
    json!({ "matchLabels": { "pod": name } })
}

/// A selector of the namespace called `name`, through the label the API
/// server sets on every namespace.
pub fn ns_is(name: &str) -> Value {
    json!({ "matchLabels": { "kubernetes.io/metadata.name": name } })
}
