//! `crdgen` writes the CRDs and, with `--check`, fails naming each file that is stale.

use std::path::Path;
use std::process::{Command, Output};

fn crdgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crdgen"))
        .args(args)
        .output()
        .expect("crdgen runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const FILES: [&str; 4] = [
    "clusternetworkpolicies.policy.networking.k8s.io.yaml",
    "segments.netseg.dev.yaml",
    "segmentpolicies.netseg.dev.yaml",
    "netsegnodes.netseg.dev.yaml",
];

#[test]
fn committed_crds_are_what_the_types_generate() {
    let output = crdgen(&["--check"]);
    assert!(
        output.status.success(),
        "deploy/crds is stale:\n{}",
        stderr(&output)
    );
}

#[test]
fn check_names_the_files_that_differ_or_are_missing() {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    assert!(crdgen(&["--dir", dir_arg]).status.success());
    for file in FILES {
        assert!(dir.path().join(file).is_file(), "{file} not written");
    }
    assert!(crdgen(&["--check", "--dir", dir_arg]).status.success());

    let segments = dir.path().join("segments.netseg.dev.yaml");
    let edited = std::fs::read_to_string(&segments)
        .unwrap()
        .replace("maxItems: 25", "maxItems: 26");
    std::fs::write(&segments, edited).unwrap();
    std::fs::remove_file(dir.path().join("segmentpolicies.netseg.dev.yaml")).unwrap();

    let output = crdgen(&["--check", "--dir", dir_arg]);
    assert!(!output.status.success(), "check passed on edited files");
    let report = stderr(&output);
    let line_for = |file: &str| {
        report
            .lines()
            .find(|l| l.contains(&*Path::new(dir_arg).join(file).to_string_lossy()))
            .map(str::to_owned)
    };
    assert!(
        line_for("segments.netseg.dev.yaml").is_some_and(|l| l.contains("differs")),
        "{report}"
    );
    assert!(
        line_for("segmentpolicies.netseg.dev.yaml").is_some_and(|l| l.contains("missing")),
        "{report}"
    );
    assert!(
        line_for(FILES[0]).is_none(),
        "an unchanged file was reported:\n{report}"
    );
}
