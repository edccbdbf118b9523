use super::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

#[test]
fn stats() {
    let mut runner = TestRunner::deterministic();
    let (mut pols, mut valid, mut allowed, mut total, mut world_entries, mut named, mut local) = (0, 0, 0, 0, 0, 0, 0);
    let mut mixed = 0;
    for _ in 0..200 {
        let (snapshot, options) = arb::cluster().new_tree(&mut runner).unwrap().current();
        pols += snapshot.network_policies.len();
        valid += snapshot.network_policies.iter().filter(|p| validate_network_policy(p).is_empty()).count();
        let m = Compiler::new().compile(&snapshot, &options);
        local += m.endpoints.len();
        world_entries += m.ipcache.values().filter(|v| **v == 1).count();
        named += m.policy.iter().filter(|(k, _)| k.port.is_some_and(|p| p.len == 16 && (p.port == 8080 || p.port == 53))).count();
        let (mut a, mut t) = (0, 0);
        for_each_packet(&snapshot, |e, d, peer, pr, po| { t += 1; if lookup(&m, e, d, peer, pr, po).is_some() { a += 1; } Ok(()) }).unwrap();
        if a > 0 && a < t { mixed += 1; }
        allowed += a; total += t;
    }
    eprintln!("policies {pols} valid {valid} endpoints {local} allowed {allowed}/{total} mixed-clusters {mixed} world-prefixes {world_entries} exact-port-entries {named}");
}
