//! Event times as flow records show them: RFC 3339 with milliseconds, as
//! humantime writes them. Events come hundreds of thousands a second, so
//! the calendar part is worked out once a second and only the milliseconds
//! change in between.

use std::{
    io::{self, Write},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

pub(super) struct Clock {
    /// The wall-clock time of the events' clock zero.
    boot: SystemTime,
    /// The second since the Unix epoch that `text` shows.
    second: Option<u64>,
    /// `2023-11-14T22:13:20.999Z`.
    text: Vec<u8>,
}

/// Where the three digits of the milliseconds are in `text`.
const MILLIS: std::ops::Range<usize> = 20..23;

impl Clock {
    pub(super) fn new(boot: SystemTime) -> Self {
        Self {
            boot,
            second: None,
            text: Vec::with_capacity(24),
        }
    }

    /// The text of an event time (nanoseconds since `boot`).
    pub(super) fn text(&mut self, timestamp_ns: u64) -> io::Result<&[u8]> {
        let at = self.boot + Duration::from_nanos(timestamp_ns);
        let since_epoch = at.duration_since(UNIX_EPOCH).map_err(io::Error::other)?;
        if self.second != Some(since_epoch.as_secs()) {
            self.text.clear();
            // Fails only from the year 10000 on.
            write!(self.text, "{}", humantime::format_rfc3339_millis(at))?;
            self.second = Some(since_epoch.as_secs());
        }
        let millis = since_epoch.subsec_millis();
        self.text[MILLIS].copy_from_slice(&[
            b'0' + (millis / 100) as u8,
            b'0' + (millis / 10 % 10) as u8,
            b'0' + (millis % 10) as u8,
        ]);
        Ok(&self.text)
    }
}
