//! The four datapath measures, each run from the client pod against the
//! server pod of a [`Bed`].

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use netseg_testbed::{Netns, in_netns};
use serde_json::Value;

use crate::bed::{self, Bed, CONN_PORT, IPERF_PORT, SENDER_CPU, SINK_PORT, SOCKPERF_PORT};
use crate::connrate;
use crate::receiver::{self, Receiver, SinkDrop};

/// How long each measure runs (after its warm-up).
#[derive(Debug, Clone, Copy)]
pub struct Durations {
    pub tcp: Duration,
    pub packets: Duration,
    pub latency: Duration,
    pub connections: Duration,
}

/// Single-stream TCP throughput in Gbit/s (iperf3, receiver side).
pub fn tcp_throughput(bed: &Bed, duration: Duration) -> Result<f64> {
    let out = bed::run_in(
        bed.client.netns_name(),
        &[
            "timeout",
            "60",
            "iperf3",
            "-c",
            &bed.server_ip().to_string(),
            "-p",
            &IPERF_PORT.to_string(),
            "-t",
            &duration.as_secs().max(1).to_string(),
            "-O",
            "1",
            "-J",
        ],
    )?;
    let json: Value = serde_json::from_str(&out).context("iperf3 -J output")?;
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|bps| bps / 1e9)
        .with_context(|| format!("no end.sum_received in iperf3 output: {out:.400}"))
}

/// UDP request-response latency (sockperf ping-pong, 64-byte messages):
/// (p50, p99) in microseconds, one way (sockperf's default: RTT / 2).
pub fn udp_latency(bed: &Bed, duration: Duration) -> Result<(f64, f64)> {
    let out = bed::run_in(
        bed.client.netns_name(),
        &[
            "timeout",
            "60",
            "taskset",
            "-c",
            &SENDER_CPU.to_string(),
            "sockperf",
            "ping-pong",
            "-i",
            &bed.server_ip().to_string(),
            "-p",
            &SOCKPERF_PORT.to_string(),
            "-m",
            "64",
            "-t",
            &duration.as_secs().max(1).to_string(),
        ],
    )?;
    let percentile = |p: &str| {
        out.lines()
            .find(|line| line.contains(&format!("percentile {p} =")))
            .and_then(|line| line.rsplit('=').next()?.trim().parse::<f64>().ok())
            .with_context(|| format!("no percentile {p} in sockperf output: {out:.600}"))
    };
    Ok((percentile("50.000")?, percentile("99.000")?))
}

/// New TCP connections per second, one connect-request-close loop.
pub fn connection_rate(bed: &Bed, duration: Duration) -> Result<f64> {
    let addr = SocketAddr::new(bed.server_ip().into(), CONN_PORT);
    let run = connrate::run_clients(&bed.client, addr, 1, duration)?;
    if run.completed == 0 {
        bail!("no connection completed ({} failed)", run.failed);
    }
    Ok(run.per_second())
}

/// A 60-byte frame (64 on the wire with the FCS) from the client to the
/// `destination` (the server's discard port in the datapath measure), with `source_port` and `dest_port` as trafgen
/// expressions (e.g. `c16(4000)` or `drnd(2)`).
pub fn trafgen_config(
    bed: &Bed,
    destination: Ipv4Addr,
    source_port: &str,
    dest_port: &str,
) -> Result<String> {
    let dst_mac = bed::mac_of(bed.node.netns_name(), bed.client.host_ifname())?;
    let src_mac = bed::mac_of(bed.client.netns_name(), "eth0")?;
    let hex = |bytes: &[u8]| {
        bytes
            .iter()
            .map(|b| format!("0x{b:02x}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(format!(
        "{{\n  {}, {},\n  c16(0x0800),\n  0x45, 0x00, c16(46), c16(0), c16(0x4000), 64, 17, csumip(14, 33),\n  \
         {}, {},\n  {source_port}, {dest_port}, c16(26), csumudp(14, 34),\n  fill(0x00, 18)\n}}\n",
        hex(&dst_mac),
        hex(&src_mac),
        hex(&bed.client_ip().octets()),
        hex(&destination.octets()),
    ))
}

/// A trafgen process sending from the client pod on [`SENDER_CPU`];
/// stopped (its whole process group) on drop.
pub struct Trafgen {
    child: std::process::Child,
    _config: tempfile_path::TempPath,
}

impl Trafgen {
    /// As fast as it can with `rate` `None` (`-t 0`), else at `rate` pps.
    pub fn start(bed: &Bed, config: &str, rate: Option<u64>) -> Result<Self> {
        let path = tempfile_path::TempPath::write("netseg-bench-trafgen", config)?;
        let pacing = match rate {
            Some(pps) => vec!["-b".to_owned(), format!("{pps}pps")],
            None => vec!["-t".to_owned(), "0".to_owned()],
        };
        let child = Command::new("ip")
            .args(["netns", "exec", bed.client.netns_name()])
            .args(["taskset", "-c", &SENDER_CPU.to_string()])
            .args(["trafgen", "--dev", "eth0", "--conf"])
            .arg(path.path())
            // -t 0: sendto() per packet (the TX ring stalls under RPS);
            // --no-sock-mem / --notouch-irq (-A is broken in 0.6.8): leave socket memory sysctls and IRQ affinity alone.
            .args(&pacing)
            .args(["-P", "1", "--no-sock-mem", "--notouch-irq", "-C"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting trafgen")?;
        Ok(Self {
            child,
            _config: path,
        })
    }
}

impl Drop for Trafgen {
    fn drop(&mut self) {
        let group = self.child.id() as i32;
        // SAFETY: signalling the process group this struct created.
        unsafe { libc::kill(-group, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                // trafgen's worker may still be exiting.
                unsafe { libc::kill(-group, libc::SIGKILL) };
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// 64-byte packets per second received by the server pod's eth0 while
/// trafgen sends as fast as it can, after a one-second warm-up, with the
/// server's `receiver` installed for the measurement.
pub fn packet_rate(bed: &Bed, receiver: Receiver, duration: Duration) -> Result<f64> {
    let _drop = match receiver {
        Receiver::Drop => Some(SinkDrop::install(bed)?),
        Receiver::Stack => None,
    };
    let config = trafgen_config(
        bed,
        bed.server_ip(),
        "c16(4000)",
        &format!("c16({SINK_PORT})"),
    )?;
    let _trafgen = Trafgen::start(bed, &config, None)?;
    std::thread::sleep(Duration::from_secs(1));
    let sent_before = dev_counter(&bed.client, "eth0", TX_PACKETS)?;
    let cpu_before = cpu_times()?;
    let stack_before = receiver::udp_no_ports(&bed.server)?;
    let (before, start) = (rx_packets(&bed.server, "eth0")?, Instant::now());
    std::thread::sleep(duration);
    let (after, end) = (rx_packets(&bed.server, "eth0")?, Instant::now());
    let reached_stack = receiver::udp_no_ports(&bed.server)? - stack_before;
    let seconds = end.duration_since(start).as_secs_f64();
    let sent = dev_counter(&bed.client, "eth0", TX_PACKETS)? - sent_before;
    let busy: Vec<String> = cpu_times()?
        .iter()
        .zip(&cpu_before)
        .map(|(a, b)| {
            let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| (x - y) as f64).collect();
            let total: f64 = d.iter().sum::<f64>().max(1.0);
            // user nice system idle iowait irq softirq
            format!(
                "usr+sys {:.0}% softirq {:.0}% idle {:.0}%",
                100.0 * (d[0] + d[1] + d[2]) / total,
                100.0 * d[6] / total,
                100.0 * d[3] / total
            )
        })
        .collect();
    eprintln!(
        "netseg-bench:     packets ({} receiver): client sent {:.0}/s, server received {:.0}/s, its stack {:.0}/s; {}",
        receiver.name(),
        sent as f64 / seconds,
        (after - before) as f64 / seconds,
        reached_stack as f64 / seconds,
        busy.iter()
            .enumerate()
            .map(|(i, b)| format!("cpu{i} {b}"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    receiver::check(receiver, after - before, reached_stack)?;
    Ok((after - before) as f64 / seconds)
}

/// Jiffies per CPU from /proc/stat: user, nice, system, idle, iowait, irq, softirq.
fn cpu_times() -> Result<Vec<Vec<u64>>> {
    let text = fs::read_to_string("/proc/stat")?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(7)
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .collect())
}

/// The field of `/proc/net/dev` that counts transmitted packets.
pub const TX_PACKETS: usize = 9;

/// Field `index` (0 = rx bytes, 1 = rx packets, [`TX_PACKETS`]) of `ifname`.
pub fn dev_counter(pod: &impl Netns, ifname: &str, index: usize) -> Result<u64> {
    let text = in_netns(pod.netns_name(), || {
        fs::read_to_string("/proc/thread-self/net/dev")
    })??;
    let line = text
        .lines()
        .find(|l| l.split_once(':').is_some_and(|(n, _)| n.trim() == ifname))
        .with_context(|| format!("no {ifname} in /proc/net/dev"))?;
    let fields: Vec<&str> = line
        .split_once(':')
        .context("dev line")?
        .1
        .split_whitespace()
        .collect();
    fields
        .get(index)
        .context("counter field")?
        .parse()
        .context("counter")
}

/// Received packets of `ifname` in the namespace of `pod`.
pub fn rx_packets(pod: &impl Netns, ifname: &str) -> Result<u64> {
    let text = in_netns(pod.netns_name(), || {
        fs::read_to_string("/proc/thread-self/net/dev")
    })??;
    for line in text.lines() {
        if let Some((name, counters)) = line.split_once(':')
            && name.trim() == ifname
        {
            let fields: Vec<&str> = counters.split_whitespace().collect();
            return fields
                .get(1)
                .context("rx packets field")?
                .parse()
                .context("rx packets");
        }
    }
    bail!("no {ifname} in /proc/net/dev of {}", pod.netns_name())
}

/// A file in the temp directory, removed on drop.
mod tempfile_path {
    use std::path::{Path, PathBuf};

    pub struct TempPath(PathBuf);

    impl TempPath {
        pub fn write(prefix: &str, content: &str) -> std::io::Result<Self> {
            use std::sync::atomic::{AtomicU32, Ordering};
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "{prefix}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, content)?;
            Ok(Self(path))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}
