//! How YAML itself is read: YAML 1.2 scalars, merge keys, duplicate keys and
//! empty documents, as users of the manifests directory see them.

use std::collections::BTreeMap;

use tempfile::TempDir;

use super::{lines, names, write};
use crate::sources::manifests::{ManifestStore, check_dir};

#[test]
fn scalars_are_yaml_1_2_and_merge_keys_expand() {
    let dir = TempDir::new().expect("tempdir");
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: shop\n\
                \x20 annotations: &common {team: yes}\n  labels:\n    <<: *common\n    app: on\n    mode: 0755\n\
                spec:\n  containers:\n    - name: main\n      image: example\n";
    write(dir.path(), "web.yaml", text);
    let mut store = ManifestStore::default();
    let reload = store.reload(dir.path());
    assert_eq!(lines(&reload.problems), Vec::<String>::new());
    let snapshot = store.snapshot();
    let [pod] = snapshot.pods.as_slice() else {
        panic!("one pod expected: {:?}", names(&store));
    };
    let labels: BTreeMap<&str, &str> = pod
        .metadata
        .labels
        .as_ref()
        .expect("labels")
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    assert_eq!(
        labels,
        BTreeMap::from([("app", "on"), ("mode", "0755"), ("team", "yes")])
    );
}

#[test]
fn a_duplicate_key_is_invalid_yaml_naming_the_file_key_and_line() {
    let dir = TempDir::new().expect("tempdir");
    let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  name: b\n";
    let file = write(dir.path(), "ns.yaml", text);
    assert_eq!(
        lines(&check_dir(dir.path())),
        [format!(
            "{}: invalid YAML: duplicate mapping key `name` is not allowed here at line 5, column 3",
            file.display()
        )]
    );
}

#[test]
fn documents_that_hold_nothing_are_not_counted_in_positions() {
    let dir = TempDir::new().expect("tempdir");
    let text = "---\n# only a comment\n---\n---\nkind: Pod\n---\n- a list\n";
    let file = write(dir.path(), "x.yaml", text);
    let file = file.display();
    assert_eq!(
        lines(&check_dir(dir.path())),
        [
            format!("{file}: document 1: apiVersion: is required"),
            format!("{file}: document 2: is not a mapping"),
        ]
    );
}
