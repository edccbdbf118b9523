//! The enforcer driven without root: updates in, what the maps hold out.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use netseg_policy::{CompileOptions, Snapshot};

use super::Enforcer;
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
/// ipcache and policy tables).
fn publish(enforcer: &mut Enforcer<MemoryMaps>) {
    let compiled = enforcer.compiled(&mut CniRegistry::default());
    let desired = SlotState {
        endpoints: Default::default(),
        ipcache: compiled.ipcache.clone(),
        policy: compiled.policy.clone(),
    };
    enforcer.publish(&desired);
}

fn synced(changed: bool) -> Update {
    Update {
        changed,
        synced: true,
        ..Update::default()
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
    publish(&mut enforcer);
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
    publish(&mut enforcer);
    assert_eq!(
        (enforcer.compilations, enforcer.revision()),
        (compilations, revision)
    );
}
