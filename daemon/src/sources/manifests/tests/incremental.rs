//! A reload redoes only the files that changed; what the store reports must
//! be what reading every file afresh would report.

use std::fs;
use std::sync::Arc;

use tempfile::TempDir;

use super::{NAMESPACE_SHOP, lines, names, pod, policy, write};
use crate::sources::manifests::ManifestStore;

fn app_of_web(store: &ManifestStore) -> String {
    let snapshot = store.snapshot();
    let web = snapshot
        .pods
        .iter()
        .find(|pod| pod.metadata.name.as_deref() == Some("web"))
        .expect("pod web is enforced");
    let labels = web.metadata.labels.as_ref().expect("labels");
    labels["app"].clone()
}

/// What a store that never saw the directory before reports of it.
fn afresh(dir: &std::path::Path) -> (Vec<String>, Vec<String>) {
    let mut store = ManifestStore::default();
    let problems = lines(&store.reload(dir).problems);
    (names(&store), problems)
}

#[test]
fn an_edited_file_changes_only_its_objects() {
    let dir = TempDir::new().expect("tempdir");
    write(
        dir.path(),
        "a.yaml",
        &format!("{NAMESPACE_SHOP}---\n{}", pod("a", "a")),
    );
    write(dir.path(), "b.yaml", &pod("b", "b"));
    let mut store = ManifestStore::default();
    store.reload(dir.path());
    assert!(!store.reload(dir.path()).changed, "nothing was written");
    let before = store.snapshot();
    write(
        dir.path(),
        "b.yaml",
        &format!("{}---\n{}", pod("b", "edited"), pod("c", "c")),
    );
    let reload = store.reload(dir.path());
    assert!(reload.changed && reload.problems.is_empty());
    assert_eq!(
        names(&store),
        ["Namespace shop", "Pod shop/a", "Pod shop/b", "Pod shop/c"]
    );
    let after = store.snapshot();
    assert!(
        Arc::ptr_eq(&before.pods[0], &after.pods[0]),
        "a is unchanged"
    );
    let labels = after.pods[1].metadata.labels.as_ref().expect("labels");
    assert_eq!(labels["app"], "edited");
    assert_eq!((names(&store), lines(&reload.problems)), afresh(dir.path()));
}

#[test]
fn a_file_added_before_an_unchanged_one_wins_its_duplicate() {
    let dir = TempDir::new().expect("tempdir");
    let unchanged = write(dir.path(), "b.yaml", &pod("web", "old"));
    let mut store = ManifestStore::default();
    store.reload(dir.path());
    let added = write(dir.path(), "a.yaml", &pod("web", "new"));
    let reload = store.reload(dir.path());
    assert!(reload.changed);
    assert_eq!(app_of_web(&store), "new");
    assert_eq!(
        lines(&reload.problems),
        [format!(
            "{}: Pod shop/web: also defined in {}, which wins; ignored",
            unchanged.display(),
            added.display()
        )]
    );
    assert_eq!((names(&store), lines(&reload.problems)), afresh(dir.path()));
}

#[test]
fn a_file_added_after_an_unchanged_one_is_the_duplicate() {
    let dir = TempDir::new().expect("tempdir");
    let unchanged = write(dir.path(), "a.yaml", &pod("web", "old"));
    let mut store = ManifestStore::default();
    store.reload(dir.path());
    let added = write(dir.path(), "b.yaml", &pod("web", "new"));
    let reload = store.reload(dir.path());
    assert!(!reload.changed, "the object in force stays");
    assert_eq!(app_of_web(&store), "old");
    let duplicate = format!(
        "{}: Pod shop/web: also defined in {}, which wins; ignored",
        added.display(),
        unchanged.display()
    );
    assert_eq!(lines(&reload.problems), std::slice::from_ref(&duplicate));
    // Reloads that read neither file still report it.
    write(dir.path(), "c.yaml", NAMESPACE_SHOP);
    assert_eq!(lines(&store.reload(dir.path()).problems), [duplicate]);
}

#[test]
fn removing_the_file_that_won_a_duplicate_enforces_the_other() {
    let dir = TempDir::new().expect("tempdir");
    let first = write(dir.path(), "a.yaml", &pod("web", "first"));
    write(dir.path(), "b.yaml", &pod("web", "second"));
    let mut store = ManifestStore::default();
    assert_eq!(store.reload(dir.path()).problems.len(), 1);
    fs::remove_file(first).expect("remove");
    let reload = store.reload(dir.path());
    assert!(reload.changed && reload.problems.is_empty());
    assert_eq!(app_of_web(&store), "second");
}

#[test]
fn a_broken_file_keeps_its_objects_while_another_changes() {
    let dir = TempDir::new().expect("tempdir");
    let broken = write(
        dir.path(),
        "broken.yaml",
        &format!("{}---\n{}", pod("x", "x"), pod("y", "y")),
    );
    write(dir.path(), "other.yaml", &pod("z", "z"));
    let mut store = ManifestStore::default();
    store.reload(dir.path());
    write(
        dir.path(),
        "broken.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: [\n",
    );
    let kept = format!("{}: invalid YAML: ", broken.display());
    for label in ["z2", "z3"] {
        write(dir.path(), "other.yaml", &pod("z", label));
        let reload = store.reload(dir.path());
        assert!(reload.changed, "z's new label is enforced");
        assert_eq!(names(&store), ["Pod shop/x", "Pod shop/y", "Pod shop/z"]);
        let [problem] = lines(&reload.problems).try_into().expect("one problem");
        assert!(problem.starts_with(&kept), "{problem}");
        assert!(
            problem.ends_with("the 2 objects last read from it stay enforced"),
            "{problem}"
        );
    }
}

#[test]
fn a_rejected_document_keeps_the_last_good_version_it_took_over() {
    let dir = TempDir::new().expect("tempdir");
    let old = write(dir.path(), "a.yaml", &policy("allow-web", "80"));
    let mut store = ManifestStore::default();
    store.reload(dir.path());
    // Moved to another file, and broken on the way.
    fs::remove_file(old).expect("remove");
    let moved = write(dir.path(), "b.yaml", &policy("allow-web", "[80]"));
    let reload = store.reload(dir.path());
    assert!(!reload.changed, "its last good version stays");
    assert_eq!(names(&store), ["NetworkPolicy shop/allow-web"]);
    let [problem] = lines(&reload.problems).try_into().expect("one problem");
    assert!(
        problem.starts_with(&moved.display().to_string()),
        "{problem}"
    );
    assert!(
        problem.ends_with("; its last good version stays enforced"),
        "{problem}"
    );
    // Fixed: the file is clean again and the edit is enforced.
    write(dir.path(), "b.yaml", &policy("allow-web", "81"));
    let reload = store.reload(dir.path());
    assert!(reload.changed && reload.problems.is_empty());
}
