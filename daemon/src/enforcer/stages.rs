//! Where the policy implementation delay goes: the stages a change passes
//! through from the source seeing it to the revision that carries it being
//! active, timed one after the other so that they add up to the delay.

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::ser::{SerializeSeq, SerializeStruct, Serializer};

use crate::datapath::publish::Published;

/// The stages of one change, in the order they run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChangeStages {
    /// The revision that carried the change.
    pub revision: u32,
    /// From the first event of the change until the daemon takes it in:
    /// the source's wait for a burst to end, and the daemon finishing what
    /// it was doing.
    pub settle: Duration,
    /// Reading the source: rereading and parsing the manifests directory,
    /// or gathering the objects of the watches.
    pub read: Duration,
    /// The snapshot of the objects in force (their policy warnings are
    /// checked after the publication).
    pub snapshot: Duration,
    /// Until the pass that compiles it starts: reading the node namespace's
    /// links, addresses and routes.
    pub node: Duration,
    pub compile: Duration,
    /// Attaching to new pod interfaces and building the slot's contents.
    pub prepare: Duration,
    /// Comparing those contents with what the inactive slot holds.
    pub diff: Duration,
    /// Writing the differences into the inactive slot's maps.
    pub write: Duration,
    /// Writing the revision that makes the slot active.
    pub flip: Duration,
    /// The policy implementation delay: the sum of the stages.
    pub total: Duration,
}

impl ChangeStages {
    /// Each stage by name, in order (`total` not included).
    pub fn named(&self) -> [(&'static str, Duration); 9] {
        [
            ("settle", self.settle),
            ("read", self.read),
            ("snapshot", self.snapshot),
            ("node", self.node),
            ("compile", self.compile),
            ("prepare", self.prepare),
            ("diff", self.diff),
            ("write", self.write),
            ("flip", self.flip),
        ]
    }
}

fn milliseconds(duration: Duration) -> f64 {
    // Microseconds are as fine as anyone reads these.
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

impl fmt::Display for ChangeStages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let named = self
            .named()
            .map(|(name, took)| format!("{name} {}", milliseconds(took)));
        write!(f, "{} ms", named.join(", "))
    }
}

/// `{"revision": 7, "total_ms": 3.1, "stages": [{"stage": "settle", "ms": 0.2}, ...]}`:
/// a list, so that readers see the stages in the order they run.
impl Serialize for ChangeStages {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Stages<'a>(&'a ChangeStages);
        impl Serialize for Stages<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let named = self.0.named();
                let mut list = serializer.serialize_seq(Some(named.len()))?;
                for (stage, took) in named {
                    list.serialize_element(&StageTime {
                        stage,
                        ms: milliseconds(took),
                    })?;
                }
                list.end()
            }
        }
        let mut object = serializer.serialize_struct("ChangeStages", 3)?;
        object.serialize_field("revision", &self.revision)?;
        object.serialize_field("total_ms", &milliseconds(self.total))?;
        object.serialize_field("stages", &Stages(self))?;
        object.end()
    }
}

#[derive(Serialize)]
struct StageTime {
    stage: &'static str,
    ms: f64,
}

/// A change on its way to the datapath: each stage gets the time since the
/// previous mark, so nothing falls between them.
#[derive(Debug)]
pub(super) struct ChangeTimer {
    seen_at: Instant,
    last: Instant,
    stages: ChangeStages,
}

impl ChangeTimer {
    pub(super) fn new(seen_at: Instant) -> Self {
        Self {
            seen_at,
            last: seen_at,
            stages: ChangeStages::default(),
        }
    }

    /// The source took the change in at `taken_at`; it read it until now.
    /// Another update before a publication adds to the same stages.
    pub(super) fn taken(&mut self, taken_at: Instant) {
        let taken_at = taken_at.clamp(self.last, Instant::now());
        self.stages.settle += taken_at - self.last;
        self.last = taken_at;
        let took = self.lap();
        self.stages.read += took;
    }

    pub(super) fn snapshot_taken(&mut self) {
        let took = self.lap();
        self.stages.snapshot += took;
    }

    pub(super) fn compile_starts(&mut self) {
        let took = self.lap();
        self.stages.node += took;
    }

    pub(super) fn compiled(&mut self) {
        let took = self.lap();
        self.stages.compile += took;
    }

    pub(super) fn publish_starts(&mut self) {
        let took = self.lap();
        self.stages.prepare += took;
    }

    /// The stages of the change `published` carried; the rest of the
    /// publication after its slot was written is the flip.
    pub(super) fn published(mut self, published: &Published) -> ChangeStages {
        let publication = self.lap();
        self.stages.diff += published.diffing;
        self.stages.write += published.writing;
        self.stages.flip += publication.saturating_sub(published.diffing + published.writing);
        self.stages.revision = published.revision;
        self.stages.total = self.last - self.seen_at;
        self.stages
    }

    /// A publication that failed: its time counts as writing, and the
    /// change waits for the next one.
    pub(super) fn failed(&mut self) {
        let took = self.lap();
        self.stages.write += took;
    }

    fn lap(&mut self) -> Duration {
        let now = Instant::now();
        let took = now - self.last;
        self.last = now;
        took
    }
}
