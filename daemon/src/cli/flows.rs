//! `netseg flows`: flow records for analysts, from a flow log (with its
//! rotated files) or from a running daemon's flow API; filtered, followed,
//! printed as a table or JSON lines, or summed up.

mod client;
mod files;
mod output;

use std::{
    collections::VecDeque,
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, SystemTime},
};

use anyhow::{Context as _, Result};
use serde::Deserialize;

pub use client::{flows_url, read_lines};
use files::{Line, LogReader};
pub use output::Format;
use output::Printer;

use crate::flows::{
    FlowRecord,
    query::{FlowFilter, Tally},
};

#[derive(clap::Args)]
pub struct FlowsArgs {
    /// The flow log (the daemon's --flow-log); its rotated files FILE.N ..
    /// FILE.1 are read first.
    #[arg(required_unless_present = "daemon", conflicts_with = "daemon")]
    pub file: Option<PathBuf>,
    /// Ask the flow API of a running daemon instead (its --flow-api-addr,
    /// e.g. http://127.0.0.1:9091): it holds the most recent records.
    #[arg(long, value_name = "URL")]
    pub daemon: Option<String>,
    /// Keep printing new records as they are written (a file is followed
    /// across its rotations).
    #[arg(long, short = 'f')]
    pub follow: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Sum the records up instead: top sources, destinations, services
    /// (protocol/port), verdicts and denials by records, packets and bytes.
    #[arg(long, conflicts_with = "follow")]
    pub summary: bool,
    /// Only the N most recent matching records (default: all of a file,
    /// the daemon's 100 most recent).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// The manifests directory the daemon enforces: the `netseg explain`
    /// command under each denial in the table names it (else `DIR`).
    #[arg(long, value_name = "DIR")]
    pub manifests: Option<PathBuf>,
    #[command(flatten)]
    pub filters: FilterArgs,
}

/// The filters, named as in the flow API's query. Each may be given more
/// than once: a record matches one of its values, and every filter given.
#[derive(clap::Args)]
#[command(next_help_heading = "Filters (repeatable: the values of one are OR'd, filters AND'd)")]
pub struct FilterArgs {
    /// Either party's pod is in this namespace.
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Vec<String>,
    /// Either party is this pod: namespace/name, or name in any namespace.
    #[arg(long, value_name = "POD")]
    pub pod: Vec<String>,
    /// Either party belongs to this workload: Kind/name (Deployment/web), or name.
    #[arg(long, value_name = "WORKLOAD")]
    pub workload: Vec<String>,
    /// Either party is a member of this Segment.
    #[arg(long, value_name = "SEGMENT")]
    pub segment: Vec<String>,
    /// ingress or egress, as seen from the record's endpoint.
    #[arg(long, value_name = "DIRECTION")]
    pub direction: Vec<String>,
    /// allow or deny.
    #[arg(long, value_name = "VERDICT")]
    pub verdict: Vec<String>,
    /// open, update, end, deny or deny-count.
    #[arg(long, value_name = "KIND")]
    pub kind: Vec<String>,
    /// The record's reason: new-connection, established, closed, expired,
    /// removed, policy-denied, revoked, spoofed, ...
    #[arg(long, value_name = "REASON")]
    pub reason: Vec<String>,
    /// The policy that decided: name, or namespace/name.
    #[arg(long, value_name = "POLICY")]
    pub policy: Vec<String>,
    /// The rule that decided: its place (ingress[1]), its name, or both as
    /// records write them.
    #[arg(long, value_name = "RULE")]
    pub rule: Vec<String>,
    /// Either party's port.
    #[arg(long, value_name = "PORT")]
    pub port: Vec<String>,
    /// tcp, udp, sctp, icmp, icmpv6 or a protocol number.
    #[arg(long, value_name = "PROTOCOL")]
    pub protocol: Vec<String>,
    /// Either party's address is this address, or in this CIDR.
    #[arg(long, value_name = "ADDRESS|CIDR")]
    pub ip: Vec<String>,
    /// Records at or after this time: RFC 3339 (2025-01-31T12:00:00Z) or a
    /// duration back from now (10m).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Records at or before this time, in the forms of --since.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
}

impl FilterArgs {
    /// The filters as `(name, value)` pairs.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        let lists = [
            ("namespace", &self.namespace),
            ("pod", &self.pod),
            ("workload", &self.workload),
            ("segment", &self.segment),
            ("direction", &self.direction),
            ("verdict", &self.verdict),
            ("kind", &self.kind),
            ("reason", &self.reason),
            ("policy", &self.policy),
            ("rule", &self.rule),
            ("port", &self.port),
            ("protocol", &self.protocol),
            ("ip", &self.ip),
        ];
        let times = [("since", &self.since), ("until", &self.until)];
        let lists = lists
            .into_iter()
            .flat_map(|(name, values)| values.iter().map(move |value| (name, value.as_str())));
        let times = times
            .into_iter()
            .filter_map(|(name, value)| Some((name, value.as_deref()?)));
        lists.chain(times).collect()
    }
}

/// Lines of the summary's lists.
const SUMMARY_TOP: usize = 10;

/// How often a followed file is read for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

pub async fn run(args: FlowsArgs) -> ExitCode {
    match flows(args).await {
        Ok(()) => ExitCode::SUCCESS,
        // Whoever read our output (`| head`) has what it wanted.
        Err(error)
            if error
                .downcast_ref::<io::Error>()
                .is_some_and(|error| error.kind() == io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("netseg flows: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn flows(args: FlowsArgs) -> Result<()> {
    // Checked here too, so that a bad filter is told before anything is read.
    let filter = FlowFilter::parse(args.filters.pairs(), SystemTime::now())?;
    let out = BufWriter::new(io::stdout());
    match (&args.daemon, &args.file) {
        // The daemon holds back all but the latest itself.
        (Some(daemon), _) => ask_daemon(daemon, &args, Records::new(&args, None, out)).await,
        (None, Some(file)) => {
            let records = Records::new(&args, args.limit, out);
            let file = file.clone();
            let follow = args.follow;
            tokio::task::spawn_blocking(move || read_log(&file, &filter, follow, records))
                .await
                .context("reading the flow log")?
        }
        (None, None) => anyhow::bail!("give a flow log FILE or --daemon URL"),
    }
}

/// Where the records shown go: the output, after holding back all but the
/// last `--limit` of what is there already, or the summary.
struct Records<W: Write> {
    printer: Printer<W>,
    tally: Option<Tally>,
    /// Until caught up with what is there: the latest records, at most `limit`.
    latest: Option<(usize, VecDeque<(FlowRecord, String)>)>,
}

impl<W: Write> Records<W> {
    /// Holds back all but the latest `limit` records until caught up.
    fn new(args: &FlowsArgs, limit: Option<usize>, out: W) -> Self {
        Self {
            printer: Printer::new(out, args.output, args.manifests.as_deref()),
            tally: args.summary.then(Tally::default),
            latest: limit.map(|limit| (limit, VecDeque::new())),
        }
    }

    fn take(&mut self, record: FlowRecord, line: &str) -> io::Result<()> {
        match &mut self.latest {
            Some((limit, latest)) => {
                latest.push_back((record, line.to_owned()));
                if latest.len() > *limit {
                    latest.pop_front();
                }
                Ok(())
            }
            None => self.show(&record, line),
        }
    }

    fn show(&mut self, record: &FlowRecord, line: &str) -> io::Result<()> {
        match &mut self.tally {
            Some(tally) => {
                tally.add(record);
                Ok(())
            }
            None => self.printer.record(record, line),
        }
    }

    /// What was there is read: the records held back go out, and from now
    /// on each goes out as it comes.
    fn caught_up(&mut self) -> io::Result<()> {
        if let Some((_, latest)) = self.latest.take() {
            for (record, line) in latest {
                self.show(&record, &line)?;
            }
        }
        self.printer.flush()
    }

    fn finish(mut self) -> io::Result<()> {
        self.caught_up()?;
        if let Some(tally) = &self.tally {
            self.printer.summary(&tally.summary(SUMMARY_TOP))?;
        }
        self.printer.flush()
    }
}

/// Reads the flow log at `path` (rotated files first), then, when
/// `follow`, the lines written to it from then on, forever.
fn read_log<W: Write>(
    path: &Path,
    filter: &FlowFilter,
    follow: bool,
    records: Records<W>,
) -> Result<()> {
    let mut log = LogLines {
        filter,
        records,
        malformed: 0,
    };
    let files = files::log_files(path)?;
    let (current, rotated) = files.split_last().context("no files")?;
    for file in rotated {
        LogReader::open(file)?.read_to_end(&mut |line| log.take(line))?;
    }
    let mut current = LogReader::open(current)?;
    if !follow {
        current.read_to_end(&mut |line| log.take(line))?;
        if log.malformed > 0 {
            eprintln!("netseg flows: {} malformed lines skipped", log.malformed);
        }
        return Ok(log.records.finish()?);
    }
    current.read_lines(&mut |line| log.take(line))?;
    log.records.caught_up()?;
    let mut follower = files::Follower::new(current);
    loop {
        std::thread::sleep(FOLLOW_POLL);
        follower.poll(&mut |line| log.take(line))?;
        log.records.printer.flush()?;
    }
}

/// The lines of a flow log, to records that pass the filter.
struct LogLines<'f, W: Write> {
    filter: &'f FlowFilter,
    records: Records<W>,
    malformed: u64,
}

impl<W: Write> LogLines<'_, W> {
    /// A line that is no record is told, with its file and number, and skipped.
    fn take(&mut self, line: Line<'_>) -> io::Result<()> {
        if line.text.trim().is_empty() {
            return Ok(());
        }
        match FlowRecord::parse(line.text) {
            Ok(record) if self.filter.matches(&record) => self.records.take(record, line.text),
            Ok(_) => Ok(()),
            Err(error) => {
                self.malformed += 1;
                let (path, number) = (line.path.display(), line.number);
                eprintln!("{path}:{number}: not a flow record, skipped: {error}");
                Ok(())
            }
        }
    }
}

/// The line a follower of the flow API gets when it fell behind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Lost {
    lost: u64,
}

async fn ask_daemon<W: Write>(
    daemon: &str,
    args: &FlowsArgs,
    mut records: Records<W>,
) -> Result<()> {
    // A summary is of all the daemon holds.
    let limit = match (args.limit, args.summary) {
        (Some(limit), _) => Some(limit.to_string()),
        (None, true) => Some(usize::MAX.to_string()),
        (None, false) => None,
    };
    let mut pairs = args.filters.pairs();
    pairs.extend(limit.as_deref().map(|limit| ("limit", limit)));
    if args.follow {
        pairs.push(("follow", "true"));
    }
    let url = flows_url(daemon, pairs);
    read_lines(&url, |line| {
        match FlowRecord::parse(line) {
            Ok(record) => records.take(record, line)?,
            Err(error) => match serde_json::from_str::<Lost>(line) {
                Ok(Lost { lost }) => {
                    eprintln!("netseg flows: {lost} records lost: this follower fell behind")
                }
                Err(_) => eprintln!("netseg flows: not a flow record, skipped: {error}: {line}"),
            },
        }
        if args.follow {
            records.printer.flush()?;
        }
        Ok(())
    })
    .await?;
    Ok(records.finish()?)
}

#[cfg(test)]
mod tests;
