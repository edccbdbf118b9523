//! Whether a manifest file changed since it was read, from its metadata
//! alone, so that a reload at cluster scale reads only the files that did.
//!
//! A stamp is the file's device, inode, size and change time (following
//! symlinks, so a ConfigMap's swapped `..data` shows as another inode).
//! Every write moves the change time, but only to the file system clock's
//! tick: a file written again within the tick it was read in, with the same
//! size, would keep its stamp. Such a file ("racily clean", as git calls
//! it) is read again on every reload until its change time is a safe margin
//! older than the moment it was read.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// More than any local file system's time granularity (FAT's is 2 s).
const RACY_MARGIN: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Stamp {
    device: u64,
    inode: u64,
    size: u64,
    changed: SystemTime,
}

impl Stamp {
    /// The stamp of `file` now.
    pub(super) fn of(file: &Path) -> io::Result<Self> {
        let meta = fs::metadata(file)?;
        let changed = SystemTime::UNIX_EPOCH
            + Duration::new(
                meta.ctime().max(0).unsigned_abs(),
                meta.ctime_nsec().clamp(0, 999_999_999) as u32,
            );
        Ok(Self {
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.size(),
            changed,
        })
    }
}

/// What a file was when it was last read: its stamp, taken before reading,
/// and when the reading began.
#[derive(Clone, Copy, Debug)]
pub(super) struct Read {
    pub(super) stamp: Stamp,
    pub(super) at: SystemTime,
}

impl Read {
    /// Stamps `file` just before it is read.
    pub(super) fn starting(file: &Path) -> Option<Self> {
        let stamp = Stamp::of(file).ok()?;
        Some(Self {
            stamp,
            at: SystemTime::now(),
        })
    }

    /// Whether a file stamped `now` is surely what this reading read: the
    /// same stamp, and changed long enough before the reading that no write
    /// after it could have kept the stamp.
    pub(super) fn still_holds(&self, now: Stamp) -> bool {
        now == self.stamp && now.changed + RACY_MARGIN <= self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(changed: SystemTime) -> Stamp {
        Stamp {
            device: 1,
            inode: 2,
            size: 300,
            changed,
        }
    }

    #[test]
    fn only_a_settled_unchanged_stamp_spares_a_reading() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let settled = stamp(at - Duration::from_secs(10));
        let read = Read { stamp: settled, at };
        assert!(read.still_holds(settled));
        // Replaced (a rename into place, a ConfigMap's new `..data`).
        assert!(!read.still_holds(Stamp {
            inode: 3,
            ..settled
        }));
        // Written again: a new change time, or another size.
        assert!(!read.still_holds(stamp(at + Duration::from_secs(1))));
        assert!(!read.still_holds(Stamp {
            size: 301,
            ..settled
        }));
        // Changed in the moments before it was read: a write in the same
        // tick of the file system clock could have kept this stamp.
        let racy = stamp(at - Duration::from_millis(500));
        assert!(!Read { stamp: racy, at }.still_holds(racy));
    }
}
