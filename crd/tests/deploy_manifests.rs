//! Every manifest under `deploy/` parses into its Kubernetes type with no field left over, so
//! a typo cannot ship; the RBAC rules are exactly the golden list below; the DaemonSet runs
//! unprivileged with exactly CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use netseg_crd::{ClusterNetworkPolicy, NetsegNode, Segment, SegmentPolicy};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Where one YAML document came from, for error messages.
#[derive(Clone, Debug)]
struct Origin {
    file: PathBuf,
    /// 1-based position of the document in its file.
    document: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, document {}", self.file.display(), self.document)
    }
}

/// A document parsed into its type; the kinds checked beyond parsing keep their value.
enum Parsed {
    DaemonSet(Box<DaemonSet>),
    ClusterRole(ClusterRole),
    Role(Role),
    Other,
}

/// Deserializes `value` as `T`, failing on a type error (naming the field's path) and on any
/// key `T` does not know (which serde would otherwise drop without a word).
fn strict<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    let mut unknown = Vec::new();
    let mut record_unknown = |path: serde_ignored::Path| unknown.push(field_path(&path));
    let typed = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(
        value,
        &mut record_unknown,
    ))
    .map_err(|e| format!("at `{}`: {}", e.path(), e.inner()))?;
    if unknown.is_empty() {
        Ok(typed)
    } else {
        Err(format!("unknown field `{}`", unknown.join("`, `")))
    }
}

/// `a.b[0].c`, as serde_path_to_error writes paths (serde_ignored's own form marks every
/// `Option` with a `?` segment).
fn field_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => match field_path(parent) {
            parent if parent.is_empty() => key.clone(),
            parent => format!("{parent}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// The same for a custom resource: kube's derived types take apiVersion and kind as given
/// (the dispatch in `parse_document` has already matched them), so they are removed first.
fn strict_custom_resource<T: DeserializeOwned>(mut value: Value) -> Result<T, String> {
    if let Value::Object(map) = &mut value {
        map.remove("apiVersion");
        map.remove("kind");
    }
    strict(value)
}

fn type_meta(value: &Value) -> (&str, &str) {
    let field = |name| value.get(name).and_then(Value::as_str).unwrap_or("");
    (field("apiVersion"), field("kind"))
}

/// Parses one document into the type its apiVersion and kind name.
fn parse_document(value: Value) -> Result<Parsed, String> {
    fn other<T>(_: T) -> Parsed {
        Parsed::Other
    }
    let (api_version, kind) = type_meta(&value);
    match (api_version, kind) {
        ("apps/v1", "DaemonSet") => strict(value).map(|d| Parsed::DaemonSet(Box::new(d))),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => strict(value).map(Parsed::ClusterRole),
        ("rbac.authorization.k8s.io/v1", "Role") => strict(value).map(Parsed::Role),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            strict::<ClusterRoleBinding>(value).map(other)
        }
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => strict::<RoleBinding>(value).map(other),
        ("v1", "ServiceAccount") => strict::<ServiceAccount>(value).map(other),
        ("v1", "Namespace") => strict::<Namespace>(value).map(other),
        ("v1", "Pod") => strict::<Pod>(value).map(other),
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy") => {
            strict::<ValidatingAdmissionPolicy>(value).map(other)
        }
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding") => {
            strict::<ValidatingAdmissionPolicyBinding>(value).map(other)
        }
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            strict::<CustomResourceDefinition>(value).map(other)
        }
        ("networking.k8s.io/v1", "NetworkPolicy") => strict::<NetworkPolicy>(value).map(other),
        ("policy.networking.k8s.io/v1alpha2", "ClusterNetworkPolicy") => {
            strict_custom_resource::<ClusterNetworkPolicy>(value).map(other)
        }
        ("netseg.dev/v1alpha1", "Segment") => strict_custom_resource::<Segment>(value).map(other),
        ("netseg.dev/v1alpha1", "SegmentPolicy") => {
            strict_custom_resource::<SegmentPolicy>(value).map(other)
        }
        ("netseg.dev/v1alpha1", "NetsegNode") => {
            strict_custom_resource::<NetsegNode>(value).map(other)
        }
        _ => Err(format!(
            "no known type for apiVersion `{api_version}`, kind `{kind}`"
        )),
    }
}

/// Parses every document of `text` (documents that hold nothing are skipped, as kubectl
/// skips them), each error naming `file` and the document.
fn parse_file(file: &Path, text: &str) -> Result<Vec<(Origin, Parsed)>, String> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(text)
        .map_err(|e| format!("{}: not YAML: {e}", file.display()))?;
    let mut parsed = Vec::new();
    for (index, value) in documents.into_iter().enumerate() {
        let origin = Origin {
            file: file.to_owned(),
            document: index + 1,
        };
        let typed = parse_document(value).map_err(|e| format!("{origin}: {e}"))?;
        parsed.push((origin, typed));
    }
    Ok(parsed)
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn yaml_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, found);
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            found.push(path);
        }
    }
}

/// Every document of every YAML file under deploy/, parsed; panics listing every failure.
fn deploy_manifests() -> Vec<(Origin, Parsed)> {
    let root = deploy_dir();
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    files.sort();
    let mut parsed = Vec::new();
    let mut failures = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let relative = Path::new("deploy").join(path.strip_prefix(&root).unwrap());
        match parse_file(&relative, &text) {
            Ok(documents) => parsed.extend(documents),
            Err(failure) => failures.push(failure),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    parsed
}

#[test]
fn every_manifest_in_deploy_parses_into_its_type_without_unknown_fields() {
    let manifests = deploy_manifests();
    let files: BTreeSet<_> = manifests.iter().map(|(o, _)| o.file.clone()).collect();
    for expected in [
        "deploy/daemonset.yaml",
        "deploy/rbac.yaml",
        "deploy/admission.yaml",
        "deploy/namespace.yaml",
        "deploy/crds/netsegnodes.netseg.dev.yaml",
        "deploy/examples/networkpolicy.yaml",
        "deploy/examples/clusternetworkpolicy.yaml",
        "deploy/examples/segment.yaml",
        "deploy/examples/segmentpolicy.yaml",
    ] {
        assert!(files.contains(Path::new(expected)), "{expected} not read");
    }
}

/// Two documents: a Namespace, and a DaemonSet whose security context misspells
/// `readOnlyRootFilesystem` (a capital S), which serde alone would silently drop.
const TYPO_IN_SECOND_DOCUMENT: &str = "apiVersion: v1
kind: Namespace
metadata: {name: fine}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: netseg}
spec:
  selector: {matchLabels: {app: netseg}}
  template:
    metadata: {labels: {app: netseg}}
    spec:
      containers:
        - name: netseg
          image: netseg
          securityContext:
            readOnlyRootFileSystem: true
";

#[test]
fn a_misspelt_field_fails_naming_file_document_and_field() {
    let error = parse_file(Path::new("deploy/typo.yaml"), TYPO_IN_SECOND_DOCUMENT).err();
    assert_eq!(
        error.as_deref(),
        Some(
            "deploy/typo.yaml, document 2: unknown field \
             `spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem`"
        )
    );
    let corrected = TYPO_IN_SECOND_DOCUMENT.replace("FileSystem", "Filesystem");
    assert!(parse_file(Path::new("deploy/typo.yaml"), &corrected).is_ok());
}

#[test]
fn a_misspelt_custom_resource_field_fails() {
    let text = "apiVersion: netseg.dev/v1alpha1
kind: Segment
metadata: {name: pci}
spec:
  members:
    - namespaces: {matchLabels: {zone: pci}}
  postur: {ingress: Deny}
";
    let error = parse_file(Path::new("segment.yaml"), text).err();
    assert_eq!(
        error.as_deref(),
        Some("segment.yaml, document 1: unknown field `spec.postur`")
    );
}

#[test]
fn a_wrong_value_type_and_an_unknown_kind_fail_naming_where() {
    let wrong_type = TYPO_IN_SECOND_DOCUMENT.replace(
        "readOnlyRootFileSystem: true",
        "readOnlyRootFilesystem: yes please",
    );
    let error = parse_file(Path::new("ds.yaml"), &wrong_type).err();
    let expected_start = "ds.yaml, document 2: at \
        `spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem`";
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.starts_with(expected_start)),
        "{error:?}"
    );
    let unknown_kind = "apiVersion: apps/v1\nkind: Namespace\nmetadata: {name: x}\n";
    let error = parse_file(Path::new("ns.yaml"), unknown_kind).err();
    assert_eq!(
        error.as_deref(),
        Some("ns.yaml, document 1: no known type for apiVersion `apps/v1`, kind `Namespace`")
    );
}

/// "group/resource: verb" for every grant of `rules`, refusing wildcards and name or URL
/// restrictions this installation does not use.
fn grants(rules: &[PolicyRule]) -> BTreeSet<String> {
    let mut grants = BTreeSet::new();
    for rule in rules {
        assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    for word in [group, resource, verb] {
                        assert!(!word.contains('*'), "wildcard in {rule:?}");
                    }
                    grants.insert(format!("{group}/{resource}: {verb}"));
                }
            }
        }
    }
    grants
}

/// What netseg may do, per role: reads are list and watch only; writes are exactly the
/// status, NetsegNode, Lease and Event writes the daemon makes. No delete anywhere.
fn golden_rules() -> BTreeMap<String, BTreeSet<String>> {
    let cluster: Vec<String> = [
        (
            "",
            &["pods", "namespaces", "nodes"][..],
            &["list", "watch"][..],
        ),
        (
            "networking.k8s.io",
            &["networkpolicies"],
            &["list", "watch"],
        ),
        (
            "policy.networking.k8s.io",
            &["clusternetworkpolicies"],
            &["list", "watch"],
        ),
        (
            "netseg.dev",
            &["segments", "segmentpolicies"],
            &["list", "watch"],
        ),
        (
            "netseg.dev",
            &["segments/status", "segmentpolicies/status"],
            &["get", "patch", "update"],
        ),
        (
            "policy.networking.k8s.io",
            &["clusternetworkpolicies/status"],
            &["get", "patch", "update"],
        ),
        (
            "netseg.dev",
            &["netsegnodes", "netsegnodes/status"],
            &["get", "create", "update", "patch"],
        ),
    ]
    .into_iter()
    .flat_map(|(group, resources, verbs)| {
        resources.iter().flat_map(move |resource| {
            verbs
                .iter()
                .map(move |verb| format!("{group}/{resource}: {verb}"))
        })
    })
    .collect();
    let set = |grants: &[&str]| grants.iter().map(|g| g.to_string()).collect();
    BTreeMap::from([
        (
            "ClusterRole netseg".to_string(),
            cluster.into_iter().collect(),
        ),
        (
            "Role netseg/netseg".to_string(),
            set(&[
                "coordination.k8s.io/leases: create",
                "coordination.k8s.io/leases: get",
                "coordination.k8s.io/leases: update",
            ]),
        ),
        (
            "Role default/netseg-events".to_string(),
            set(&["events.k8s.io/events: create", "events.k8s.io/events: list"]),
        ),
    ])
}

#[test]
fn rbac_grants_exactly_the_golden_rules() {
    let mut roles = BTreeMap::new();
    for (origin, parsed) in deploy_manifests() {
        let (name, rules) = match parsed {
            Parsed::ClusterRole(role) => (
                format!("ClusterRole {}", role.metadata.name.unwrap_or_default()),
                role.rules.unwrap_or_default(),
            ),
            Parsed::Role(role) => (
                format!(
                    "Role {}/{}",
                    role.metadata.namespace.unwrap_or_default(),
                    role.metadata.name.unwrap_or_default()
                ),
                role.rules.unwrap_or_default(),
            ),
            _ => continue,
        };
        let previous = roles.insert(name.clone(), grants(&rules));
        assert!(previous.is_none(), "{origin}: {name} defined twice");
    }
    let golden = golden_rules();
    for (name, expected) in &golden {
        let actual = roles.get(name).unwrap_or_else(|| panic!("{name} missing"));
        let extra: Vec<_> = actual.difference(expected).collect();
        let missing: Vec<_> = expected.difference(actual).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{name}: grants beyond the golden list {extra:?}, golden grants missing {missing:?}"
        );
    }
    let unexpected: Vec<_> = roles.keys().filter(|n| !golden.contains_key(*n)).collect();
    assert!(
        unexpected.is_empty(),
        "roles not in the golden list: {unexpected:?}"
    );
}

fn the_daemonset() -> DaemonSet {
    let mut daemonsets = deploy_manifests()
        .into_iter()
        .filter_map(|(_, parsed)| match parsed {
            Parsed::DaemonSet(ds) => Some(*ds),
            _ => None,
        });
    let daemonset = daemonsets.next().expect("deploy/ has a DaemonSet");
    assert!(daemonsets.next().is_none(), "deploy/ has one DaemonSet");
    daemonset
}

/// (privileged, allowPrivilegeEscalation, readOnlyRootFilesystem, capabilities added,
/// capabilities dropped) of a container, unset fields as Kubernetes defaults them.
fn security_of(container: &Container) -> (bool, bool, bool, Vec<String>, Vec<String>) {
    let context = container.security_context.clone().unwrap_or_default();
    let capabilities = context.capabilities.unwrap_or_default();
    (
        context.privileged.unwrap_or(false),
        context.allow_privilege_escalation.unwrap_or(true),
        context.read_only_root_filesystem.unwrap_or(false),
        capabilities.add.unwrap_or_default(),
        capabilities.drop.unwrap_or_default(),
    )
}

#[test]
fn the_daemonset_runs_unprivileged_with_exactly_bpf_net_admin_and_perfmon() {
    let pod = the_daemonset().spec.unwrap().template.spec.unwrap();
    let strings = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    let netseg = pod
        .containers
        .iter()
        .find(|c| c.name == "netseg")
        .expect("a container named netseg");
    assert_eq!(
        security_of(netseg),
        (
            false,
            false,
            true,
            strings(&["BPF", "NET_ADMIN", "PERFMON"]),
            strings(&["ALL"])
        )
    );
    for init in pod.init_containers.iter().flatten() {
        assert_eq!(
            security_of(init),
            (false, false, true, vec![], strings(&["ALL"])),
            "init container {}",
            init.name
        );
    }
    assert_eq!(pod.containers.len(), 1, "one long-running container");
    assert_eq!(pod.service_account_name.as_deref(), Some("netseg"));
}
