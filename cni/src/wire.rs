//! The plugin's conversation with the daemon over its unix socket
//! (`--cni-socket`): one JSON request line, one JSON reply line.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Where the daemon listens unless the netconf or `--cni-socket` say otherwise.
pub const DEFAULT_SOCKET: &str = "/run/netseg/cni.sock";

/// A request or a reply longer than this is refused: both ends are local,
/// and a pod has at most a few interfaces and addresses.
pub const MAX_MESSAGE_BYTES: u64 = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Enforce the pod's policy on its interface; reply once it is enforced.
    Add(Attachment),
    /// Whether the pod's policy is enforced on its interface.
    Check(Attachment),
    /// The attachment is going away: forget what ADD reported.
    Del(AttachmentId),
    /// Whether the daemon can serve ADD.
    Status,
}

/// What identifies an attachment for the runtime (CNI spec, section 3).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AttachmentId {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`: the interface's name inside the pod.
    pub ifname: String,
}

/// What the plugin knows about a pod on ADD and CHECK.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: AttachmentId,
    /// `K8S_POD_NAMESPACE` of `CNI_ARGS`.
    pub namespace: String,
    /// `K8S_POD_NAME` of `CNI_ARGS`.
    pub name: String,
    /// The interfaces of `prevResult` without a sandbox: the host side of
    /// the pod's link, and possibly a bridge it is enslaved to.
    pub host_interfaces: Vec<String>,
    /// The addresses of `prevResult`.
    pub ips: Vec<IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// `None`: done (ADD: enforced; CHECK: still enforced; STATUS: ready).
    pub error: Option<String>,
}

impl Reply {
    pub fn done() -> Self {
        Self { error: None }
    }

    pub fn refused(error: impl Into<String>) -> Self {
        Self {
            error: Some(error.into()),
        }
    }
}
