use std::fs;
use std::io::Write as _;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::time::{sleep, timeout};

use super::{names, pod, write};
use crate::sources::manifests::watch::ManifestWatch;
use crate::sources::manifests::{ManifestStore, check_dir, watch};

/// The promise to the user: a saved change is enforced within a second.
const WITHIN: Duration = Duration::from_secs(1);

/// Waits for the notification of a step that began at `began`; returns how
/// long after `began` it came.
async fn expect_change(watch: &mut ManifestWatch, after: &str, began: Instant) -> Duration {
    match timeout(WITHIN, watch.changed()).await {
        // The policy implementation delay starts at the step's first event.
        Ok(Some(seen_at)) => {
            assert!(
                seen_at >= began,
                "the change after {after} dates from before it"
            );
            began.elapsed()
        }
        Ok(None) => panic!("watch stopped after {after}"),
        Err(_) => panic!("no notification within {WITHIN:?} after {after}"),
    }
}

/// Fails if a notification comes within `window`.
async fn expect_none_within(watch: &mut ManifestWatch, window: Duration, while_: &str) {
    let early = timeout(window, watch.changed()).await;
    assert!(early.is_err(), "notified while {while_}");
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

    let began = Instant::now();
    write(dir.path(), "sub/pod.yaml", &pod("web", "v1"));
    expect_change(&mut watch, "create", began).await;
    assert!(store.reload(dir.path()).changed);
    assert_eq!(names(&store), ["Pod shop/web"]);
    settle(&mut watch).await;

    let began = Instant::now();
    write(dir.path(), "sub/pod.yaml", &pod("web", "v2"));
    expect_change(
        &mut watch,
        "modify in a subdirectory created after the watch began",
        began,
    )
    .await;
    settle(&mut watch).await;

    // How vim and most editors save: write a temporary file, rename it over.
    write(dir.path(), ".pod.yaml.tmp", &pod("api", "v1"));
    expect_none_within(
        &mut watch,
        Duration::from_millis(300),
        "a hidden file was written",
    )
    .await;
    let began = Instant::now();
    fs::rename(
        dir.path().join(".pod.yaml.tmp"),
        dir.path().join("api.yaml"),
    )
    .expect("rename");
    expect_change(&mut watch, "rename over", began).await;
    settle(&mut watch).await;

    let began = Instant::now();
    fs::remove_file(dir.path().join("sub/pod.yaml")).expect("remove");
    expect_change(&mut watch, "delete", began).await;
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

    let began = Instant::now();
    write(&dir, "pod.yaml", &pod("web", "v1"));
    expect_change(&mut watch, "the directory was created", began).await;
    settle(&mut watch).await;

    let staged = parent.path().join("staged");
    write(&staged, "pod.yaml", &pod("web", "v2"));
    let began = Instant::now();
    fs::rename(&dir, parent.path().join("old")).expect("move old away");
    fs::rename(&staged, &dir).expect("move new in");
    expect_change(&mut watch, "the directory was replaced", began).await;
    settle(&mut watch).await;

    let began = Instant::now();
    write(&dir, "pod.yaml", &pod("web", "v3"));
    expect_change(&mut watch, "a change inside the replacement", began).await;
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

    let began = Instant::now();
    write(dir.path(), "..v2/pod.yaml", &pod("web", "v2"));
    symlink("..v2", dir.path().join("..data_tmp")).expect("link staged data");
    fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).expect("swap");
    fs::remove_dir_all(dir.path().join("..v1")).expect("remove old data");
    expect_change(&mut watch, "the ..data swap", began).await;
    assert!(store.reload(dir.path()).changed);
    let labels = store.snapshot().pods[0]
        .metadata
        .labels
        .clone()
        .expect("labels");
    assert_eq!(labels.get("app").map(String::as_str), Some("v2"));
}

/// The quiet period a burst that leaves a file half written waits for.
const QUIET: Duration = Duration::from_millis(50);

/// A manifest renamed into place is whole: it is read at once, not after
/// a quiet period (the least of three, so that one stall of a loaded
/// machine does not fail the test).
#[tokio::test]
async fn a_file_renamed_into_place_is_notified_at_once() {
    let dir = TempDir::new().expect("tempdir");
    let mut watch = watch(dir.path()).expect("watch");
    let mut fastest = Duration::MAX;
    for version in ["v1", "v2", "v3"] {
        write(dir.path(), ".pod.yaml.tmp", &pod("web", version));
        let began = Instant::now();
        fs::rename(
            dir.path().join(".pod.yaml.tmp"),
            dir.path().join("pod.yaml"),
        )
        .expect("rename");
        fastest = fastest.min(expect_change(&mut watch, "a rename", began).await);
        settle(&mut watch).await;
    }
    assert!(fastest < QUIET, "notified {fastest:?} after the rename");
}

/// A file written in pieces is read only once it is closed: a half of a
/// policy can parse as a policy that allows more.
#[tokio::test]
async fn a_file_still_being_written_is_not_read_until_closed() {
    let dir = TempDir::new().expect("tempdir");
    let mut watch = watch(dir.path()).expect("watch");
    let whole = pod("web", "v1");
    let (first, rest) = whole.split_at(whole.len() / 2);
    let began = Instant::now();
    let mut file = fs::File::create(dir.path().join("pod.yaml")).expect("create");
    file.write_all(first.as_bytes()).expect("write");
    file.sync_all().expect("sync");
    expect_none_within(&mut watch, QUIET / 2, "the file was half written").await;
    file.write_all(rest.as_bytes()).expect("write");
    drop(file);
    expect_change(&mut watch, "the file was closed", began).await;
    let mut store = ManifestStore::default();
    let reload = store.reload(dir.path());
    assert!(reload.problems.is_empty(), "{:?}", reload.problems);
    assert_eq!(names(&store), ["Pod shop/web"]);
}

/// How vim saves by default: the file is renamed to a backup, written
/// anew, and the backup removed. The file is never read missing.
#[tokio::test]
async fn a_file_renamed_away_is_waited_for_before_it_is_read_missing() {
    let dir = TempDir::new().expect("tempdir");
    write(dir.path(), "pod.yaml", &pod("web", "v1"));
    let mut watch = watch(dir.path()).expect("watch");
    settle(&mut watch).await;
    let began = Instant::now();
    fs::rename(dir.path().join("pod.yaml"), dir.path().join("pod.yaml~")).expect("backup");
    expect_none_within(&mut watch, QUIET / 2, "the file was renamed away").await;
    fs::write(dir.path().join("pod.yaml"), pod("web", "v2")).expect("write anew");
    fs::remove_file(dir.path().join("pod.yaml~")).expect("remove backup");
    expect_change(&mut watch, "the file was written anew", began).await;
    let mut store = ManifestStore::default();
    store.reload(dir.path());
    assert_eq!(names(&store), ["Pod shop/web"]);
}
