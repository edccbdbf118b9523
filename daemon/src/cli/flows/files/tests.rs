use std::{fs::OpenOptions, io::Write};

use super::*;
use crate::flows::{RotatingFile, Rotation};

fn names(files: &[PathBuf]) -> Vec<String> {
    let name = |path: &PathBuf| path.file_name().expect("a name").to_string_lossy().into();
    files.iter().map(name).collect()
}

fn append(path: &Path, text: &str) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for appending");
    file.write_all(text.as_bytes()).expect("append");
}

/// The lines `poll` gives, as `number:text`.
fn lines_of(poll: impl FnOnce(&mut LineSink<'_>) -> io::Result<()>) -> Vec<String> {
    let mut lines = Vec::new();
    poll(&mut |line: Line<'_>| {
        lines.push(format!("{}:{}", line.number, line.text));
        Ok(())
    })
    .expect("read");
    lines
}

#[test]
fn the_rotated_files_come_first_oldest_first() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for name in [
        "flows.jsonl",
        "flows.jsonl.1",
        "flows.jsonl.2",
        "flows.jsonl.10",
        "flows.jsonl.bak",
        "flows.jsonl.1.gz",
        "other.jsonl.3",
    ] {
        append(&dir.path().join(name), "");
    }
    let files = log_files(&dir.path().join("flows.jsonl")).expect("listed");
    assert_eq!(
        names(&files),
        [
            "flows.jsonl.10",
            "flows.jsonl.2",
            "flows.jsonl.1",
            "flows.jsonl"
        ]
    );
}

#[test]
fn a_line_is_given_once_its_newline_is_written() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("flows.jsonl");
    append(&path, "a\nb");
    let mut reader = LogReader::open(&path).expect("open");
    assert_eq!(lines_of(|each| reader.read_lines(each)), ["1:a"]);
    append(&path, "c\nd");
    assert_eq!(lines_of(|each| reader.read_lines(each)), ["2:bc"]);
    // At the end of a file that is not followed, the last line needs no newline.
    assert_eq!(lines_of(|each| reader.read_to_end(each)), ["3:d"]);
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("nowhere.jsonl");
    let error = LogReader::open(&path).err().expect("no such file");
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}: ", path.display())),
        "{error}"
    );
}

#[test]
fn following_goes_on_into_the_new_file_after_a_rotation() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("flows.jsonl");
    // Two 8-byte lines a file.
    let rotation = Rotation {
        max_bytes: 20,
        keep: 1,
    };
    let mut log = RotatingFile::open(&path, rotation).expect("open the log");
    log.write_all(b"line-01\n").expect("write");
    let mut follower = Follower::new(LogReader::open(&path).expect("open"));
    assert_eq!(lines_of(|each| follower.poll(each)), ["1:line-01"]);
    assert_eq!(lines_of(|each| follower.poll(each)), [] as [&str; 0]);
    // line-03 rotates: line-02 is read from the old file, then the new file.
    log.write_all(b"line-02\nline-03\nline-04\n")
        .expect("write");
    assert_eq!(
        lines_of(|each| follower.poll(each)),
        ["2:line-02", "1:line-03", "2:line-04"]
    );
    log.write_all(b"line-05\n").expect("write");
    assert_eq!(lines_of(|each| follower.poll(each)), ["1:line-05"]);
    assert_eq!(
        names(&log_files(&path).expect("listed")),
        ["flows.jsonl.1", "flows.jsonl"]
    );
}

#[test]
fn following_starts_over_when_the_file_is_truncated() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("flows.jsonl");
    append(&path, "one\ntwo\n");
    let mut follower = Follower::new(LogReader::open(&path).expect("open"));
    assert_eq!(lines_of(|each| follower.poll(each)), ["1:one", "2:two"]);
    std::fs::write(&path, "new\n").expect("truncate and write");
    assert_eq!(lines_of(|each| follower.poll(each)), ["1:new"]);
}
