//! The SBOM names every crate Cargo.lock locks, at its locked version, with
//! its licence and (for crates.io crates) the checksum cargo verified.

use std::collections::BTreeMap;
use std::path::Path;

use netseg_sbom::{read_lock, workspace_sbom};
use serde_json::Value;

fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn every_locked_crate_appears_with_its_version_licence_and_checksum() {
    let sbom = workspace_sbom(workspace()).expect("the SBOM");
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert_eq!(sbom["specVersion"], "1.5");
    let components: BTreeMap<(&str, &str), &Value> = sbom["components"]
        .as_array()
        .expect("components")
        .iter()
        .map(|c| {
            (
                (c["name"].as_str().unwrap(), c["version"].as_str().unwrap()),
                c,
            )
        })
        .collect();
    let lock = std::fs::read_to_string(workspace().join("Cargo.lock")).expect("Cargo.lock");
    let locked = read_lock(&lock).expect("Cargo.lock parses");
    assert!(
        locked.len() > 300,
        "{} packages: Cargo.lock misread",
        locked.len()
    );
    for package in &locked {
        let what = format!("{} {}", package.name, package.version);
        let component = components
            .get(&(package.name.as_str(), package.version.as_str()))
            .unwrap_or_else(|| panic!("{what} is locked but not in the SBOM"));
        assert_eq!(
            component["purl"],
            format!("pkg:cargo/{}@{}", package.name, package.version),
            "{what}"
        );
        let licence = component["licenses"][0]["expression"]
            .as_str()
            .unwrap_or("");
        assert!(
            !licence.is_empty() && !licence.contains('/'),
            "{what}: licence {licence:?}"
        );
        match (&package.source, &package.checksum) {
            (Some(source), Some(checksum)) => {
                assert!(source.starts_with("registry+"), "{what}: {source}");
                assert_eq!(component["hashes"][0]["content"], *checksum, "{what}");
            }
            (None, None) => assert!(component.get("hashes").is_none(), "{what}"),
            _ => panic!("{what}: a source without a checksum or the reverse"),
        }
    }
    assert_eq!(
        components.len(),
        locked.len(),
        "nothing in the SBOM that is not locked"
    );
}

#[test]
fn every_dependency_edge_names_a_component() {
    let sbom = workspace_sbom(workspace()).expect("the SBOM");
    let refs: Vec<&str> = sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["bom-ref"].as_str().unwrap())
        .collect();
    let daemon = sbom["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["ref"] == "pkg:cargo/netseg@0.1.0")
        .expect("the daemon's dependencies");
    let on: Vec<&str> = daemon["dependsOn"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(on.iter().any(|r| r.starts_with("pkg:cargo/aya@")), "{on:?}");
    for edge in sbom["dependencies"].as_array().unwrap() {
        for target in edge["dependsOn"].as_array().unwrap() {
            assert!(refs.contains(&target.as_str().unwrap()), "{target}");
        }
    }
}

#[test]
fn old_style_licences_become_spdx_expressions() {
    assert_eq!(
        netseg_sbom::spdx_expression("MIT/Apache-2.0"),
        "MIT OR Apache-2.0"
    );
    assert_eq!(
        netseg_sbom::spdx_expression("Apache-2.0 / MIT"),
        "Apache-2.0 OR MIT"
    );
    assert_eq!(
        netseg_sbom::spdx_expression("MIT OR Apache-2.0"),
        "MIT OR Apache-2.0"
    );
}
