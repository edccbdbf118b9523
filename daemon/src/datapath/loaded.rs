//! What an auditor compares: the SHA-256 of the eBPF object built into this
//! netseg (`netseg version --verbose` prints it; rebuilding the object from
//! the same source gives the same bytes) and the tag the kernel gave each
//! program loaded from it (`bpftool prog show` lists the same tags).

use std::{collections::BTreeMap, fmt::Write as _};

use aya::Ebpf;
use serde::Serialize;

use super::{DatapathError, POD_EGRESS, POD_INGRESS, classifier};

#[derive(Clone, Debug, Serialize)]
pub struct LoadedObject {
    pub sha256: String,
    /// By program name: the kernel's tag, 16 hex digits.
    pub program_tags: BTreeMap<&'static str, String>,
}

impl LoadedObject {
    pub(super) fn of(object: &[u8], ebpf: &mut Ebpf) -> Result<Self, DatapathError> {
        let mut program_tags = BTreeMap::new();
        for program in [POD_EGRESS, POD_INGRESS] {
            let info = classifier(ebpf, program)?
                .info()
                .map_err(|source| DatapathError::Program { program, source })?;
            program_tags.insert(program, format!("{:016x}", info.tag()));
        }
        Ok(Self {
            sha256: sha256_hex(object),
            program_tags,
        })
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

#[cfg(test)]
mod tests {
    use super::sha256_hex;

    #[test]
    fn the_digest_is_the_sha256_of_the_bytes() {
        // FIPS 180-2's first example.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
