//! Shared by the schema tests: the generated schema of each kind, and objects of it.

use std::collections::BTreeMap;

use netseg_crd::crd_manifests;
use serde_json::{Value, json};

/// The `openAPIV3Schema` of one kind's generated CRD, and its apiVersion.
pub struct KindSchema {
    pub api_version: String,
    pub schema: Value,
}

impl KindSchema {
    /// An object of this kind named `case` with the given spec.
    pub fn object(&self, kind: &str, spec: &Value) -> Value {
        json!({"apiVersion": self.api_version, "kind": kind, "metadata": {"name": "case"}, "spec": spec})
    }
}

/// Every generated kind's schema, by kind.
pub fn kind_schemas() -> BTreeMap<String, KindSchema> {
    let mut kinds = BTreeMap::new();
    for manifest in crd_manifests() {
        let spec = manifest.definition.spec;
        let version = &spec.versions[0];
        let schema = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref());
        let schema = serde_json::to_value(schema.expect("every CRD has a schema")).unwrap();
        let api_version = format!("{}/{}", spec.group, version.name);
        kinds.insert(
            spec.names.kind,
            KindSchema {
                api_version,
                schema,
            },
        );
    }
    kinds
}

/// The manifests under tests/manifests, as (file name, manifest).
pub fn example_manifests() -> Vec<(String, Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/manifests");
    let files = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path());
    files
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, serde_saphyr::from_str(&text).unwrap())
        })
        .collect()
}
