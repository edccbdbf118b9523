//! What the CNI specification (1.1.0, containernetworking/cni SPEC.md)
//! asks of a chained plugin: the netconf on stdin, `CNI_ARGS`, the
//! `prevResult` it passes through, and the error result with its codes.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::wire::DEFAULT_SOCKET;

/// The versions whose results carry `interfaces` (0.3.0 on), which is
/// where the host-side interface is read from.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The version errors are reported in when the netconf could not say.
pub const LATEST_VERSION: &str = "1.1.0";

/// How long ADD waits for the daemon's confirmation unless the netconf says.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Well-known error codes (SPEC.md, "Error").
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const INVALID_ENVIRONMENT: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODING_FAILURE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    /// Plugin-specific (100 and up): the daemon answered that the pod is
    /// not enforced.
    pub const NOT_ENFORCED: u32 = 100;
}

/// The error result, printed on stdout with a non-zero exit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CniError {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub code: u32,
    pub msg: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>, details: impl Into<String>) -> Self {
        Self {
            cni_version: LATEST_VERSION.to_owned(),
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// The same error, reported in the version the runtime speaks.
    pub fn in_version(mut self, version: &str) -> Self {
        version.clone_into(&mut self.cni_version);
        self
    }
}

/// The plugin's entry of the conflist, as the runtime passes it on stdin.
#[derive(Clone, Debug, Deserialize)]
pub struct NetConf {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// The daemon's socket (`--cni-socket`).
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// How long ADD waits for the daemon before it fails.
    #[serde(default, rename = "timeoutSeconds")]
    pub timeout_seconds: Option<u64>,
    /// The result of the plugins before this one.
    #[serde(default, rename = "prevResult")]
    pub prev_result: Option<Value>,
}

impl NetConf {
    pub fn parse(text: &[u8]) -> Result<Self, CniError> {
        let conf: Self = serde_json::from_slice(text).map_err(|error| {
            CniError::new(
                code::DECODING_FAILURE,
                "cannot decode the network configuration",
                error.to_string(),
            )
        })?;
        if !SUPPORTED_VERSIONS.contains(&conf.cni_version.as_str()) {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                "incompatible CNI version",
                format!(
                    "cniVersion {} is not one of {SUPPORTED_VERSIONS:?}",
                    conf.cni_version
                ),
            ));
        }
        Ok(conf)
    }

    pub fn socket(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
    }

    pub fn timeout(&self) -> Duration {
        self.timeout_seconds
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs)
    }

    /// `prevResult`, which a chained plugin cannot do without on ADD and CHECK.
    pub fn required_prev_result(&self) -> Result<&Value, CniError> {
        self.prev_result.as_ref().ok_or_else(|| {
            CniError::new(
                code::INVALID_CONFIG,
                "no prevResult",
                "netseg-cni is a chained plugin: list it after the plugin that creates the pod's interface",
            )
        })
    }
}

/// The parts of a result this plugin reads.
#[derive(Debug, Default, Deserialize)]
struct PrevResult {
    #[serde(default)]
    interfaces: Vec<ResultInterface>,
    #[serde(default)]
    ips: Vec<ResultIp>,
}

#[derive(Debug, Deserialize)]
struct ResultInterface {
    name: String,
    #[serde(default)]
    sandbox: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ResultIp {
    /// CIDR notation.
    address: String,
}

/// The host-side interfaces (no sandbox) and the addresses of `prev_result`.
pub fn interfaces_and_ips(prev_result: &Value) -> Result<(Vec<String>, Vec<IpAddr>), CniError> {
    let invalid =
        |details: String| CniError::new(code::INVALID_CONFIG, "invalid prevResult", details);
    let result = PrevResult::deserialize(prev_result).map_err(|e| invalid(e.to_string()))?;
    let host = result
        .interfaces
        .into_iter()
        .filter(|interface| interface.sandbox.as_deref().unwrap_or("").is_empty())
        .map(|interface| interface.name)
        .collect();
    let ips = result
        .ips
        .iter()
        .map(|ip| {
            let address = ip.address.split_once('/').map_or(&*ip.address, |(a, _)| a);
            address.parse().map_err(|_| {
                invalid(format!(
                    "address {:?} is not an IP in CIDR notation",
                    ip.address
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok((host, ips))
}

/// The pod's namespace and name from `CNI_ARGS` (`K8S_POD_NAMESPACE`,
/// `K8S_POD_NAME`, as kubelet's runtimes pass them).
pub fn pod_of(cni_args: &str) -> Result<(String, String), CniError> {
    let value = |key: &str| {
        cni_args
            .split(';')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_owned())
            .filter(|v| !v.is_empty())
    };
    match (value("K8S_POD_NAMESPACE"), value("K8S_POD_NAME")) {
        (Some(namespace), Some(name)) => Ok((namespace, name)),
        _ => Err(CniError::new(
            code::INVALID_ENVIRONMENT,
            "CNI_ARGS lacks the pod",
            format!("CNI_ARGS must carry K8S_POD_NAMESPACE and K8S_POD_NAME; it is {cni_args:?}"),
        )),
    }
}

#[cfg(test)]
mod tests;
