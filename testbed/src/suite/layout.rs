//! What a conformance world is made of: namespaces with their labels, pods
//! with their labels and declared container ports, the ports every pod
//! serves, host-network pods, and the node's Node object. The NetworkPolicy
//! suite's 3x3 model and the ClusterNetworkPolicy suite's houses are two
//! layouts of the same world.

use crate::manifests::ContainerPort;

/// Labels as `(key, value)` pairs, in the order the manifests list them.
pub type Labels = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceLayout {
    pub name: String,
    /// Besides `kubernetes.io/metadata.name`, which every namespace carries.
    pub labels: Labels,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLayout {
    /// `namespace/name`.
    pub name: String,
    pub labels: Labels,
    /// The container ports its manifest declares (named ports come from here).
    pub ports: Vec<ContainerPort>,
}

/// The namespaces and pods of a world, in creation order (which is also the
/// order of the pods' addresses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    pub namespaces: Vec<NamespaceLayout>,
    pub pods: Vec<PodLayout>,
    /// Every pod serves TCP on these ports (an echo server each).
    pub tcp_ports: Vec<u16>,
    /// Every pod serves UDP on these ports (an echo server each).
    pub udp_ports: Vec<u16>,
    // Every pod also receives SCTP on every port (see `SctpReceiver`).
    /// Pods with `hostNetwork: true`: their address is the node's, and they
    /// serve the TCP and UDP ports they declare (and SCTP on every port)
    /// from the node's namespace. They are not among the probed pods.
    pub host_network_pods: Vec<PodLayout>,
    /// The labels of the node's Node object; `None`: no Node object.
    pub node_labels: Option<Labels>,
}

impl Layout {
    /// Adds a namespace with its labels.
    pub fn namespace(mut self, name: &str, labels: &[(&str, &str)]) -> Self {
        self.namespaces.push(NamespaceLayout {
            name: name.to_owned(),
            labels: owned(labels),
        });
        self
    }

    /// Adds a pod (`namespace/name`) with its labels and container ports.
    pub fn pod(mut self, name: &str, labels: &[(&str, &str)], ports: Vec<ContainerPort>) -> Self {
        self.pods.push(PodLayout {
            name: name.to_owned(),
            labels: owned(labels),
            ports,
        });
        self
    }

    /// Adds a host-network pod (`namespace/name`) with its labels and the
    /// container ports it declares and serves on the node.
    pub fn host_network_pod(
        mut self,
        name: &str,
        labels: &[(&str, &str)],
        ports: Vec<ContainerPort>,
    ) -> Self {
        self.host_network_pods.push(PodLayout {
            name: name.to_owned(),
            labels: owned(labels),
            ports,
        });
        self
    }

    /// The node also has a Node object, with these labels and its addresses.
    pub fn node_object(mut self, labels: &[(&str, &str)]) -> Self {
        self.node_labels = Some(owned(labels));
        self
    }

    /// Every pod also serves TCP and UDP on `ports`.
    pub fn serving(self, ports: &[u16]) -> Self {
        self.serving_tcp(ports).serving_udp(ports)
    }

    /// Every pod also serves TCP on `ports`.
    pub fn serving_tcp(mut self, ports: &[u16]) -> Self {
        self.tcp_ports.extend_from_slice(ports);
        self
    }

    /// Every pod also serves UDP on `ports`.
    pub fn serving_udp(mut self, ports: &[u16]) -> Self {
        self.udp_ports.extend_from_slice(ports);
        self
    }

    /// Pod `pod` (`namespace/name`) also declares `port`.
    ///
    /// # Panics
    /// If the layout has no such pod: a typo in a test's world.
    pub fn declaring(mut self, pod: &str, port: ContainerPort) -> Self {
        self.pods
            .iter_mut()
            .find(|p| p.name == pod)
            .unwrap_or_else(|| panic!("the layout has no pod {pod}"))
            .ports
            .push(port);
        self
    }

    pub fn namespace_named(&self, name: &str) -> Option<&NamespaceLayout> {
        self.namespaces.iter().find(|ns| ns.name == name)
    }

    pub fn pod_named(&self, name: &str) -> Option<&PodLayout> {
        self.pods.iter().find(|pod| pod.name == name)
    }

    pub fn host_network_pod_named(&self, name: &str) -> Option<&PodLayout> {
        self.host_network_pods.iter().find(|pod| pod.name == name)
    }
}

/// `labels` with `extra` laid over them: a key in both takes `extra`'s value.
pub fn overlay<'a>(labels: &'a Labels, extra: &'a Labels) -> Vec<(&'a str, &'a str)> {
    let mut all: Vec<(&str, &str)> = labels
        .iter()
        .filter(|(key, _)| !extra.iter().any(|(k, _)| k == key))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    all.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    all
}

/// `labels` as the `(&str, &str)` pairs manifests are written from.
pub fn borrowed(labels: &Labels) -> Vec<(&str, &str)> {
    labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

pub fn owned(labels: &[(&str, &str)]) -> Labels {
    labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::Protocol;

    #[test]
    fn overlay_replaces_a_key_and_keeps_the_rest() {
        let labels = owned(&[("house", "slytherin"), ("team", "a")]);
        let extra = owned(&[("house", "denied"), ("new", "1")]);
        assert_eq!(
            overlay(&labels, &extra),
            [("team", "a"), ("house", "denied"), ("new", "1")]
        );
    }

    #[test]
    fn declaring_adds_a_port_to_one_pod() {
        let layout = Layout::default()
            .pod("x/a", &[], Vec::new())
            .pod("x/b", &[], Vec::new())
            .declaring("x/b", ContainerPort::new("web", 80, Protocol::Tcp))
            .serving(&[80]);
        assert!(layout.pod_named("x/a").expect("x/a").ports.is_empty());
        assert_eq!(layout.pod_named("x/b").expect("x/b").ports.len(), 1);
        assert_eq!((layout.tcp_ports, layout.udp_ports), (vec![80], vec![80]));
    }
}
