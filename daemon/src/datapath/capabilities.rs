//! The capabilities loading and attaching the programs takes, checked
//! before trying: the kernel answers a missing one with a bare EPERM or a
//! verifier refusal that names none.

use std::io;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Each capability the datapath needs, and what for.
const NEEDED: [(u32, &str, &str); 3] = [
    (CAP_BPF, "CAP_BPF", "create maps and load programs"),
    (
        CAP_NET_ADMIN,
        "CAP_NET_ADMIN",
        "load networking programs and attach them with tcx",
    ),
    (
        CAP_PERFMON,
        "CAP_PERFMON",
        "without it the verifier applies its Spectre v1 restrictions for unprivileged \
         programs, which refuse the programs' pointer arithmetic on map values",
    ),
];

/// The needed capabilities missing from the effective set `effective` (a
/// bit per capability), each with what it is for. CAP_SYS_ADMIN stands in
/// for all of them, as the kernel's checks let it.
pub fn missing(effective: u64) -> Vec<String> {
    let has = |cap: u32| effective & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) {
        return Vec::new();
    }
    NEEDED
        .iter()
        .filter(|(cap, _, _)| !has(*cap))
        .map(|(_, name, why)| format!("{name} ({why})"))
        .collect()
}

/// This process's effective capabilities, from `CapEff` in /proc/self/status.
pub fn effective() -> io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or_else(|| io::Error::other("no CapEff line in /proc/self/status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_missing_capability_is_named_with_its_use() {
        let bpf_and_perfmon = (1 << CAP_BPF) | (1 << CAP_PERFMON);
        let missing = missing(bpf_and_perfmon);
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert!(missing[0].starts_with("CAP_NET_ADMIN (load networking programs"));
        assert_eq!(self::missing(0).len(), 3);
    }

    #[test]
    fn the_three_or_sys_admin_are_enough() {
        assert!(missing((1 << CAP_BPF) | (1 << CAP_PERFMON) | (1 << CAP_NET_ADMIN)).is_empty());
        assert!(missing(1 << CAP_SYS_ADMIN).is_empty());
    }
}
