use std::fs;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tempfile::TempDir;

use super::{NAMESPACE_SHOP, lines, names, pod, policy, write};
use crate::sources::manifests::ManifestStore;

fn policy_port(policy: &NetworkPolicy) -> Option<IntOrString> {
    let spec = policy.spec.as_ref()?;
    spec.ingress
        .as_ref()?
        .first()?
        .ports
        .as_ref()?
        .first()?
        .port
        .clone()
}

#[test]
fn a_syntax_error_keeps_every_object_the_file_last_yielded() {
    let dir = TempDir::new().expect("tempdir");
    let file = write(
        dir.path(),
        "shop.yaml",
        &format!("{NAMESPACE_SHOP}---\n{}", pod("web", "web")),
    );
    let mut store = ManifestStore::default();
    store.reload(dir.path());
    write(
        dir.path(),
        "shop.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n   bad: indent\n",
    );
    let reload = store.reload(dir.path());
    assert!(!reload.changed);
    assert_eq!(names(&store), ["Namespace shop", "Pod shop/web"]);
    let [problem] = reload.problems.as_slice() else {
        panic!("one problem expected: {:?}", lines(&reload.problems));
    };
    let line = problem.to_string();
    assert!(
        line.starts_with(&format!("{}: invalid YAML: ", file.display())),
        "{line}"
    );
    assert!(line.contains("line 5"), "the line is named: {line}");
    assert!(
        line.ends_with("the 2 objects last read from it stay enforced"),
        "{line}"
    );

    write(dir.path(), "shop.yaml", NAMESPACE_SHOP);
    let reload = store.reload(dir.path());
    assert!(reload.changed && reload.problems.is_empty());
    assert_eq!(names(&store), ["Namespace shop"]);
}

#[test]
fn a_malformed_object_keeps_its_last_good_version_while_others_update() {
    let dir = TempDir::new().expect("tempdir");
    write(
        dir.path(),
        "app.yaml",
        &format!("{}---\n{}", policy("allow-web", "80"), pod("web", "v1")),
    );
    let mut store = ManifestStore::default();
    store.reload(dir.path());
    let file = write(
        dir.path(),
        "app.yaml",
        &format!("{}---\n{}", policy("allow-web", "[80]"), pod("web", "v2")),
    );
    let reload = store.reload(dir.path());
    assert!(reload.changed, "the pod's new label is enforced");
    let snapshot = store.snapshot();
    assert_eq!(
        policy_port(&snapshot.network_policies[0]),
        Some(IntOrString::Int(80))
    );
    let labels = snapshot.pods[0].metadata.labels.as_ref().expect("labels");
    assert_eq!(labels.get("app").map(String::as_str), Some("v2"));
    let [problem] = reload.problems.as_slice() else {
        panic!("one problem expected: {:?}", lines(&reload.problems));
    };
    assert_eq!(
        problem.field.as_deref(),
        Some("spec.ingress[0].ports[0].port")
    );
    let prefix = format!(
        "{}: NetworkPolicy shop/allow-web: spec.ingress[0].ports[0].port: ",
        file.display()
    );
    let line = problem.to_string();
    assert!(line.starts_with(&prefix), "{line}");
    assert!(
        line.ends_with("; its last good version stays enforced"),
        "{line}"
    );
}

#[test]
fn removing_a_file_or_a_document_removes_its_objects() {
    let dir = TempDir::new().expect("tempdir");
    let pods = write(
        dir.path(),
        "pods.yaml",
        &format!("{}---\n{}", pod("a", "a"), pod("b", "b")),
    );
    let namespace = write(dir.path(), "nested/ns.yaml", NAMESPACE_SHOP);
    let mut store = ManifestStore::default();
    store.reload(dir.path());
    assert_eq!(
        names(&store),
        ["Namespace shop", "Pod shop/a", "Pod shop/b"]
    );
    fs::remove_file(namespace).expect("remove");
    fs::write(&pods, pod("b", "b")).expect("rewrite");
    let reload = store.reload(dir.path());
    assert!(reload.changed && reload.problems.is_empty());
    assert_eq!(names(&store), ["Pod shop/b"]);
}

#[test]
fn the_first_file_by_path_wins_a_duplicate_identity() {
    let dir = TempDir::new().expect("tempdir");
    let first = write(dir.path(), "a/pod.yaml", &pod("web", "first"));
    let second = write(dir.path(), "b.yaml", &pod("web", "second"));
    let mut store = ManifestStore::default();
    let reload = store.reload(dir.path());
    assert_eq!(
        lines(&reload.problems),
        [format!(
            "{}: Pod shop/web: also defined in {}, which wins; ignored",
            second.display(),
            first.display()
        )]
    );
    let labels = store.snapshot().pods[0]
        .metadata
        .labels
        .clone()
        .expect("labels");
    assert_eq!(labels.get("app").map(String::as_str), Some("first"));
}

#[test]
fn an_unreadable_directory_keeps_what_it_held() {
    let parent = TempDir::new().expect("tempdir");
    let dir = parent.path().join("manifests");
    write(&dir, "pod.yaml", &pod("web", "web"));
    let mut store = ManifestStore::default();
    assert!(store.reload(&dir).complete, "every file was read");
    fs::rename(&dir, parent.path().join("elsewhere")).expect("move away");
    let reload = store.reload(&dir);
    assert!(!reload.complete, "the directory could not be listed");
    assert!(!reload.changed);
    assert_eq!(names(&store), ["Pod shop/web"]);
    let line = lines(&reload.problems).join("\n");
    assert!(
        line.starts_with(&format!("{}: cannot read: ", dir.display())),
        "{line}"
    );
    assert!(
        line.ends_with("the object last read from it stays enforced"),
        "{line}"
    );
}

#[test]
fn editing_one_document_keeps_the_others_shared_with_the_compiler() {
    let dir = TempDir::new().expect("tempdir");
    let text = |b_app: &str| format!("{}---\n{}", pod("a", "a"), pod("b", b_app));
    write(dir.path(), "pods.yaml", &text("b"));
    let mut store = ManifestStore::default();
    store.reload(dir.path());
    let before = store.snapshot();
    write(dir.path(), "pods.yaml", &text("edited"));
    assert!(store.reload(dir.path()).changed);
    let after = store.snapshot();
    // The compiler reuses what it derived from an object while its Arc stays.
    assert!(
        Arc::ptr_eq(&before.pods[0], &after.pods[0]),
        "a is unchanged"
    );
    assert!(!Arc::ptr_eq(&before.pods[1], &after.pods[1]), "b changed");
}

/// A reload reads only the files whose stamp moved. A file written again
/// in place right after it was read, to the same size, may keep its stamp
/// (the file system's clock ticks coarsely): it must be read again anyway.
#[test]
fn a_file_rewritten_in_place_at_once_to_the_same_size_is_read_again() {
    let dir = TempDir::new().expect("tempdir");
    let file = write(dir.path(), "policy.yaml", &policy("allow-web", "80"));
    let mut store = ManifestStore::default();
    store.reload(dir.path());
    let before = fs::metadata(&file).expect("stat").len();
    fs::write(&file, policy("allow-web", "81")).expect("rewrite in place");
    assert_eq!(fs::metadata(&file).expect("stat").len(), before);
    assert!(store.reload(dir.path()).changed);
    assert_eq!(
        policy_port(&store.snapshot().network_policies[0]),
        Some(IntOrString::Int(81))
    );
}
