//! Running the real `netseg daemon` inside a node namespace, with the
//! manifests, flow log and status file where the benchmark wants them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use netseg_testbed::{
    DaemonStatus, Node,
    daemon::{DaemonPaths, DaemonSource, daemon_command},
};
use serde_json::{Value, json};

/// A daemon this benchmark started; SIGTERM on drop, SIGKILL after 5 s.
pub struct NetsegDaemon {
    child: Child,
    pub status_path: PathBuf,
    pub log_path: PathBuf,
}

impl NetsegDaemon {
    /// The daemon reading `source` (a manifests directory, or the API
    /// server a kubeconfig names).
    pub fn start(
        binary: &Path,
        node: &Node,
        source: DaemonSource<'_>,
        flow_log: &Path,
        work: &Path,
        extra_args: &[&str],
    ) -> Result<Self> {
        let status_path = work.join("status.json");
        let log_path = work.join("daemon.log");
        let _ = fs::remove_file(&status_path);
        let log = fs::File::create(&log_path)?;
        let paths = DaemonPaths {
            source,
            flow_log,
            status_file: &status_path,
        };
        let mut command = daemon_command(binary, &[], node, &paths, log)?;
        command.args(extra_args);
        let child = command.spawn().context("starting netseg daemon")?;
        Ok(Self {
            child,
            status_path,
            log_path,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn status(&self) -> Option<DaemonStatus> {
        let text = fs::read_to_string(&self.status_path).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Waits until `done(status)`; fails if the daemon exits or on timeout.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        done: impl Fn(&DaemonStatus) -> bool,
    ) -> Result<DaemonStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.status()
                && done(&status)
            {
                return Ok(status);
            }
            if let Some(exit) = self.child.try_wait()? {
                bail!("netseg exited ({exit}): {}", self.log_tail());
            }
            if Instant::now() >= deadline {
                bail!(
                    "netseg not ready after {timeout:?}; status {:?}; log: {}",
                    self.status(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(&self.log_path).unwrap_or_default();
        let start = log.len().saturating_sub(2000);
        log[log.floor_char_boundary(start)..].to_owned()
    }

    /// `VmRSS` and `VmHWM` in KiB.
    pub fn memory_kib(&self) -> Result<(u64, u64)> {
        let text = fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                .with_context(|| format!("{name} in /proc/pid/status"))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// CPU time (user + system) the daemon used so far, in seconds.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let text = fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        let after = text.rsplit_once(')').context("stat")?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Ok(ticks as f64 / hz)
    }
}

impl Drop for NetsegDaemon {
    fn drop(&mut self) {
        // SAFETY: signalling the child this struct started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An unrelated /32 for the `i`-th non-matching rule: 172.16.0.0/12,
/// which no pod of the harness uses.
pub fn unrelated_ipv4(i: usize) -> std::net::Ipv4Addr {
    let i = i as u32;
    std::net::Ipv4Addr::from(0xac10_0000 | (i & 0x000f_ffff))
}

/// A NetworkPolicy object selecting `app=<selected>` with one rule in
/// `direction` (`ingress`/`egress`) whose peers are `n` unrelated /32
/// ipBlocks and, last, the pods labelled `app=<peer>` (all ports).
pub fn rule_walk_policy(
    name: &str,
    selected: &str,
    direction: &str,
    n: usize,
    peer: &str,
) -> Value {
    let mut peers: Vec<Value> = (0..n)
        .map(|i| json!({ "ipBlock": { "cidr": format!("{}/32", unrelated_ipv4(i)) } }))
        .collect();
    peers.push(json!({ "podSelector": { "matchLabels": { "app": peer } } }));
    let (types, key) = if direction == "ingress" {
        ("Ingress", "from")
    } else {
        ("Egress", "to")
    };
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": { "name": name, "namespace": "bench" },
        "spec": {
            "podSelector": { "matchLabels": { "app": selected } },
            "policyTypes": [types],
            direction: [ { key: peers } ],
        },
    })
}
