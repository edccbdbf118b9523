use std::path::Path;

use tempfile::TempDir;

use super::{NAMESPACE_SHOP, lines, names, pod, policy, write};
use crate::sources::manifests::{ManifestStore, check_dir};
use crate::sources::{Origin, Problem};

#[test]
fn multi_document_yaml_yields_every_object_and_defaults_the_namespace() {
    let dir = TempDir::new().expect("tempdir");
    let unnamespaced_pod = pod("web", "web").replace("  namespace: shop\n", "");
    let text = format!(
        "# leading comment\n---\n{NAMESPACE_SHOP}---\n---\n# only a comment\n---\n{unnamespaced_pod}---\n{}",
        policy("allow-web", "80")
    );
    write(dir.path(), "all.yaml", &text);
    let mut store = ManifestStore::default();
    let reload = store.reload(dir.path());
    assert_eq!(lines(&reload.problems), Vec::<String>::new());
    assert!(reload.changed);
    assert_eq!(
        names(&store),
        [
            "Namespace shop",
            "Pod default/web",
            "NetworkPolicy shop/allow-web"
        ]
    );
    assert!(
        !store.reload(dir.path()).changed,
        "rereading the same files changes nothing"
    );
}

#[test]
fn json_files_and_json_streams_are_read() {
    let dir = TempDir::new().expect("tempdir");
    let namespace = r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "data"}}"#;
    let pod = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db", "namespace": "data"},
                  "spec": {"containers": [{"name": "pg", "image": "postgres",
                           "ports": [{"name": "postgres", "containerPort": 5432}]}]}}"#;
    write(dir.path(), "ns.json", namespace);
    write(
        dir.path(),
        "sub/stream.JSON",
        &format!("{pod}\n{namespace}"),
    );
    let problems = check_dir(dir.path());
    // The same Namespace in two files: the stream's copy is the duplicate.
    assert_eq!(problems.len(), 1, "{:?}", lines(&problems));
    let mut store = ManifestStore::default();
    store.reload(dir.path());
    assert_eq!(names(&store), ["Namespace data", "Pod data/db"]);
}

#[test]
fn lists_are_expanded_including_typed_lists_without_item_kinds() {
    let dir = TempDir::new().expect("tempdir");
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n{}",
        [NAMESPACE_SHOP.to_owned(), pod("a", "a")]
            .iter()
            .map(|item| format!("- {}", item.replace('\n', "\n  ").trim_end()))
            .collect::<Vec<_>>()
            .join("\n")
    );
    write(dir.path(), "list.yaml", &format!("{list}\n"));
    let typed = "apiVersion: v1\nkind: PodList\nitems:\n- metadata: {name: b, namespace: shop}\n  \
                 spec: {containers: [{name: main, image: example}]}\n";
    write(dir.path(), "podlist.yaml", typed);
    let mut store = ManifestStore::default();
    let reload = store.reload(dir.path());
    assert_eq!(lines(&reload.problems), Vec::<String>::new());
    assert_eq!(
        names(&store),
        ["Namespace shop", "Pod shop/a", "Pod shop/b"]
    );
}

#[test]
fn an_unknown_kind_is_reported_and_the_rest_of_the_file_loads() {
    let dir = TempDir::new().expect("tempdir");
    let deployment =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n";
    let file = write(
        dir.path(),
        "mixed.yaml",
        &format!("{deployment}---\n{}", pod("web", "web")),
    );
    let mut store = ManifestStore::default();
    let reload = store.reload(dir.path());
    assert_eq!(
        lines(&reload.problems),
        [format!(
            "{}: Deployment shop/web: apps/v1 Deployment is not a kind netseg enforces; ignored",
            file.display()
        )]
    );
    assert_eq!(names(&store), ["Pod shop/web"]);
}

#[test]
fn type_errors_name_the_exact_field() {
    let dir = TempDir::new().expect("tempdir");
    let end_port =
        policy("a", "80").replace("- port: 80\n", "- port: 80\n          endPort: high\n");
    write(dir.path(), "a.yaml", &end_port);
    let bad_container_port = pod("b", "b").replace(
        "image: example\n",
        "image: example\n      ports: [{containerPort: http}]\n",
    );
    write(dir.path(), "b.yaml", &bad_container_port);
    let fields: Vec<_> = check_dir(dir.path())
        .into_iter()
        .map(|problem| problem.field)
        .collect();
    assert_eq!(
        fields,
        [
            Some("spec.ingress[0].ports[0].endPort".to_owned()),
            Some("spec.containers[0].ports[0].containerPort".to_owned())
        ]
    );
}

#[test]
fn a_misspelt_field_is_rejected_rather_than_ignored() {
    let dir = TempDir::new().expect("tempdir");
    let typo = policy("a", "80").replace("matchLabels:", "matchLabel:");
    write(dir.path(), "a.yaml", &typo);
    let problems = check_dir(dir.path());
    let fields: Vec<_> = problems
        .iter()
        .map(|problem| problem.field.as_deref())
        .collect();
    assert_eq!(
        fields,
        [Some("spec.podSelector.matchLabel")],
        "{:?}",
        lines(&problems)
    );
    let mut store = ManifestStore::default();
    store.reload(dir.path());
    assert_eq!(
        names(&store),
        Vec::<String>::new(),
        "never enforced with an empty selector"
    );
}

#[test]
fn hidden_and_editor_files_are_skipped() {
    let dir = TempDir::new().expect("tempdir");
    for name in [
        ".hidden.yaml",
        "pod.yaml~",
        ".#pod.yaml",
        "#pod.yaml#",
        ".pod.yaml.swp",
        "notes.txt",
        ".git/x.yaml",
    ] {
        write(dir.path(), name, "{ not: [valid yaml");
    }
    write(dir.path(), "pod.yml", &pod("web", "web"));
    assert_eq!(lines(&check_dir(dir.path())), Vec::<String>::new());
}

#[test]
fn a_configmap_volume_is_read_through_its_symlinks() {
    let dir = TempDir::new().expect("tempdir");
    write(dir.path(), "..2025_01_01/pod.yaml", &pod("web", "web"));
    std::os::unix::fs::symlink("..2025_01_01", dir.path().join("..data")).expect("link data");
    std::os::unix::fs::symlink("..data/pod.yaml", dir.path().join("pod.yaml")).expect("link file");
    let mut store = ManifestStore::default();
    assert!(store.reload(dir.path()).problems.is_empty());
    assert_eq!(
        names(&store),
        ["Pod shop/web"],
        "read once, not again through the hidden directories"
    );
}

#[test]
fn documents_without_identity_are_reported_with_their_position() {
    let dir = TempDir::new().expect("tempdir");
    let text =
        "kind: Pod\n---\n- a list\n---\napiVersion: v1\nkind: Pod\nmetadata: {namespace: shop}\n";
    let file = write(dir.path(), "x.yaml", text);
    let file = file.display();
    assert_eq!(
        lines(&check_dir(dir.path())),
        [
            format!("{file}: document 1: apiVersion: is required"),
            format!("{file}: document 2: is not a mapping"),
            format!("{file}: Pod in document 3: metadata.name: is required"),
        ]
    );
}

#[test]
fn an_object_that_fails_validation_is_refused_like_a_malformed_one() {
    let dir = TempDir::new().expect("tempdir");
    let with_end_port = |end: u16| {
        let range = format!("- port: 8080\n          endPort: {end}\n");
        policy("a", "8080").replace("- port: 8080\n", &range)
    };
    write(dir.path(), "a.yaml", &with_end_port(9090));
    let mut store = ManifestStore::default();
    assert_eq!(
        lines(&store.reload(dir.path()).problems),
        Vec::<String>::new()
    );

    write(dir.path(), "a.yaml", &with_end_port(80));
    let problems = check_dir(dir.path());
    let fields: Vec<_> = problems
        .iter()
        .map(|problem| problem.field.as_deref())
        .collect();
    assert_eq!(
        fields,
        [Some("spec.ingress[0].ports[0].endPort")],
        "{:?}",
        lines(&problems)
    );
    let reload = store.reload(dir.path());
    assert!(!reload.changed, "the valid range stays enforced");
    assert_eq!(lines(&reload.problems).len(), 1);
}

#[test]
fn problem_lines_omit_absent_parts() {
    let problem = Problem {
        origin: Origin::File("m/a.yaml".into()),
        object: Some("NetworkPolicy x/allow-web".into()),
        field: Some("spec.podSelector".into()),
        message: "is required".into(),
    };
    assert_eq!(
        problem.to_string(),
        "m/a.yaml: NetworkPolicy x/allow-web: spec.podSelector: is required"
    );
    let bare = Problem {
        object: None,
        field: None,
        ..problem
    };
    assert_eq!(bare.to_string(), "m/a.yaml: is required");
}

#[test]
fn the_example_manifests_are_valid() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    assert_eq!(lines(&check_dir(&examples)), Vec::<String>::new());
    let mut store = ManifestStore::default();
    store.reload(&examples);
    let snapshot = store.snapshot();
    assert_eq!(
        (
            snapshot.cluster_network_policies.len(),
            snapshot.segments.len(),
            snapshot.segment_policies.len()
        ),
        (2, 5, 4),
        "every ClusterNetworkPolicy, Segment and SegmentPolicy of examples/segments/ is read"
    );
}

const CLUSTER_POLICY: &str = r#"
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: guard}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {}}
  egress:
  - action: Deny
    to: [{domainNames: ["example.com"]}, {futurePeer: {}}]
    protocols: [{tcp: {destinationPort: {number: 443}}}]
"#;

#[test]
fn cluster_kinds_load_and_unknown_rule_peers_fail_closed_rather_than_refuse_the_object() {
    let dir = TempDir::new().expect("tempdir");
    let segment = "apiVersion: netseg.dev/v1alpha1\nkind: Segment\nmetadata: {name: pci}\nspec:\n  members: [{namespaces: {}}]\n";
    write(dir.path(), "cnp.yaml", CLUSTER_POLICY);
    write(dir.path(), "segment.yaml", segment);
    let mut store = ManifestStore::default();
    let reload = store.reload(dir.path());
    assert_eq!(lines(&reload.problems), Vec::<String>::new());
    assert_eq!(names(&store), ["ClusterNetworkPolicy guard", "Segment pci"]);
}

#[test]
fn an_unknown_field_outside_rule_peers_still_refuses_a_cluster_policy() {
    let dir = TempDir::new().expect("tempdir");
    let misspelt = CLUSTER_POLICY.replace("  priority: 5", "  priority: 5\n  prority: 6");
    write(dir.path(), "cnp.yaml", &misspelt);
    let mut store = ManifestStore::default();
    let reload = store.reload(dir.path());
    let problems = lines(&reload.problems);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("spec.prority: unknown field"),
        "{problems:?}"
    );
}
