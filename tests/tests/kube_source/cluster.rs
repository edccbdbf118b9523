//! A fake API server on the loopback of a node namespace, holding what a
//! manifests directory holds, and the daemon watching it.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use netseg_fake_apiserver::FakeApiServer;
use netseg_testbed::{Daemon, Manifests, Node, Pod, in_netns};
use serde_json::Value;
use tempfile::TempDir;

use crate::common::{Scene, scene};

/// An object's identity in the API: apiVersion, kind, namespace, name.
type ObjectKey = (String, String, Option<String>, String);

/// A fake API server that only the node's namespace can reach (it listens
/// on that namespace's 127.0.0.1), and a kubeconfig naming it.
pub struct FakeCluster {
    pub api: FakeApiServer,
    kubeconfig: TempDir,
    /// What the last [`FakeCluster::mirror`] applied.
    mirrored: BTreeSet<ObjectKey>,
}

impl FakeCluster {
    pub fn start(node: &Node) -> Result<Self> {
        // The listening socket is created, and stays, in the node namespace.
        let api = in_netns(node.netns_name(), FakeApiServer::start)??;
        let kubeconfig = tempfile::Builder::new()
            .prefix("netseg-kubeconfig-")
            .tempdir()?;
        api.write_kubeconfig(kubeconfig.path().join("kubeconfig"))?;
        Ok(Self {
            api,
            kubeconfig,
            mirrored: BTreeSet::new(),
        })
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.kubeconfig.path().join("kubeconfig")
    }

    /// Makes the fake hold what `manifests` holds: every document of every
    /// file applied (unchanged ones stay unchanged), and what an earlier
    /// mirror applied but the directory no longer has deleted.
    pub fn mirror(&mut self, manifests: &Manifests) -> Result<()> {
        let mut present = BTreeSet::new();
        for object in documents(manifests.dir())? {
            let key = key_of(&object)?;
            self.api
                .apply(object)
                .with_context(|| format!("applying {key:?} to the fake API server"))?;
            present.insert(key);
        }
        for (api_version, kind, namespace, name) in self.mirrored.difference(&present) {
            self.api
                .delete(api_version, kind, namespace.as_deref(), name)?;
        }
        self.mirrored = present;
        Ok(())
    }

    /// [`FakeCluster::mirror`], then waits until `daemon` has taken in what
    /// its watches saw.
    pub fn publish(&mut self, manifests: &Manifests, daemon: &mut Daemon) -> Result<()> {
        let reloads = daemon.status()?.map_or(0, |s| s.reloads);
        self.mirror(manifests)?;
        daemon.wait_reload_after(reloads)?;
        Ok(())
    }
}

/// Every document of the manifest files in `dir` (hidden files, which the
/// harness writes before renaming them, left out), in file name order.
fn documents(dir: &Path) -> Result<Vec<Value>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .map(|entry| Ok(entry?.path()))
        .collect::<Result<_>>()?;
    files.sort();
    let mut objects = Vec::new();
    for file in files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let manifest = [".yaml", ".yml", ".json"]
            .iter()
            .any(|ext| name.ends_with(ext));
        if name.starts_with('.') || !manifest {
            continue;
        }
        let text = fs::read_to_string(&file)?;
        let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
            .with_context(|| format!("parsing {}", file.display()))?;
        objects.extend(documents);
    }
    Ok(objects)
}

fn key_of(object: &Value) -> Result<ObjectKey> {
    let text = |field: &Value| field.as_str().map(str::to_owned);
    let (Some(api_version), Some(kind), Some(name)) = (
        text(&object["apiVersion"]),
        text(&object["kind"]),
        text(&object["metadata"]["name"]),
    ) else {
        bail!("a manifest without apiVersion, kind or metadata.name: {object}");
    };
    Ok((
        api_version,
        kind,
        text(&object["metadata"]["namespace"]),
        name,
    ))
}

/// The [`Scene`] of the other daemon tests (pods `app/a`, role client, and
/// `app/b`, role server), mirrored into a fake API server, and the daemon
/// watching that server. Fields drop in order: the daemon stops before the
/// fake, and the fake closes its socket before the node namespace goes.
pub struct KubeWorld {
    pub daemon: Daemon,
    pub cluster: FakeCluster,
    pub manifests: Manifests,
    pub a: Pod,
    pub b: Pod,
    pub node: Node,
}

impl KubeWorld {
    /// The scene, its manifests changed by `prepare`, mirrored into the
    /// fake, and the daemon started with `args` in charge of both pods.
    pub fn start(
        tag: &str,
        args: &[&str],
        prepare: impl FnOnce(&Manifests) -> Result<()>,
    ) -> Result<Self> {
        let Scene {
            manifests,
            a,
            b,
            node,
        } = scene(tag)?;
        prepare(&manifests)?;
        let mut cluster = FakeCluster::start(&node)?;
        cluster.mirror(&manifests)?;
        let mut daemon = Daemon::start_kube(&node, &cluster.kubeconfig(), args)?;
        daemon.wait_in_charge(2)?;
        Ok(Self {
            daemon,
            cluster,
            manifests,
            a,
            b,
            node,
        })
    }

    /// Changes the manifests, mirrors them into the fake, and waits until
    /// the daemon has taken in what its watches saw.
    pub fn apply(&mut self, change: impl FnOnce(&Manifests) -> Result<()>) -> Result<()> {
        change(&self.manifests)?;
        self.cluster.publish(&self.manifests, &mut self.daemon)
    }

    /// A new daemon on the same node and fake (the previous one must be
    /// stopped or killed).
    pub fn restart_daemon(&mut self, args: &[&str]) -> Result<()> {
        self.daemon = Daemon::start_kube(&self.node, &self.cluster.kubeconfig(), args)?;
        Ok(())
    }
}
