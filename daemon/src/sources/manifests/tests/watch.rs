use std::fs;
use std::time::Duration;

use tempfile::TempDir;
use tokio::time::{sleep, timeout};

use super::{names, pod, write};
use crate::sources::manifests::watch::ManifestWatch;
use crate::sources::manifests::{ManifestStore, check_dir, watch};

/// The promise to the user: a saved change is enforced within a second.
const WITHIN: Duration = Duration::from_secs(1);

async fn expect_change(watch: &mut ManifestWatch, after: &str) {
    match timeout(WITHIN, watch.changed()).await {
        // The policy implementation delay starts at the first event, not
        // once the burst has been quiet for 50 ms.
        Ok(Some(seen_at)) => assert!(
            seen_at.elapsed() >= Duration::from_millis(50),
            "the change after {after} dates from {:?} ago",
            seen_at.elapsed()
        ),
        Ok(None) => panic!("watch stopped after {after}"),
        Err(_) => panic!("no notification within {WITHIN:?} after {after}"),
    }
}

/// Lets the debouncer flush whatever a step left, so the next step's
/// notification is its own.
async fn settle(watch: &mut ManifestWatch) {
    sleep(Duration::from_millis(300)).await;
    while timeout(Duration::from_millis(10), watch.changed())
        .await
        .is_ok()
    {}
}

#[tokio::test]
async fn notifies_after_create_modify_rename_and_delete() {
    let dir = TempDir::new().expect("tempdir");
    let mut watch = watch(dir.path()).expect("watch");
    let mut store = ManifestStore::default();

    write(dir.path(), "sub/pod.yaml", &pod("web", "v1"));
    expect_change(&mut watch, "create").await;
    assert!(store.reload(dir.path()).changed);
    assert_eq!(names(&store), ["Pod shop/web"]);
    settle(&mut watch).await;

    write(dir.path(), "sub/pod.yaml", &pod("web", "v2"));
    expect_change(
        &mut watch,
        "modify in a subdirectory created after the watch began",
    )
    .await;
    settle(&mut watch).await;

    // How vim and most editors save: write a temporary file, rename it over.
    write(dir.path(), ".pod.yaml.tmp", &pod("api", "v1"));
    settle(&mut watch).await;
    fs::rename(
        dir.path().join(".pod.yaml.tmp"),
        dir.path().join("api.yaml"),
    )
    .expect("rename");
    expect_change(&mut watch, "rename over").await;
    settle(&mut watch).await;

    fs::remove_file(dir.path().join("sub/pod.yaml")).expect("remove");
    expect_change(&mut watch, "delete").await;
    assert!(store.reload(dir.path()).changed);
    assert_eq!(names(&store), ["Pod shop/api"]);
}

#[tokio::test]
async fn reading_the_directory_does_not_notify() {
    let dir = TempDir::new().expect("tempdir");
    write(dir.path(), "pod.yaml", &pod("web", "v1"));
    let mut watch = watch(dir.path()).expect("watch");
    settle(&mut watch).await;
    assert!(check_dir(dir.path()).is_empty());
    // A reload that caused a notification would reload forever.
    let echoed = timeout(Duration::from_millis(300), watch.changed()).await;
    assert!(
        echoed.is_err(),
        "reading the manifests must not look like a change"
    );
}

#[tokio::test]
async fn follows_a_directory_that_is_replaced_or_created_late() {
    let parent = TempDir::new().expect("tempdir");
    let dir = parent.path().join("manifests");
    let mut watch = watch(&dir).expect("watching a directory that does not exist yet");

    write(&dir, "pod.yaml", &pod("web", "v1"));
    expect_change(&mut watch, "the directory was created").await;
    settle(&mut watch).await;

    let staged = parent.path().join("staged");
    write(&staged, "pod.yaml", &pod("web", "v2"));
    fs::rename(&dir, parent.path().join("old")).expect("move old away");
    fs::rename(&staged, &dir).expect("move new in");
    expect_change(&mut watch, "the directory was replaced").await;
    settle(&mut watch).await;

    write(&dir, "pod.yaml", &pod("web", "v3"));
    expect_change(&mut watch, "a change inside the replacement").await;
    settle(&mut watch).await;

    write(&parent.path().join("old"), "pod.yaml", &pod("web", "v4"));
    write(parent.path(), "sibling.yaml", &pod("web", "v4"));
    let stray = timeout(Duration::from_millis(300), watch.changed()).await;
    assert!(
        stray.is_err(),
        "changes outside the directory are not its changes"
    );
}

/// kubelet updates a ConfigMap volume by writing a new hidden directory and
/// swapping the `..data` symlink to it.
#[tokio::test]
async fn notifies_when_a_configmap_volume_is_updated() {
    use std::os::unix::fs::symlink;
    let dir = TempDir::new().expect("tempdir");
    write(dir.path(), "..v1/pod.yaml", &pod("web", "v1"));
    symlink("..v1", dir.path().join("..data")).expect("link data");
    symlink("..data/pod.yaml", dir.path().join("pod.yaml")).expect("link file");
    let mut store = ManifestStore::default();
    store.reload(dir.path());
    let mut watch = watch(dir.path()).expect("watch");
    settle(&mut watch).await;

    write(dir.path(), "..v2/pod.yaml", &pod("web", "v2"));
    symlink("..v2", dir.path().join("..data_tmp")).expect("link staged data");
    fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).expect("swap");
    fs::remove_dir_all(dir.path().join("..v1")).expect("remove old data");
    expect_change(&mut watch, "the ..data swap").await;
    assert!(store.reload(dir.path()).changed);
    let labels = store.snapshot().pods[0]
        .metadata
        .labels
        .clone()
        .expect("labels");
    assert_eq!(labels.get("app").map(String::as_str), Some("v2"));
}
