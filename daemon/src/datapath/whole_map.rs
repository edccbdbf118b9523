//! Reading a whole hash map a few thousand entries a system call
//! (`BPF_MAP_LOOKUP_BATCH`, Linux 5.6), where aya's iterator makes two a
//! entry (next key, then lookup): the conntrack table is read whole every
//! few seconds, and at 262,144 entries that iterator took a fifth of a core.
//!
//! A batch is one hash bucket or more, read under the bucket's lock: an
//! entry the programs update while the table is read is read once, never
//! skipped, unlike the iterator, which starts over when the key it stands
//! on is deleted. aya 0.14 has no wrapper for the command.

use std::{
    io,
    mem::{MaybeUninit, size_of},
    os::fd::{AsFd, AsRawFd},
};

use aya::{
    Pod,
    maps::{IterableMap, MapError},
    sys::SyscallError,
};

/// `enum bpf_cmd` in `include/uapi/linux/bpf.h`.
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// Entries asked for a call; a bucket with more is read with room for it.
const CHUNK: usize = 4096;

/// The `batch` member of `union bpf_attr`; the kernel takes a prefix of the
/// union and zeroes the rest.
#[repr(C)]
#[derive(Default)]
pub(super) struct BatchAttr {
    pub(super) in_batch: u64,
    pub(super) out_batch: u64,
    pub(super) keys: u64,
    pub(super) values: u64,
    pub(super) count: u32,
    pub(super) map_fd: u32,
    pub(super) elem_flags: u64,
    pub(super) flags: u64,
}

/// Every entry of the hash map `map` (not a per-CPU one), at one reading.
pub fn read_whole<K: Pod, V: Pod>(map: &impl IterableMap<K, V>) -> Result<Vec<(K, V)>, MapError> {
    read_in_chunks(map, CHUNK)
}

/// [`read_whole`], asking for `chunk` entries a call at first.
pub(super) fn read_in_chunks<K: Pod, V: Pod>(
    map: &impl IterableMap<K, V>,
    mut chunk: usize,
) -> Result<Vec<(K, V)>, MapError> {
    let fd = map.map().fd().as_fd().as_raw_fd();
    let mut entries = Vec::new();
    // A hash map's batch position is a bucket index.
    let mut position: Option<u32> = None;
    loop {
        let mut keys: Vec<MaybeUninit<K>> = Vec::with_capacity(chunk);
        let mut values: Vec<MaybeUninit<V>> = Vec::with_capacity(chunk);
        let mut next: u32 = 0;
        let mut attr = BatchAttr {
            in_batch: position.as_ref().map_or(0, |at| at as *const u32 as u64),
            out_batch: &mut next as *mut u32 as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk as u32,
            map_fd: fd as u32,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` points at buffers of `count` keys and values and
        // at `position` and `next`, all alive until the call returns; the
        // kernel writes at most `count` entries and one position.
        let result = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &mut attr as *mut BatchAttr,
                size_of::<BatchAttr>(),
            )
        };
        let done = if result < 0 {
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                // One bucket holds more than `chunk` entries: ask again with room.
                Some(libc::ENOSPC) => {
                    chunk *= 2;
                    continue;
                }
                // No bucket after this batch.
                Some(libc::ENOENT) => true,
                _ => {
                    return Err(MapError::SyscallError(SyscallError {
                        call: "bpf_map_lookup_batch",
                        io_error: error,
                    }));
                }
            }
        } else {
            false
        };
        let read = (attr.count as usize).min(chunk);
        // SAFETY: the kernel wrote the first `read` keys and values, and
        // both are plain data (`Pod`).
        unsafe {
            keys.set_len(read);
            values.set_len(read);
        }
        entries.extend(
            keys.into_iter()
                .zip(values)
                // SAFETY: initialized above.
                .map(|(key, value)| unsafe { (key.assume_init(), value.assume_init()) }),
        );
        if done {
            return Ok(entries);
        }
        position = Some(next);
    }
}
