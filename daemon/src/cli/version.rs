//! `netseg version`: what this binary is, and with --verbose what an auditor
//! needs to rebuild the eBPF object it loads and compare the two.

use std::fmt::Write as _;

use crate::datapath::sha256_hex;

/// The lines `netseg version [--verbose]` prints.
pub fn report(verbose: bool) -> String {
    let mut out = format!("netseg {}\n", env!("CARGO_PKG_VERSION"));
    if !verbose {
        return out;
    }
    let object = netseg_ebpf_object::OBJECT;
    if object.is_empty() {
        out.push_str("ebpf-object: none (built without bpf-linker; the daemon refuses to start)\n");
        return out;
    }
    let _ = writeln!(out, "ebpf-object-sha256: {}", sha256_hex(object));
    let _ = writeln!(out, "ebpf-object-bytes: {}", object.len());
    for (tool, version) in netseg_ebpf_object::TOOLCHAIN {
        let _ = writeln!(out, "ebpf-toolchain-{tool}: {version}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_names_the_object_and_every_pinned_tool() {
        let report = report(true);
        assert!(report.starts_with(&format!("netseg {}\n", env!("CARGO_PKG_VERSION"))));
        if netseg_ebpf_object::OBJECT.is_empty() {
            assert!(report.contains("ebpf-object: none"), "{report}");
            return;
        }
        let digest = sha256_hex(netseg_ebpf_object::OBJECT);
        assert!(
            report.contains(&format!("ebpf-object-sha256: {digest}\n")),
            "{report}"
        );
        let pinned = include_str!("../../../ebpf/toolchain.txt");
        for (tool, version) in netseg_ebpf_object::TOOLCHAIN {
            assert!(
                pinned.contains(&format!("\n{tool} = {version}\n")),
                "{tool} {version}"
            );
            assert!(
                report.contains(&format!("ebpf-toolchain-{tool}: {version}\n")),
                "{report}"
            );
        }
    }
}
