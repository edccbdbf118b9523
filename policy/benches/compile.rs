//! The compiler at cluster scale (`benches/cluster`): a full compile of
//! 10,000 pods in 500 namespaces with 2,000 NetworkPolicies of realistic
//! shapes, and the recompile after one pod relabel and after one policy
//! edit. `cargo bench -p netseg-policy --bench compile`; with
//! `NETSEG_BENCH_LARGE=1` the same at 100,000 pods in 5,000 namespaces with
//! 20,000 policies too (a minute or two more; the memory this needs is
//! measured by `examples/compile_scale.rs`).

#[path = "../tests/common/mod.rs"]
mod common;

mod cluster;

use std::hint::black_box;

use cluster::{Scale, cluster, edited, options, relabelled, summary};
use criterion::{Criterion, criterion_group, criterion_main};
use netseg_policy::{Compiler, diff_maps};

fn compile_at(c: &mut Criterion, group_name: &str, full_name: &str, scale: Scale) {
    let snapshot = cluster(scale);
    let options = options();
    let mut compiler = Compiler::new();
    let base = compiler.compile(&snapshot, &options);
    eprintln!("cluster: {}", summary(&snapshot, &base));
    let mut group = c.benchmark_group(group_name);
    group.sample_size(10);
    // A fresh compiler: nothing remembered from an earlier compilation.
    group.bench_function(full_name, |b| {
        b.iter(|| black_box(Compiler::new().compile(&snapshot, &options)))
    });
    for (name, changed) in [
        ("after one pod relabel", relabelled(&snapshot)),
        ("after one policy edit", edited(&snapshot)),
    ] {
        let after = compiler.compile(&changed, &options);
        let touched = diff_maps(&base.policy, &after.policy).upserts.len()
            + diff_maps(&base.policy, &after.policy).removals.len()
            + diff_maps(&base.ipcache, &after.ipcache).upserts.len()
            + diff_maps(&base.ipcache, &after.ipcache).removals.len()
            + diff_maps(&base.endpoints, &after.endpoints).upserts.len()
            + diff_maps(&base.endpoints, &after.endpoints).removals.len();
        eprintln!("{name}: the diff touches {touched} entries");
        // Alternate between the two snapshots: every iteration is a recompile after one change.
        let mut flip = false;
        group.bench_function(name, |b| {
            b.iter(|| {
                flip = !flip;
                black_box(compiler.compile(if flip { &changed } else { &snapshot }, &options))
            })
        });
    }
    group.finish();
}

fn compile(c: &mut Criterion) {
    let full = "full, 10k pods / 500 namespaces / 2k policies";
    compile_at(c, "compile", full, Scale::DEFAULT);
    if std::env::var_os("NETSEG_BENCH_LARGE").is_some() {
        let full = "full, 100k pods / 5k namespaces / 20k policies";
        compile_at(c, "compile-100k", full, Scale::LARGE);
    }
}

criterion_group!(benches, compile);
criterion_main!(benches);
