//! Reading a flow log as the daemon leaves it: `FILE` and the rotated
//! `FILE.1` (newest) .. `FILE.N` (oldest), see [`crate::flows::RotatingFile`];
//! and following `FILE` as it grows and rotates, the way `tail -F` does.

use std::{
    fs::File,
    io::{self, BufRead, BufReader},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// The files of the flow log at `path`, oldest first: its rotated files
/// by number, highest first, then `path` itself.
pub fn log_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{} names no file", path.display())))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut rotated: Vec<(u32, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let number = file_name
            .to_str()
            .and_then(|file_name| file_name.strip_prefix(&prefix))
            .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse().ok());
        if let Some(number) = number {
            rotated.push((number, entry.path()));
        }
    }
    rotated.sort_by_key(|(number, _)| std::cmp::Reverse(*number));
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, path)| path).collect();
    files.push(path.to_owned());
    Ok(files)
}

/// One line of a log file.
pub struct Line<'a> {
    pub path: &'a Path,
    /// From 1.
    pub number: u64,
    pub text: &'a str,
}

/// What gets each line read.
pub type LineSink<'s> = dyn FnMut(Line<'_>) -> io::Result<()> + 's;

/// One file of the log, read a whole line at a time as it grows.
pub struct LogReader {
    path: PathBuf,
    reader: BufReader<File>,
    /// The file's device and inode, to notice when its name moves on.
    identity: (u64, u64),
    /// Bytes taken from the file, the partial line included.
    position: u64,
    lines: u64,
    /// The start of a line whose end is not written yet.
    partial: Vec<u8>,
}

impl LogReader {
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path).map_err(|error| {
            io::Error::new(error.kind(), format!("{}: {error}", path.display()))
        })?;
        let metadata = file.metadata()?;
        Ok(Self {
            path: path.to_owned(),
            reader: BufReader::new(file),
            identity: (metadata.dev(), metadata.ino()),
            position: 0,
            lines: 0,
            partial: Vec::new(),
        })
    }

    /// Gives `each` every whole line written since the last call.
    pub fn read_lines(&mut self, each: &mut LineSink<'_>) -> io::Result<()> {
        loop {
            let read = self.reader.read_until(b'\n', &mut self.partial)?;
            self.position += read as u64;
            if self.partial.last() != Some(&b'\n') {
                return Ok(());
            }
            self.partial.pop();
            self.give_partial(each)?;
        }
    }

    /// Reads to the end; a last line without its newline counts as a line.
    pub fn read_to_end(&mut self, each: &mut LineSink<'_>) -> io::Result<()> {
        self.read_lines(each)?;
        match self.partial.is_empty() {
            true => Ok(()),
            false => self.give_partial(each),
        }
    }

    fn give_partial(&mut self, each: &mut LineSink<'_>) -> io::Result<()> {
        self.lines += 1;
        let text = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        each(Line {
            path: &self.path,
            number: self.lines,
            text: &text,
        })
    }

    /// Whether its path names another file now (the log rotated) or a
    /// shorter one (it was truncated). A missing file (between the
    /// rotation's rename and the new file) is not yet another.
    fn replaced(&self) -> io::Result<bool> {
        match std::fs::metadata(&self.path) {
            Ok(now) => Ok((now.dev(), now.ino()) != self.identity || now.len() < self.position),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(error),
        }
    }
}

/// `FILE` followed across rotations.
pub struct Follower {
    reader: LogReader,
}

impl Follower {
    /// Follows the log from the start of `reader`'s file.
    pub fn new(reader: LogReader) -> Self {
        Self { reader }
    }

    /// Gives `each` the lines written since the last call: the rest of the
    /// file being read and, once the log has rotated, the new file's.
    pub fn poll(&mut self, each: &mut LineSink<'_>) -> io::Result<()> {
        self.reader.read_lines(each)?;
        if self.reader.replaced()? {
            // The old file is complete: the writer moved on to the new one.
            self.reader.read_to_end(each)?;
            match LogReader::open(&self.reader.path) {
                Ok(reader) => self.reader = reader,
                // Renamed again before it was opened: the next call opens its successor.
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(error) => return Err(error),
            }
            self.reader.read_lines(each)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
