//! The enforcer driven without root: updates in, what the maps hold out.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnetwork::IpNetwork;
use netseg_policy::{CompileOptions, Snapshot};
use serde_json::json;

use super::{ChangeStages, Enforcer};
use crate::cni::CniRegistry;
use crate::datapath::publish::memory::MemoryMaps;
use crate::datapath::state::SlotState;
use crate::sources::Update;
use crate::sources::kube::KubeSource;
use crate::sources::kube::tests::fake_api::{NODE, client, cluster, lists, pod, until};

fn enforcer(maps: MemoryMaps) -> Enforcer<MemoryMaps> {
    let options = CompileOptions {
        node_name: NODE.into(),
        ..CompileOptions::default()
    };
    Enforcer::new(maps, options, "the test source to sync")
}

/// Compiles and publishes what the enforcer holds (no interfaces: the
/// ipcache and policy tables); the implementation delay, if it published a
/// change of the source.
fn publish(enforcer: &mut Enforcer<MemoryMaps>) -> Option<Duration> {
    publish_in_stages(enforcer).map(|stages| stages.total)
}

fn publish_in_stages(enforcer: &mut Enforcer<MemoryMaps>) -> Option<ChangeStages> {
    let compiled = enforcer.compiled(&mut CniRegistry::default());
    let desired = SlotState {
        endpoints: Default::default(),
        ipcache: compiled.ipcache.clone(),
        policy: compiled.policy.clone(),
    };
    enforcer.publish(&desired)
}

fn synced(changed: bool) -> Update {
    Update {
        changed,
        synced: true,
        ..Update::default()
    }
}

/// `update`, as a source that saw its change `ago`.
fn seen(update: Update, ago: Duration) -> Update {
    Update {
        seen_at: Some(Instant::now() - ago),
        ..update
    }
}

/// Namespace `shop` with pod `shop/db` of another node at `ip`: a peer
/// address in the ipcache.
fn peer_at(ip: &str) -> Snapshot {
    fn object<K: serde::de::DeserializeOwned>(value: serde_json::Value) -> Arc<K> {
        Arc::new(serde_json::from_value(value).expect("a valid object"))
    }
    Snapshot {
        namespaces: vec![object(json!({"metadata": {"name": "shop"}}))],
        pods: vec![object(pod("db", "node-2", ip))],
        ..Snapshot::default()
    }
}

fn published_addresses(enforcer: &Enforcer<MemoryMaps>) -> Vec<IpAddr> {
    enforcer
        .writer()
        .active()
        .ipcache
        .keys()
        .filter(|prefix| prefix.prefix() == 32)
        .map(IpNetwork::ip)
        .collect()
}

#[test]
fn the_daemon_waits_for_a_synced_source_then_for_a_publication_that_succeeds() {
    let mut enforcer = enforcer(MemoryMaps {
        fail_after: Some(0),
        ..MemoryMaps::default()
    });
    enforcer.take_update(Update::default(), Snapshot::default);
    publish(&mut enforcer);
    assert_eq!(enforcer.waits_for(), Some("the test source to sync"));
    enforcer.take_update(synced(false), Snapshot::default);
    publish(&mut enforcer);
    assert_eq!(
        enforcer.waits_for(),
        Some("a successful publication"),
        "a full map leaves nothing of ours to take over with"
    );
    assert_eq!(enforcer.revision(), 0);
    assert!(enforcer.problems().any(|p| p.contains("map full")));
}

#[test]
fn an_update_that_changes_nothing_compiles_nothing() {
    let mut enforcer = enforcer(MemoryMaps::default());
    enforcer.take_update(synced(true), Snapshot::default);
    publish(&mut enforcer);
    assert_eq!(enforcer.waits_for(), None);
    let (compilations, revision) = (enforcer.compilations, enforcer.revision());
    enforcer.take_update(synced(false), || panic!("no snapshot is needed"));
    publish(&mut enforcer);
    assert_eq!(enforcer.compilations, compilations);
    assert_eq!(enforcer.revision(), revision, "nothing new to publish");
}

#[tokio::test]
async fn the_api_server_drives_what_is_published() {
    let api = cluster();
    let mut source = KubeSource::start(client(&api), NODE);
    let mut enforcer = enforcer(MemoryMaps::default());
    let update = until(&mut source, |u| u.synced).await;
    enforcer.take_update(update, || source.snapshot());
    publish(&mut enforcer);
    assert_eq!(enforcer.waits_for(), None);
    let web: IpAddr = "10.0.0.1".parse().unwrap();
    let db: IpAddr = "10.0.1.1".parse().unwrap();
    let addresses = published_addresses(&enforcer);
    assert!(
        addresses.contains(&web) && addresses.contains(&db),
        "{addresses:?}"
    );

    api.delete("v1", "Pod", Some("shop"), "db").expect("a pod");
    api.apply(pod("cache", "node-2", "10.0.1.2"))
        .expect("a pod");
    let update = until(&mut source, |u| u.changed).await;
    enforcer.take_update(update, || source.snapshot());
    assert!(
        publish(&mut enforcer).is_some(),
        "a change the watches saw is timed to its publication"
    );
    let addresses = published_addresses(&enforcer);
    assert!(
        !addresses.contains(&db),
        "a deleted pod's address is no peer: {addresses:?}"
    );

    // A relist of the same objects: nothing recompiled, nothing written.
    let (compilations, revision) = (enforcer.compilations, enforcer.revision());
    let before = lists(&api);
    api.expire_watches();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while lists(&api) < before + 8 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "every watch relists"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let update = source.update();
    assert!(!update.changed);
    enforcer.take_update(update, || source.snapshot());
    assert_eq!(publish(&mut enforcer), None, "no change, no sample");
    assert_eq!(
        (enforcer.compilations, enforcer.revision()),
        (compilations, revision)
    );
}

#[test]
fn a_published_change_is_one_delay_sample_from_when_the_source_saw_it() {
    let mut enforcer = enforcer(MemoryMaps::default());
    enforcer.take_update(seen(synced(true), Duration::ZERO), Snapshot::default);
    assert_eq!(
        publish(&mut enforcer),
        None,
        "the first whole read is the daemon starting, not a change"
    );
    let ago = Duration::from_millis(300);
    enforcer.take_update(seen(synced(true), ago), || peer_at("10.0.1.1"));
    let delay = publish(&mut enforcer).expect("a change published is timed");
    assert!(
        delay >= ago && delay < ago + Duration::from_secs(5),
        "{delay:?}"
    );
    assert!(published_addresses(&enforcer).contains(&"10.0.1.1".parse().unwrap()));
    assert_eq!(publish(&mut enforcer), None, "one change, one sample");
}

#[test]
fn the_stages_of_a_change_add_up_to_its_delay_and_name_its_revision() {
    let mut enforcer = enforcer(MemoryMaps::default());
    enforcer.take_update(synced(true), Snapshot::default);
    publish(&mut enforcer);
    let ago = Duration::from_millis(300);
    let taken = Update {
        taken_at: Some(Instant::now() - Duration::from_millis(100)),
        ..seen(synced(true), ago)
    };
    enforcer.take_update(taken, || peer_at("10.0.1.1"));
    let stages = publish_in_stages(&mut enforcer).expect("a change published is timed");
    let sum: Duration = stages.named().iter().map(|(_, took)| *took).sum();
    assert_eq!(sum, stages.total, "{stages}");
    assert!(stages.total >= ago, "{stages}");
    assert!(
        stages.settle >= Duration::from_millis(195) && stages.settle <= Duration::from_millis(205),
        "seen 300 ms ago, read from 100 ms ago: {stages}"
    );
    assert!(stages.read >= Duration::from_millis(100), "{stages}");
    assert_eq!(stages.revision, enforcer.revision());
}

#[test]
fn a_change_whose_publication_failed_is_timed_from_when_it_was_seen_until_one_succeeds() {
    let mut enforcer = enforcer(MemoryMaps::default());
    enforcer.take_update(synced(true), Snapshot::default);
    publish(&mut enforcer);
    let ago = Duration::from_millis(300);
    enforcer.take_update(seen(synced(true), ago), || peer_at("10.0.1.1"));
    let writes = enforcer.writer().writes;
    enforcer.writer_mut().fail_after = Some(writes);
    assert_eq!(publish(&mut enforcer), None, "nothing published, no sample");
    enforcer.writer_mut().fail_after = None;
    let stages = publish_in_stages(&mut enforcer).expect("published at last");
    let sum: Duration = stages.named().iter().map(|(_, took)| *took).sum();
    assert_eq!(sum, stages.total, "{stages}");
    assert!(stages.total >= ago, "{stages}");
}

#[test]
fn a_change_that_compiles_to_what_is_published_is_no_sample() {
    let mut enforcer = enforcer(MemoryMaps::default());
    enforcer.take_update(synced(true), || peer_at("10.0.1.1"));
    publish(&mut enforcer);
    let revision = enforcer.revision();
    // The objects changed (a label nothing selects, say) but compile the same.
    enforcer.take_update(seen(synced(true), Duration::ZERO), || peer_at("10.0.1.1"));
    assert_eq!(publish(&mut enforcer), None);
    assert_eq!(enforcer.revision(), revision, "nothing new to publish");
    // A publication for another cause is not timed from that change.
    enforcer.set_node_addresses(&["192.168.0.1".parse().unwrap()]);
    assert_eq!(publish(&mut enforcer), None);
    assert_ne!(
        enforcer.revision(),
        revision,
        "the node's address is published"
    );
}

#[test]
fn the_tables_count_what_is_published_or_could_not_be() {
    let mut roomy = enforcer(MemoryMaps::default());
    roomy.take_update(synced(true), || peer_at("10.0.1.1"));
    publish(&mut roomy);
    assert_eq!(roomy.tables(), &roomy.writer().active().entries());
    let [_, v4, ..] = roomy.tables();
    assert!(v4.map == "ipcache_v4" && v4.entries > 0, "{v4:?}");

    // A table that fills up: the counts say what the policy needs.
    let mut full = enforcer(MemoryMaps {
        fail_after: Some(0),
        ..MemoryMaps::default()
    });
    full.take_update(synced(true), || peer_at("10.0.1.1"));
    publish(&mut full);
    assert_eq!(full.revision(), 0, "nothing could be written");
    assert_eq!(full.tables(), roomy.tables());
}
