//! A flow log file that cannot fill the disk: past its size limit it is
//! renamed to `NAME.1` (the older ones shift to `NAME.2` .. `NAME.keep`, the
//! oldest is deleted) and a fresh file is opened under its name, the way
//! logrotate's `rotate N` with `size` leaves them.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

/// When the flow log rotates and how many old files stay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// A file rotates at the end of the last line that fits, so it never
    /// passes this size unless a single line does (a file holds at least one).
    pub max_bytes: u64,
    /// Rotated files kept beside the current one.
    pub keep: u32,
}

impl Rotation {
    pub const NEVER: Self = Self {
        max_bytes: u64::MAX,
        keep: 0,
    };
}

/// The flow log file. The flow writer writes whole lines, so a rotation
/// between lines never splits a record.
pub struct RotatingFile {
    path: PathBuf,
    rotation: Rotation,
    file: File,
    /// Bytes in the current file.
    written: u64,
}

impl RotatingFile {
    /// Opens `path` for appending; what it holds already counts.
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<Self> {
        let file = open_append(path)?;
        let written = file.metadata()?.len();
        Ok(Self {
            path: path.to_owned(),
            rotation,
            file,
            written,
        })
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        name.into()
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.rotation.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            // The rename onto NAME.keep replaces (deletes) the oldest file.
            for n in (1..self.rotation.keep).rev() {
                match std::fs::rename(self.numbered(n), self.numbered(n + 1)) {
                    Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, self.numbered(1))?;
        }
        self.file = open_append(&self.path)?;
        self.written = 0;
        Ok(())
    }

    /// How much of `lines` goes into the current file: the whole lines that
    /// fit, or the first line into an empty file; zero means rotate first.
    fn fitting(&self, lines: &[u8]) -> usize {
        let room = self.rotation.max_bytes.saturating_sub(self.written);
        if lines.len() as u64 <= room {
            return lines.len();
        }
        let room = usize::try_from(room).unwrap_or(usize::MAX);
        let line_end = |part: &[u8]| part.iter().rposition(|&b| b == b'\n').map(|end| end + 1);
        match line_end(&lines[..room]) {
            Some(end) => end,
            None if self.written == 0 => lines
                .iter()
                .position(|&b| b == b'\n')
                .map_or(lines.len(), |end| end + 1),
            None => 0,
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let fits = self.fitting(buf);
            if fits == 0 {
                self.rotate()?;
                continue;
            }
            self.file.write_all(&buf[..fits])?;
            self.written += fits as u64;
            buf = &buf[fits..];
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests;
