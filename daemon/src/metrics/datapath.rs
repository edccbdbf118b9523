//! What the metrics say of the datapath: how long a policy change takes to
//! reach it, how full its tables are, and the connections it tracks by
//! state.

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

use crate::datapath::{MapEntries, remembered::ConnStates};
use crate::enforcer::ChangeStages;

/// Upper bounds, in seconds, of the implementation delay's buckets: a
/// small node takes milliseconds, a large cluster's compile seconds, and
/// a failed publication waits for the next change or pass (minutes when
/// something is wrong).
const DELAY_BUCKETS: [f64; 17] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];
/// Upper bounds, in seconds, of each stage's buckets: from a map write of
/// one entry to a compile of a large cluster.
const STAGE_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

fn stage_histogram() -> Histogram {
    Histogram::new(STAGE_BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MapLabels {
    map: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

pub struct DatapathMetrics {
    implementation_delay: Histogram,
    stages: Family<StageLabels, Histogram, fn() -> Histogram>,
    map_entries: Family<MapLabels, Gauge>,
    map_pressure: Family<MapLabels, Gauge<f64, AtomicU64>>,
    conntrack: Family<StateLabels, Gauge>,
}

impl DatapathMetrics {
    pub(super) fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            implementation_delay: Histogram::new(DELAY_BUCKETS),
            stages: Family::new_with_constructor(stage_histogram as fn() -> Histogram),
            map_entries: Family::default(),
            map_pressure: Family::default(),
            conntrack: Family::default(),
        };
        registry.register_with_unit(
            "policy_implementation_delay",
            "From a change of the source seen to the maps carrying it published",
            Unit::Seconds,
            metrics.implementation_delay.clone(),
        );
        registry.register_with_unit(
            "policy_implementation_stage",
            "The policy implementation delay by stage: settle, read, snapshot, node, compile, prepare, diff, write, flip",
            Unit::Seconds,
            metrics.stages.clone(),
        );
        registry.register(
            "bpf_map_entries",
            "Entries in a datapath table (in a slot of a published one)",
            metrics.map_entries.clone(),
        );
        registry.register(
            "bpf_map_pressure",
            "Entries over capacity of a datapath table: 1 is full, above 1 a policy that needs more than a slot",
            metrics.map_pressure.clone(),
        );
        registry.register(
            "conntrack_entries",
            "Tracked connections by state",
            metrics.conntrack.clone(),
        );
        metrics
    }

    /// A change of the source reached the datapath `stages.total` after it
    /// was seen.
    pub fn policy_implemented(&self, stages: &ChangeStages) {
        self.implementation_delay
            .observe(stages.total.as_secs_f64());
        for (stage, took) in stages.named() {
            self.stages
                .get_or_create(&StageLabels { stage })
                .observe(took.as_secs_f64());
        }
    }

    pub fn observe_tables(&self, tables: &[MapEntries]) {
        for table in tables {
            let labels = MapLabels { map: table.map };
            self.map_entries
                .get_or_create(&labels)
                .set(table.entries as i64);
            self.map_pressure
                .get_or_create(&labels)
                .set(table.pressure());
        }
    }

    pub fn observe_connections(&self, states: &ConnStates) {
        for (state, count) in [
            ("open", states.open),
            ("half-open", states.half_open),
            ("closing", states.closing),
        ] {
            self.conntrack
                .get_or_create(&StateLabels { state })
                .set(count as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::datapath::{MapEntries, remembered::ConnStates};
    use crate::enforcer::ChangeStages;
    use crate::metrics::Metrics;

    /// The value of the sample line `series` in a scrape.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn a_scrape_carries_the_delay_its_stages_the_tables_and_the_connections_by_state() {
        let metrics = Metrics::new();
        metrics.datapath.policy_implemented(&ChangeStages {
            settle: Duration::from_millis(2),
            compile: Duration::from_millis(298),
            total: Duration::from_millis(300),
            ..ChangeStages::default()
        });
        metrics.datapath.observe_tables(&[MapEntries {
            map: "policy",
            entries: 65536,
            capacity: 262144,
        }]);
        metrics.datapath.observe_connections(&ConnStates {
            open: 3,
            half_open: 2,
            closing: 1,
        });
        let text = metrics.encode().expect("encode");
        let delay = "netseg_policy_implementation_delay_seconds";
        assert_eq!(
            sample(&text, &format!("{delay}_count")),
            Some(1.0),
            "{text}"
        );
        assert_eq!(sample(&text, &format!("{delay}_sum")), Some(0.3), "{text}");
        assert_eq!(
            sample(&text, &format!("{delay}_bucket{{le=\"0.25\"}}")),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, &format!("{delay}_bucket{{le=\"0.5\"}}")),
            Some(1.0)
        );
        let stage = |name: &str, le: &str| {
            let series = format!(
                "netseg_policy_implementation_stage_seconds_bucket{{le=\"{le}\",stage=\"{name}\"}}"
            );
            sample(&text, &series)
        };
        assert_eq!(stage("settle", "0.001"), Some(0.0), "{text}");
        assert_eq!(stage("settle", "0.0025"), Some(1.0), "{text}");
        assert_eq!(stage("compile", "0.25"), Some(0.0), "{text}");
        assert_eq!(stage("compile", "0.5"), Some(1.0), "{text}");
        assert_eq!(
            stage("flip", "0.0001"),
            Some(1.0),
            "every stage has a sample"
        );
        let table = |metric| format!("netseg_bpf_map_{metric}{{map=\"policy\"}}");
        assert_eq!(sample(&text, &table("entries")), Some(65536.0), "{text}");
        assert_eq!(sample(&text, &table("pressure")), Some(0.25), "{text}");
        for (state, count) in [("open", 3.0), ("half-open", 2.0), ("closing", 1.0)] {
            let series = format!("netseg_conntrack_entries{{state=\"{state}\"}}");
            assert_eq!(sample(&text, &series), Some(count), "{text}");
        }
    }
}
