//! Writing and deleting many map entries a few thousand a system call
//! (`BPF_MAP_UPDATE_BATCH`, `BPF_MAP_DELETE_BATCH`), where aya makes one a
//! entry: a policy of 50,000 ipBlock peers is some 150,000 entries.
//!
//! The kernel writes a batch's entries one after the other and stops at the
//! first that fails, saying how many it wrote: the caller learns exactly
//! which entries a slot holds. Hash maps have had these commands since
//! Linux 5.6, LPM tries since 6.x; where a map lacks them the kernel answers
//! `EINVAL` (or `ENOTSUPP`) before writing anything, and the caller writes
//! one entry a call instead.

use std::{
    io,
    mem::size_of,
    os::fd::{AsFd, AsRawFd},
};

use aya::{Pod, maps::MapData};

use super::whole_map::BatchAttr;

/// `enum bpf_cmd` in `include/uapi/linux/bpf.h`.
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;
/// The kernel's own "operation not supported", which has no libc name.
const ENOTSUPP: i32 = 524;

/// Entries a call, so that the kernel holds no lock for long.
const CHUNK: usize = 8192;

/// A batch that stopped: how many of its entries were written or deleted
/// first, and why the next was not.
#[derive(Debug)]
pub struct BatchStopped {
    pub done: usize,
    pub error: io::Error,
}

impl BatchStopped {
    /// Whether the map has no batch commands at all: nothing was written,
    /// and entries written one a call might succeed.
    pub fn unsupported(&self) -> bool {
        self.done == 0
            && matches!(
                self.error.raw_os_error(),
                Some(libc::EINVAL | libc::EOPNOTSUPP | ENOTSUPP)
            )
    }
}

/// Writes `values[i]` under `keys[i]`, in order.
pub fn update<K: Pod, V: Pod>(map: &MapData, keys: &[K], values: &[V]) -> Result<(), BatchStopped> {
    debug_assert_eq!(keys.len(), values.len(), "a value for every key");
    let mut done = 0;
    for (keys, values) in keys.chunks(CHUNK).zip(values.chunks(CHUNK)) {
        let attr = BatchAttr {
            keys: keys.as_ptr() as u64,
            values: values.as_ptr() as u64,
            count: keys.len() as u32,
            map_fd: map.fd().as_fd().as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        done += call(BPF_MAP_UPDATE_BATCH, attr).map_err(|stopped| BatchStopped {
            done: done + stopped.done,
            error: stopped.error,
        })?;
    }
    Ok(())
}

/// Deletes `keys`, in order; a key already absent is skipped.
pub fn delete<K: Pod>(map: &MapData, keys: &[K]) -> Result<(), BatchStopped> {
    let mut done = 0;
    while done < keys.len() {
        let chunk = &keys[done..keys.len().min(done + CHUNK)];
        let attr = BatchAttr {
            keys: chunk.as_ptr() as u64,
            count: chunk.len() as u32,
            map_fd: map.fd().as_fd().as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        match call(BPF_MAP_DELETE_BATCH, attr) {
            Ok(deleted) => done += deleted,
            // The key after those deleted is not there: nothing to delete.
            Err(stopped) if stopped.error.raw_os_error() == Some(libc::ENOENT) => {
                done += stopped.done + 1;
            }
            Err(stopped) => {
                return Err(BatchStopped {
                    done: done + stopped.done,
                    error: stopped.error,
                });
            }
        }
    }
    Ok(())
}

/// One batch command; how many entries it did.
fn call(command: libc::c_long, mut attr: BatchAttr) -> Result<usize, BatchStopped> {
    let asked = attr.count as usize;
    // SAFETY: `attr` points at `count` keys (and values) that the caller's
    // slices keep alive until the call returns; the kernel only reads
    // them, and writes `count` back.
    let result = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            &mut attr as *mut BatchAttr,
            size_of::<BatchAttr>(),
        )
    };
    if result < 0 {
        // A command refused whole leaves `count` as it was; one that
        // stopped at an entry says how many came before it.
        let done = match attr.count as usize {
            count if count < asked => count,
            _ => 0,
        };
        return Err(BatchStopped {
            done,
            error: io::Error::last_os_error(),
        });
    }
    Ok(asked)
}
