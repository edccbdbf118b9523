//! Denials without a record of their own: the programs count them per
//! endpoint, direction and reason in `DENY_COUNTS`, counts that only grow.
//! Every second the exporter reports what each count grew by since its
//! previous reading as one aggregated record. Nothing is reset, so no
//! denial counted between a reading and a reset can be lost, and a count
//! is reported whether or not its flow sends again. The counts of an
//! interface that is gone are removed once their last growth is reported.

use std::{collections::HashMap, io};

use aya::maps::MapData;
use netseg_contract::DenyCountKey;

use super::{FlowContext, FlowWriter, monotonic_now};

/// How often the counts are read and reported.
pub const REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The exporter's side of `DENY_COUNTS`.
#[derive(Debug, Default)]
pub struct DenialReports {
    tally: DenialTally,
    /// Interfaces detached since the last reading.
    detached: Vec<u32>,
    /// Interfaces detached before the last reading: no program counts on
    /// them any more, so after the next reading their keys can go.
    retiring: Vec<u32>,
}

impl DenialReports {
    /// The programs left interface `ifindex` (and it is gone).
    pub fn detached(&mut self, ifindex: u32) {
        self.detached.push(ifindex);
    }

    /// Reads the counts and writes an aggregated record for each that grew.
    pub fn report<W: io::Write>(
        &mut self,
        counts: &mut aya::maps::HashMap<MapData, DenyCountKey, u64>,
        writer: &mut FlowWriter<W>,
        context: &FlowContext,
    ) -> io::Result<()> {
        let reading = counts
            .iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(io::Error::other)?;
        let now = monotonic_now().as_nanos() as u64;
        for (key, count) in self.tally.advance(reading.iter().copied()) {
            writer.write_aggregate(context, &key, count, now)?;
        }
        let retired = reading
            .iter()
            .filter(|(key, _)| self.retiring.contains(&key.ifindex));
        for (key, _) in retired {
            counts.remove(key).map_err(io::Error::other)?;
            self.tally.forget(key);
        }
        self.retiring = std::mem::take(&mut self.detached);
        Ok(())
    }
}

/// The counts reported so far.
#[derive(Debug, Default)]
pub struct DenialTally {
    reported: HashMap<DenyCountKey, u64>,
}

impl DenialTally {
    /// What each of `counts` (a reading of `DENY_COUNTS`) grew by since the
    /// previous reading, in key order; counts that did not grow are left out.
    pub fn advance(
        &mut self,
        counts: impl IntoIterator<Item = (DenyCountKey, u64)>,
    ) -> Vec<(DenyCountKey, u64)> {
        let mut grown: Vec<(DenyCountKey, u64)> = counts
            .into_iter()
            .filter_map(|(key, total)| {
                let reported = self.reported.entry(key).or_default();
                let growth = total.checked_sub(*reported).filter(|&n| n > 0)?;
                *reported = total;
                Some((key, growth))
            })
            .collect();
        grown.sort_unstable();
        grown
    }

    /// Drops `key`, whose count was removed from the map: if it comes back,
    /// it counts from zero.
    pub fn forget(&mut self, key: &DenyCountKey) {
        self.reported.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use netseg_contract::{DIRECTION_EGRESS, DIRECTION_INGRESS, reason};

    use super::*;

    fn key(ifindex: u32, direction: u8, reason: u8) -> DenyCountKey {
        DenyCountKey {
            ifindex,
            direction,
            reason,
            _pad: [0; 2],
        }
    }

    #[test]
    fn reports_what_each_count_grew_by_since_the_last_reading() {
        let a = key(7, DIRECTION_EGRESS, reason::POLICY_DENIED);
        let b = key(7, DIRECTION_INGRESS, reason::SPOOFED);
        let c = key(8, DIRECTION_EGRESS, reason::POLICY_DENIED);
        let mut tally = DenialTally::default();
        assert_eq!(tally.advance([(a, 5), (b, 2)]), [(b, 2), (a, 5)]);
        // b went quiet: nothing more to say about it.
        assert_eq!(tally.advance([(a, 9), (b, 2), (c, 1)]), [(a, 4), (c, 1)]);
        assert_eq!(tally.advance([(a, 9), (b, 2), (c, 1)]), []);
        // A key missing from one reading (a map walk racing an insert) is
        // reported in full the next time.
        assert_eq!(tally.advance([(a, 9)]), []);
        assert_eq!(tally.advance([(a, 10), (b, 3), (c, 1)]), [(b, 1), (a, 1)]);
    }

    #[test]
    fn a_forgotten_count_is_reported_afresh() {
        let a = key(7, DIRECTION_EGRESS, reason::POLICY_DENIED);
        let mut tally = DenialTally::default();
        assert_eq!(tally.advance([(a, 5)]), [(a, 5)]);
        tally.forget(&a);
        assert_eq!(tally.advance([(a, 2)]), [(a, 2)]);
    }

    #[test]
    fn the_reports_add_up_to_the_final_counts() {
        let a = key(3, DIRECTION_EGRESS, reason::NO_CONNECTION);
        let mut tally = DenialTally::default();
        let readings = [0, 1, 1, 40, 41, 1000, 1000];
        let reported: u64 = readings
            .iter()
            .flat_map(|&total| tally.advance([(a, total)]))
            .map(|(_, growth)| growth)
            .sum();
        assert_eq!(reported, 1000);
    }
}
