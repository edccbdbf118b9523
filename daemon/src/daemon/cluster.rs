//! Opening the source, and, in Kubernetes mode, feeding the status writer
//! (NetsegNode, conditions, Events: see [`crate::cluster_status`]).

use std::sync::Arc;

use anyhow::Context as _;
use netseg_policy::PolicyKind;
use tokio::{sync::watch, task::JoinHandle};
use tracing::error;

use super::SourceConfig;
use crate::{
    cluster_status::{
        self, ClusterInputs, ClusterStatusConfig, MapPressure, NodeReport, Rejection,
    },
    datapath::publish::MapWriter,
    enforcer::Enforcer,
    metrics::Metrics,
    sources::{ManifestSource, Refused, Source, kube::KubeSource, object::ObjectKind},
    status::Status,
};

/// The source `config` names, and the API client when it is the API server.
pub(super) async fn open_source(
    config: &SourceConfig,
    node_name: &str,
) -> anyhow::Result<(Source, Option<kube::Client>)> {
    Ok(match config {
        SourceConfig::Manifests(dir) => (
            Source::Manifests(ManifestSource::open(dir).context("watching the manifests")?),
            None,
        ),
        SourceConfig::Kubernetes { kubeconfig } => {
            let client = kube_client(kubeconfig.as_deref())
                .await
                .context("configuring the Kubernetes client")?;
            let source = KubeSource::start(client.clone(), node_name);
            (Source::Kube(source), Some(client))
        }
    })
}

async fn kube_client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// Hands the status writer what the daemon enforces, when it changed.
pub(super) struct ClusterReporter {
    inputs: watch::Sender<Arc<ClusterInputs>>,
    /// `None` once it has stopped (and that was reported).
    writer: Option<JoinHandle<anyhow::Result<()>>>,
    /// What the last report was made of: source updates, revision,
    /// readiness and the last error.
    last: Option<(u64, u32, bool, Option<String>)>,
}

impl ClusterReporter {
    pub(super) fn start(client: kube::Client, node_name: &str, namespace: &str) -> Self {
        let (inputs, receiver) = watch::channel(Arc::new(ClusterInputs::default()));
        let config = ClusterStatusConfig::new(node_name, namespace);
        let writer = tokio::spawn(cluster_status::run(client, config, receiver));
        Self {
            inputs,
            writer: Some(writer),
            last: None,
        }
    }

    pub(super) fn report<W: MapWriter>(
        &mut self,
        enforcer: &Enforcer<W>,
        status: &Status,
        metrics: &Metrics,
    ) {
        if self.writer.as_ref().is_some_and(JoinHandle::is_finished) {
            self.writer = None;
            error!("the cluster status writer stopped");
            metrics.task_stopped("the cluster status writer", "its task ended");
        }
        let ready = status.waiting_for.is_none() && status.pods_without_interface.is_empty();
        let last_error = enforcer.publish_problem().map(str::to_owned);
        let key = (status.reloads, status.revision, ready, last_error.clone());
        if self.last.as_ref() == Some(&key) {
            return;
        }
        self.last = Some(key);
        let (enforced, invalid, refused) = enforcer.objects();
        let inputs = ClusterInputs {
            enforced: enforced.clone(),
            invalid: invalid.clone(),
            rejected: refused.iter().filter_map(rejection).collect(),
            node: NodeReport {
                revision: u64::from(status.revision),
                ready,
                maps: enforcer
                    .tables()
                    .iter()
                    .map(|map| MapPressure {
                        name: map.map.to_owned(),
                        used: map.entries,
                        capacity: map.capacity,
                    })
                    .collect(),
                last_error,
            },
        };
        self.inputs.send_replace(Arc::new(inputs));
    }
}

impl Drop for ClusterReporter {
    fn drop(&mut self) {
        if let Some(writer) = &self.writer {
            writer.abort();
        }
    }
}

/// A refused policy object as the Event about it says it; pods, namespaces
/// and nodes are refused in the log and the status only.
fn rejection(refused: &Refused) -> Option<Rejection> {
    let kind = match refused.id.kind {
        ObjectKind::NetworkPolicy => PolicyKind::NetworkPolicy,
        ObjectKind::ClusterNetworkPolicy => PolicyKind::ClusterNetworkPolicy,
        ObjectKind::Segment => PolicyKind::Segment,
        ObjectKind::SegmentPolicy => PolicyKind::SegmentPolicy,
        ObjectKind::Namespace | ObjectKind::Node | ObjectKind::Pod => return None,
    };
    let first = refused.problems.first()?;
    let message = refused
        .problems
        .iter()
        .map(|problem| match &problem.field {
            Some(field) => format!("{field}: {}", problem.message),
            None => problem.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ");
    Some(Rejection {
        kind,
        namespace: refused.id.namespace.clone(),
        name: refused.id.name.clone(),
        uid: refused.uid.clone(),
        field: first.field.clone().unwrap_or_default(),
        message,
    })
}
