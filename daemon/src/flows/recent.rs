//! The most recent flow records in memory, for the flow API: the last
//! lines the exporter wrote, bounded both by count (`--flow-api-records`)
//! and by bytes ([`RecentLimits::DEFAULT`]). Followers read new lines from
//! the same ring; one that falls further behind than the ring holds loses
//! the oldest and is told how many. The exporter never waits for anyone.
//!
//! The ring keeps each write as one shared text with the bounds of its
//! lines: the exporter writes hundreds of thousands of lines a second and
//! is asked for them rarely, so a line becomes a string of its own only
//! when it is read.

use std::{
    collections::VecDeque,
    ops::Range,
    sync::{Arc, Mutex, MutexGuard, Weak},
};

use tokio::sync::watch;

/// How much the ring holds: the oldest lines go first once either is passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecentLimits {
    pub records: usize,
    /// Bytes of record text (each write also costs a small allocation).
    pub bytes: usize,
}

impl RecentLimits {
    pub const DEFAULT: Self = Self {
        records: 10_000,
        bytes: 16 << 20,
    };
}

/// Lines a follower takes from the ring at a time, under its lock.
const FOLLOW_BATCH: usize = 256;

/// The recent records, one JSON line each (without its newline).
pub struct RecentFlows {
    ring: Mutex<Ring>,
    limits: RecentLimits,
    /// The number of lines ever pushed, for followers to wait on.
    pushed: watch::Sender<u64>,
}

#[derive(Default)]
struct Ring {
    writes: VecDeque<Write>,
    /// The number, counting every line ever pushed, of the oldest held.
    first: u64,
    lines: usize,
    bytes: usize,
}

/// One write's text and the lines of it still held.
struct Write {
    text: Arc<[u8]>,
    /// The held lines' bounds in `text`, oldest first.
    lines: VecDeque<Range<u32>>,
}

impl Ring {
    fn drop_oldest(&mut self) {
        let Some(write) = self.writes.front_mut() else {
            return;
        };
        if let Some(line) = write.lines.pop_front() {
            self.first += 1;
            self.lines -= 1;
            self.bytes -= line.len();
        }
        if write.lines.is_empty() {
            self.writes.pop_front();
        }
    }

    /// The held lines from the one numbered `from` on, at most `most`.
    fn lines_from(&self, from: u64, most: usize) -> Vec<Arc<str>> {
        let mut skip = from.saturating_sub(self.first) as usize;
        let mut lines = Vec::new();
        for write in &self.writes {
            if skip >= write.lines.len() {
                skip -= write.lines.len();
                continue;
            }
            for line in write.lines.iter().skip(skip) {
                if lines.len() == most {
                    return lines;
                }
                let line = &write.text[line.start as usize..line.end as usize];
                // The exporter writes UTF-8; were a byte not, it is replaced.
                lines.push(String::from_utf8_lossy(line).into());
            }
            skip = 0;
        }
        lines
    }

    /// The number of the next line to be pushed.
    fn end(&self) -> u64 {
        self.first + self.lines as u64
    }
}

impl RecentFlows {
    pub fn new(limits: RecentLimits) -> Self {
        Self {
            ring: Mutex::default(),
            limits,
            pushed: watch::Sender::new(0),
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
        let text: Arc<[u8]> = text.into();
        let Ok(len) = u32::try_from(text.len()) else {
            // Never a write of the exporter's (it writes 64 KiB at a time).
            return;
        };
        let mut lines = VecDeque::new();
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', &text)
            .map(|at| at as u32)
            .chain([len])
        {
            if end > start {
                lines.push_back(start..end);
            }
            start = end + 1;
        }
        let mut ring = self.ring();
        ring.lines += lines.len();
        ring.bytes += lines.iter().map(|line| line.len()).sum::<usize>();
        ring.writes.push_back(Write { text, lines });
        while ring.lines > self.limits.records || ring.bytes > self.limits.bytes {
            ring.drop_oldest();
        }
        let end = ring.end();
        drop(ring);
        self.pushed.send_replace(end);
    }

    /// The lines held, oldest first.
    pub fn lines(&self) -> Vec<Arc<str>> {
        let ring = self.ring();
        ring.lines_from(ring.first, usize::MAX)
    }

    /// The lines held, oldest first, and a follower of every line pushed
    /// after them.
    pub fn follow(self: &Arc<Self>) -> (Vec<Arc<str>>, Follower) {
        let ring = self.ring();
        let follower = Follower {
            recent: Arc::downgrade(self),
            pushed: self.pushed.subscribe(),
            next: ring.end(),
            taken: VecDeque::new(),
        };
        (ring.lines_from(ring.first, usize::MAX), follower)
    }
}

/// What a follower gets next.
#[derive(Debug, PartialEq, Eq)]
pub enum Followed {
    Line(Arc<str>),
    /// It fell behind and this many lines were lost to it.
    Lost(u64),
}

pub struct Follower {
    recent: Weak<RecentFlows>,
    pushed: watch::Receiver<u64>,
    /// The number of the next line it gets.
    next: u64,
    /// Lines taken from the ring, not yet handed out.
    taken: VecDeque<Arc<str>>,
}

impl Follower {
    /// The next line, or how many were lost; `None` once the ring is gone.
    pub async fn next(&mut self) -> Option<Followed> {
        loop {
            if let Some(line) = self.taken.pop_front() {
                return Some(Followed::Line(line));
            }
            // Seen before the ring is read: a push after the reading wakes it.
            self.pushed.borrow_and_update();
            let recent = self.recent.upgrade()?;
            {
                let ring = recent.ring();
                if self.next < ring.first {
                    let lost = ring.first - self.next;
                    self.next = ring.first;
                    return Some(Followed::Lost(lost));
                }
                self.taken = ring.lines_from(self.next, FOLLOW_BATCH).into();
            }
            drop(recent);
            self.next += self.taken.len() as u64;
            if self.taken.is_empty() {
                // An error: the ring is gone.
                self.pushed.changed().await.ok()?;
            }
        }
    }
}

#[cfg(test)]
mod tests;
