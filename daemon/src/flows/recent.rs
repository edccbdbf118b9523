//! The most recent flow records in memory, for the flow API: the last
//! lines the exporter wrote, bounded both by count (`--flow-api-records`)
//! and by bytes ([`RecentLimits::DEFAULT`]), and every new line for the
//! followers. A follower that falls more than [`FOLLOW_BACKLOG`] lines
//! behind loses the oldest and is told how many; the exporter never waits
//! for anyone.

use std::{
    borrow::Cow,
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::broadcast::{self, error::RecvError};

/// How much the ring holds: the oldest lines go first once either is passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecentLimits {
    pub records: usize,
    /// Bytes of record text (each record also costs a small allocation).
    pub bytes: usize,
}

impl RecentLimits {
    pub const DEFAULT: Self = Self {
        records: 10_000,
        bytes: 16 << 20,
    };
}

/// Lines a follower may fall behind by before it loses the oldest. The
/// lines waiting are shared with the ring, but may outlive it there.
pub const FOLLOW_BACKLOG: usize = 4096;

/// The recent records, one JSON line each (without its newline).
pub struct RecentFlows {
    ring: Mutex<Ring>,
    limits: RecentLimits,
    new_lines: broadcast::Sender<Arc<str>>,
}

#[derive(Default)]
struct Ring {
    lines: VecDeque<Arc<str>>,
    bytes: usize,
}

impl RecentFlows {
    pub fn new(limits: RecentLimits) -> Self {
        Self {
            ring: Mutex::default(),
            limits,
            new_lines: broadcast::Sender::new(FOLLOW_BACKLOG),
        }
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        self.ring
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Takes in `text`, whole lines each ending in a newline, as the
    /// exporter writes them.
    pub fn push_lines(&self, text: &[u8]) {
        // The exporter writes UTF-8: checked once for the whole text, with
        // the standard library's fast check (the lossy one goes a character
        // at a time), and split with memchr.
        let text = match std::str::from_utf8(text) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(text),
        };
        let mut ring = self.ring();
        // Under the ring's lock, which `follow` subscribes under.
        let followed = self.new_lines.receiver_count() > 0;
        for line in text.split('\n').filter(|line| !line.is_empty()) {
            let line: Arc<str> = line.into();
            ring.bytes += line.len();
            ring.lines.push_back(line.clone());
            while ring.lines.len() > self.limits.records || ring.bytes > self.limits.bytes {
                let Some(oldest) = ring.lines.pop_front() else {
                    break;
                };
                ring.bytes -= oldest.len();
            }
            if followed {
                // An error only says the last follower just went.
                let _ = self.new_lines.send(line);
            }
        }
    }

    /// The lines held, oldest first.
    pub fn lines(&self) -> Vec<Arc<str>> {
        self.ring().lines.iter().cloned().collect()
    }

    /// The lines held, oldest first, and a follower of every line pushed
    /// after them.
    pub fn follow(&self) -> (Vec<Arc<str>>, Follower) {
        let ring = self.ring();
        let follower = Follower(self.new_lines.subscribe());
        (ring.lines.iter().cloned().collect(), follower)
    }
}

/// What a follower gets next.
#[derive(Debug, PartialEq, Eq)]
pub enum Followed {
    Line(Arc<str>),
    /// It fell behind and this many lines were lost to it.
    Lost(u64),
}

pub struct Follower(broadcast::Receiver<Arc<str>>);

impl Follower {
    /// The next line, or how many were lost; `None` once the ring is gone.
    pub async fn next(&mut self) -> Option<Followed> {
        match self.0.recv().await {
            Ok(line) => Some(Followed::Line(line)),
            Err(RecvError::Lagged(lost)) => Some(Followed::Lost(lost)),
            Err(RecvError::Closed) => None,
        }
    }
}

#[cfg(test)]
mod tests;
