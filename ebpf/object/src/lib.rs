//! The kernel programs of ebpf/programs as one BPF ELF object, built by this
//! crate's build script, and the toolchain that built it (pinned in
//! ebpf/toolchain.txt). Kept apart from the daemon so that the object alone
//! can be rebuilt and compared (scripts/check-ebpf-reproducible).

/// An ELF64 object has 8-byte aligned headers and eBPF instructions are 8
/// bytes each; aya parses the object in place (as aya's
/// `include_bytes_aligned!` does, without depending on aya here).
#[repr(C, align(8))]
struct Aligned<Bytes: ?Sized> {
    bytes: Bytes,
}

static ALIGNED: &Aligned<[u8]> = &Aligned {
    bytes: *include_bytes!(concat!(env!("OUT_DIR"), "/netseg-ebpf")),
};

/// The object; empty when it was built without bpf-linker or with NETSEG_SKIP_EBPF=1.
pub static OBJECT: &[u8] = &ALIGNED.bytes;

/// What built [`OBJECT`], each value as ebpf/toolchain.txt records it (all
/// empty when the object is empty).
pub const TOOLCHAIN: [(&str, &str); 4] = [
    ("nightly", env!("NETSEG_EBPF_TOOLCHAIN_NIGHTLY")),
    ("nightly-llvm", env!("NETSEG_EBPF_TOOLCHAIN_NIGHTLY_LLVM")),
    ("bpf-linker", env!("NETSEG_EBPF_TOOLCHAIN_BPF_LINKER")),
    (
        "bpf-linker-llvm",
        env!("NETSEG_EBPF_TOOLCHAIN_BPF_LINKER_LLVM"),
    ),
];
