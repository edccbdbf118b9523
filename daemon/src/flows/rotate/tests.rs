//! Rotation by size, file by file.

use super::*;

fn contents(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("read the directory")
        .map(|entry| {
            let path = entry.expect("an entry").path();
            let name = path.file_name().expect("a name").to_string_lossy().into();
            (name, std::fs::read_to_string(&path).expect("read a file"))
        })
        .collect();
    files.sort();
    files
}

fn write_lines(log: &mut RotatingFile, lines: &[&str]) {
    for line in lines {
        log.write_all(line.as_bytes()).expect("write");
    }
}

#[test]
fn rotates_at_the_limit_and_keeps_the_newest_files() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("flows.jsonl");
    let rotation = Rotation {
        max_bytes: 10,
        keep: 2,
    };
    let mut log = RotatingFile::open(&path, rotation).expect("open");
    write_lines(
        &mut log,
        &["a1\n", "a2\n", "a3\n", "b1\n", "b2\n", "c1\n", "d1\n"],
    );
    assert_eq!(
        contents(dir.path()),
        [
            ("flows.jsonl".into(), "d1\n".into()),
            ("flows.jsonl.1".into(), "b1\nb2\nc1\n".into()),
            ("flows.jsonl.2".into(), "a1\na2\na3\n".into()),
        ]
    );
    write_lines(&mut log, &["d2\n", "d3\n", "e1\n"]);
    // a* went: only two old files stay.
    assert_eq!(
        contents(dir.path()),
        [
            ("flows.jsonl".into(), "e1\n".into()),
            ("flows.jsonl.1".into(), "d1\nd2\nd3\n".into()),
            ("flows.jsonl.2".into(), "b1\nb2\nc1\n".into()),
        ]
    );
}

#[test]
fn one_write_of_many_lines_is_split_between_lines() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("flows.jsonl");
    let rotation = Rotation {
        max_bytes: 10,
        keep: 3,
    };
    let mut log = RotatingFile::open(&path, rotation).expect("open");
    write_lines(&mut log, &["a1\na2\na3\nb1\nb2\nb3\nc1\n"]);
    assert_eq!(
        contents(dir.path()),
        [
            ("flows.jsonl".into(), "c1\n".into()),
            ("flows.jsonl.1".into(), "b1\nb2\nb3\n".into()),
            ("flows.jsonl.2".into(), "a1\na2\na3\n".into()),
        ]
    );
}

#[test]
fn an_existing_file_counts_and_keep_zero_only_truncates() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("flows.jsonl");
    std::fs::write(&path, "old old\n").expect("an earlier log");
    let rotation = Rotation {
        max_bytes: 10,
        keep: 0,
    };
    let mut log = RotatingFile::open(&path, rotation).expect("open");
    write_lines(&mut log, &["n1\n", "n2\n"]);
    assert_eq!(
        contents(dir.path()),
        [("flows.jsonl".into(), "n1\nn2\n".into())]
    );
}

#[test]
fn a_write_larger_than_the_limit_stays_whole() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("flows.jsonl");
    let rotation = Rotation {
        max_bytes: 4,
        keep: 1,
    };
    let mut log = RotatingFile::open(&path, rotation).expect("open");
    write_lines(&mut log, &["a long record\n", "next\n"]);
    assert_eq!(
        contents(dir.path()),
        [
            ("flows.jsonl".into(), "next\n".into()),
            ("flows.jsonl.1".into(), "a long record\n".into()),
        ]
    );
}
