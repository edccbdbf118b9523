use std::{fs, path::Path};

use serde_json::{Value, json};

use super::{InstallError, active_config, chain_into, install_binary};

/// A conflist as Calico's installer writes it.
const CALICO: &str = r#"{
  "name": "k8s-pod-network",
  "cniVersion": "1.0.0",
  "plugins": [
    { "type": "calico", "ipam": { "type": "calico-ipam" } },
    { "type": "portmap", "snat": true, "capabilities": { "portMappings": true } }
  ]
}"#;

fn plugins(path: &Path) -> Vec<Value> {
    let conflist: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    conflist["plugins"].as_array().unwrap().clone()
}

#[test]
fn the_entry_goes_last_in_the_conflist_the_runtime_uses_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("10-calico.conflist"), CALICO).unwrap();
    fs::write(dir.path().join("99-loopback.conf"), "{}").unwrap();
    fs::write(dir.path().join("README"), "not a config").unwrap();
    let config = active_config(dir.path()).unwrap();
    assert_eq!(config, dir.path().join("10-calico.conflist"));
    let socket = Path::new("/run/netseg/cni.sock");
    assert!(chain_into(&config, socket).unwrap());
    assert!(
        !chain_into(&config, socket).unwrap(),
        "a second run changes nothing"
    );
    let plugins = plugins(&config);
    assert_eq!(plugins.len(), 3);
    assert_eq!(plugins[0]["type"], "calico", "the main plugin stays first");
    assert_eq!(plugins[1]["ipam"], Value::Null);
    assert_eq!(
        plugins[2],
        json!({ "type": "netseg-cni", "socket": "/run/netseg/cni.sock" })
    );
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name.to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_changed_socket_updates_the_existing_entry() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("05-cilium.conflist");
    fs::write(&config, CALICO).unwrap();
    chain_into(&config, Path::new("/run/netseg/cni.sock")).unwrap();
    assert!(chain_into(&config, Path::new("/var/run/netseg.sock")).unwrap());
    let plugins = plugins(&config);
    assert_eq!(plugins.len(), 3);
    assert_eq!(plugins[2]["socket"], "/var/run/netseg.sock");
}

#[test]
fn a_single_plugin_conf_or_an_empty_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        active_config(dir.path()),
        Err(InstallError::NoConflist { .. })
    ));
    let conf = dir.path().join("10-bridge.conf");
    let single = r#"{ "cniVersion": "1.0.0", "name": "b", "type": "bridge" }"#;
    fs::write(&conf, single).unwrap();
    let error = chain_into(&active_config(dir.path()).unwrap(), Path::new("/s")).unwrap_err();
    assert!(
        matches!(error, InstallError::NotAConflist { .. }),
        "{error}"
    );
    assert_eq!(fs::read_to_string(&conf).unwrap(), single, "left as it was");
}

#[test]
fn the_binary_is_replaced_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("build");
    fs::write(&source, "new").unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    fs::write(bin.join("netseg-cni"), "old").unwrap();
    let installed = install_binary(&source, &bin).unwrap();
    assert_eq!(fs::read_to_string(installed).unwrap(), "new");
    assert_eq!(fs::read_dir(&bin).unwrap().count(), 1);
}
