//! Calls `netseg-cni` exactly as a container runtime does (CNI spec
//! 1.1.0): `CNI_*` in the environment, the netconf with `prevResult` on
//! stdin, the result or error on stdout. The harness plays the cluster's
//! main plugin: the pod's veth and addresses are already set up.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::daemon::workspace_binary;
use crate::netns::netns_path;
use crate::topology::Pod;

/// The outcome of one invocation.
#[derive(Debug)]
pub struct CniOutcome {
    pub success: bool,
    /// stdout parsed (`Null` when empty).
    pub output: Value,
    pub stderr: String,
}

impl CniOutcome {
    /// The error code of a failed invocation.
    pub fn code(&self) -> Option<u64> {
        self.output["code"].as_u64()
    }
}

pub struct CniPlugin {
    binary: PathBuf,
    socket: PathBuf,
}

impl CniPlugin {
    /// `netseg-cni` of the workspace (or `$NETSEG_CNI_BIN`) talking to `socket`.
    pub fn new(socket: &Path) -> Result<Self> {
        Ok(Self {
            binary: workspace_binary("netseg-cni", "NETSEG_CNI_BIN")?,
            socket: socket.to_owned(),
        })
    }

    /// What the main plugin returned for `pod`: its host veth, its `eth0`
    /// in the sandbox, and its two addresses.
    pub fn prev_result(pod: &Pod) -> Value {
        json!({
            "cniVersion": "1.1.0",
            "interfaces": [
                { "name": pod.host_ifname() },
                { "name": "eth0", "sandbox": netns_path(pod.netns_name()) },
            ],
            "ips": [
                { "address": format!("{}/32", pod.ipv4()), "interface": 1 },
                { "address": format!("{}/128", pod.ipv6()), "interface": 1 },
            ],
        })
    }

    /// The netconf of the plugin's conflist entry for `command`.
    pub fn netconf(&self, prev_result: Option<&Value>) -> Value {
        let mut conf = json!({
            "cniVersion": "1.1.0",
            "name": "netseg-tests",
            "type": "netseg-cni",
            "socket": self.socket,
            "timeoutSeconds": 5,
        });
        if let Some(prev_result) = prev_result {
            conf["prevResult"] = prev_result.clone();
        }
        conf
    }

    /// Runs `command` (ADD, DEL, CHECK, STATUS, VERSION) for `pod`, the
    /// container id derived from its namespace.
    pub fn invoke(&self, command: &str, pod: &Pod, stdin: &Value) -> Result<CniOutcome> {
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={}",
            pod.namespace(),
            pod.name(),
            pod.netns_name()
        );
        let mut child = Command::new(&self.binary)
            .env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", pod.netns_name())
            .env("CNI_NETNS", netns_path(pod.netns_name()))
            .env("CNI_IFNAME", "eth0")
            .env("CNI_ARGS", args)
            .env("CNI_PATH", self.binary.parent().unwrap_or(Path::new("/")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", self.binary.display()))?;
        child
            .stdin
            .take()
            .context("the plugin's stdin")?
            .write_all(stdin.to_string().as_bytes())?;
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let output = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).with_context(|| format!("plugin output: {text}"))?
        };
        Ok(CniOutcome {
            success: out.status.success(),
            output,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}
