//! `netseg demo`: an isolated node namespace with the pods of `examples/`,
//! the daemon enforcing the example policies under default deny, then the
//! segments of `examples/segments/` (zones, conduits and an audit preview)
//! under default allow; allowed and denied traffic, and each run's flow log
//! as a table.

mod attempts;
mod flow_table;
mod segments;
mod shop;

use anyhow::{Context as _, Result, bail};
use netseg_testbed::{Daemon, Family, Node, Pod, require_root};

const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
/// The `spec.nodeName` of the example pods.
const NODE_NAME: &str = "demo-node";

pub fn run() -> Result<()> {
    require_root();
    let binary = std::env::current_exe().context("locating the netseg binary")?;
    // Each part has a node of its own, so nothing of the first (a cut
    // connection's retransmissions) shows up in the second's flow log.
    let mut wrong = shop::run(&Node::new(NODE_NAME)?, &binary)?;
    wrong += segments::run(&Node::new(NODE_NAME)?, &binary)?;
    if wrong > 0 {
        bail!("{wrong} connection(s) or record(s) did not come out as the policies call for");
    }
    println!("\nevery connection got the verdict the policies call for; cleaning up");
    Ok(())
}

/// Where the demo keeps each part's flow log and manifests for `netseg
/// flows` and `netseg explain` after it has cleaned up.
pub fn kept_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("netseg-demo")
}

/// Copies the flow log of `daemon` and the manifests it enforced to
/// `kept_dir()/part`, replacing an earlier run's, and says where they are.
fn keep(part: &str, daemon: &Daemon, manifests: &std::path::Path) -> Result<()> {
    let dir = kept_dir().join(part);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let kept_manifests = dir.join("manifests");
    std::fs::create_dir_all(&kept_manifests)
        .with_context(|| format!("creating {}", kept_manifests.display()))?;
    std::fs::copy(daemon.flow_log_path(), dir.join("flows.jsonl"))
        .context("keeping the flow log")?;
    for entry in std::fs::read_dir(manifests)? {
        let path = entry?.path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, kept_manifests.join(name))
                .with_context(|| format!("keeping {}", path.display()))?;
        }
    }
    println!(
        "kept for questions: {0}/flows.jsonl (the flow log) and {0}/manifests/",
        dir.display()
    );
    Ok(())
}

/// Stops the daemon, with its log on stderr when something came out wrong.
fn stop(mut daemon: Daemon, wrong: usize) -> Result<()> {
    daemon.stop()?;
    if wrong > 0 {
        eprintln!("--- daemon log ---\n{}", daemon.log());
    }
    Ok(())
}

/// The Pod documents of `yaml` with the addresses the demo's pod
/// namespaces actually have; every pod must be one of `pods`.
fn pods_with_addresses(yaml: &str, pods: &[&Pod]) -> Result<String> {
    let mut documents = Vec::new();
    for mut object in serde_saphyr::from_multiple_with_options::<serde_json::Value>(
        yaml,
        crate::sources::manifests::yaml_options(),
    )? {
        if object["kind"].as_str() == Some("Pod") {
            let name = format!(
                "{}/{}",
                object["metadata"]["namespace"].as_str().unwrap_or_default(),
                object["metadata"]["name"].as_str().unwrap_or_default()
            );
            let target = pods
                .iter()
                .find(|p| p.full_name() == name)
                .with_context(|| format!("the demo runs no pod {name}"))?;
            let (v4, v6) = (
                target.ip(Family::V4).to_string(),
                target.ip(Family::V6).to_string(),
            );
            object["status"]["podIP"] = v4.clone().into();
            object["status"]["podIPs"] = serde_json::json!([{ "ip": v4 }, { "ip": v6 }]);
        }
        documents.push(serde_saphyr::to_string(&object)?);
    }
    Ok(documents.join("---\n"))
}
