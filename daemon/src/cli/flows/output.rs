//! What `netseg flows` prints: a table for people (each policy denial with
//! the `netseg explain` command that shows its rule), the records' own JSON
//! lines for tools, or the summary.

use std::io::{self, Write};

use clap::ValueEnum;

use crate::{
    explain::FlowQuestion,
    flows::{
        FlowRecord, RecordKind,
        query::{Side, Summary, Talker, party_label, service_label},
    },
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// The records as the log holds them, one JSON object per line (the
    /// summary: one JSON object).
    Json,
}

pub struct Printer<W> {
    out: W,
    format: Format,
    header_written: bool,
    /// The manifests directory `netseg explain` commands name.
    manifests: String,
}

impl<W: Write> Printer<W> {
    pub fn new(out: W, format: Format, manifests: Option<&std::path::Path>) -> Self {
        Self {
            out,
            format,
            header_written: false,
            manifests: manifests.map_or_else(|| "DIR".to_owned(), |dir| dir.display().to_string()),
        }
    }

    /// `line` is the record as read, which JSON output passes on unchanged.
    pub fn record(&mut self, record: &FlowRecord, line: &str) -> io::Result<()> {
        match self.format {
            Format::Json => writeln!(self.out, "{line}"),
            Format::Table => {
                if !self.header_written {
                    self.header_written = true;
                    self.row(&[
                        "TIME",
                        "KIND",
                        "VERDICT",
                        "REASON",
                        "SRC",
                        "DST",
                        "SERVICE",
                        "PACKETS",
                        "BYTES",
                        "DECIDED-BY",
                    ])?;
                }
                self.table_row(record)
            }
        }
    }

    fn table_row(&mut self, record: &FlowRecord) -> io::Result<()> {
        let number = |known: bool, n: u64| if known { n.to_string() } else { "-".into() };
        let packets = record.src_packets.is_some() || record.count.is_some();
        self.row(&[
            &record.time,
            record.kind.name(),
            &record.verdict,
            &record.reason,
            &party_label(record, Side::Source, true),
            &party_label(record, Side::Destination, true),
            &service_label(record),
            &number(packets, record.packets()),
            &number(record.src_bytes.is_some(), record.bytes()),
            &record.decided_by,
        ])?;
        if let Some(command) = explain_command(record, &self.manifests) {
            writeln!(self.out, "  explain: {command}")?;
        }
        Ok(())
    }

    fn row(&mut self, cells: &[&str; 10]) -> io::Result<()> {
        let [
            time,
            kind,
            verdict,
            reason,
            src,
            dst,
            service,
            packets,
            bytes,
            decided,
        ] = cells;
        writeln!(
            self.out,
            "{time:<24} {kind:<10} {verdict:<7} {reason:<14} {src:<22} {dst:<22} {service:<9} \
             {packets:>7} {bytes:>9} {decided}"
        )
    }

    pub fn summary(&mut self, summary: &Summary) -> io::Result<()> {
        if self.format == Format::Json {
            serde_json::to_writer(&mut self.out, summary)?;
            return writeln!(self.out);
        }
        let total = &summary.total;
        writeln!(
            self.out,
            "{} records, {} packets, {} bytes",
            total.records, total.packets, total.bytes
        )?;
        let lists = [
            ("top sources", &summary.sources),
            ("top destinations", &summary.destinations),
            (
                "top services (destination protocol/port)",
                &summary.services,
            ),
            ("verdicts and reasons", &summary.verdicts),
            (
                "top denied (source -> destination service)",
                &summary.denied,
            ),
        ];
        for (title, talkers) in lists {
            self.talkers(title, talkers)?;
        }
        Ok(())
    }

    fn talkers(&mut self, title: &str, talkers: &[Talker]) -> io::Result<()> {
        writeln!(self.out)?;
        writeln!(
            self.out,
            "{title:<48} {:>8} {:>10} {:>12}",
            "RECORDS", "PACKETS", "BYTES"
        )?;
        if talkers.is_empty() {
            writeln!(self.out, "  (none)")?;
        }
        for Talker { key, traffic } in talkers {
            writeln!(
                self.out,
                "  {key:<46} {:>8} {:>10} {:>12}",
                traffic.records, traffic.packets, traffic.bytes
            )?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// For a denial that a policy decided (or no policy, by default), the
/// `netseg explain` command that shows which rule and why.
fn explain_command(record: &FlowRecord, manifests: &str) -> Option<String> {
    let by_policy = !matches!(record.decided_by.as_str(), "datapath" | "conntrack");
    if record.kind != RecordKind::Deny || !by_policy {
        return None;
    }
    FlowQuestion::of_record(record)
        .ok()?
        .command_line(manifests)
}

#[cfg(test)]
mod tests;
