//! The kinds the fake serves: a fixed table, as a real API server's registry would be
//! (no CustomResourceDefinitions are read; the netseg CRDs are built in).

/// One resource type: where it lives on the wire and how it is scoped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resource {
    /// API group; "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    /// Whether the resource has a `/status` subresource: writes to the main resource then
    /// keep the stored status, writes to `/status` keep everything else.
    pub has_status: bool,
    pub short_names: &'static [&'static str],
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

pub(crate) static RESOURCES: &[Resource] = &[
    Resource {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        namespaced: true,
        has_status: true,
        short_names: &["po"],
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        namespaced: false,
        has_status: true,
        short_names: &["ns"],
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        namespaced: false,
        has_status: true,
        short_names: &["no"],
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        has_status: false,
        short_names: &["ev"],
    },
    Resource {
        group: "networking.k8s.io",
        version: "v1",
        kind: "NetworkPolicy",
        plural: "networkpolicies",
        singular: "networkpolicy",
        namespaced: true,
        has_status: false,
        short_names: &["netpol"],
    },
    Resource {
        group: "policy.networking.k8s.io",
        version: "v1alpha2",
        kind: "ClusterNetworkPolicy",
        plural: "clusternetworkpolicies",
        singular: "clusternetworkpolicy",
        namespaced: false,
        has_status: true,
        short_names: &["cnp"],
    },
    Resource {
        group: "netseg.dev",
        version: "v1alpha1",
        kind: "Segment",
        plural: "segments",
        singular: "segment",
        namespaced: false,
        has_status: true,
        short_names: &["seg"],
    },
    Resource {
        group: "netseg.dev",
        version: "v1alpha1",
        kind: "SegmentPolicy",
        plural: "segmentpolicies",
        singular: "segmentpolicy",
        namespaced: false,
        has_status: true,
        short_names: &["segpol"],
    },
    Resource {
        group: "netseg.dev",
        version: "v1alpha1",
        kind: "NetsegNode",
        plural: "netsegnodes",
        singular: "netsegnode",
        namespaced: false,
        has_status: true,
        short_names: &[],
    },
    Resource {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        namespaced: true,
        has_status: false,
        short_names: &[],
    },
    Resource {
        group: "events.k8s.io",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        has_status: false,
        short_names: &["ev"],
    },
];

/// The resource of an object, by its `apiVersion` and `kind`.
pub(crate) fn by_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// The resource behind a URL's group, version and plural.
pub(crate) fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Every (group, version) served, in table order, without repeats.
pub(crate) fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !seen.contains(&(r.group, r.version)) {
            seen.push((r.group, r.version));
        }
    }
    seen
}
