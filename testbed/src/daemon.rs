//! The real `netseg` daemon, started inside a node namespace.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Deserialize;
use serde_json::Value;
use tempfile::TempDir;

use crate::topology::Node;

/// How long the daemon gets to apply policies before a wait fails.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the daemon gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(50);
/// Longer than the daemon's sources hold a burst after a reload (50 ms).
const RELOADS_SETTLED: Duration = Duration::from_millis(150);

/// The status file the daemon rewrites (atomically) after every policy
/// application. Unknown fields are ignored, missing ones default.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct DaemonStatus {
    /// The active policy revision in the datapath (0: nothing published).
    pub revision: u32,
    /// How many times the daemon took in what its source holds.
    pub reloads: u64,
    /// Whether the source has read everything it watches at least once.
    pub synced: bool,
    /// What the daemon waits for before it enforces its own policy (pinned
    /// programs of a previous daemon enforce until then); not ready while set.
    pub waiting_for: Option<String>,
    /// Local pods whose interface has programs and policy.
    pub endpoints: u64,
    pub interfaces: Vec<InterfaceStatus>,
    pub pods_without_interface: Vec<String>,
    pub problems: Vec<String>,
    /// The last publication that carried a change of the source, timed.
    pub last_change: Option<LastChange>,
    /// Packets per verdict reason.
    pub counters: BTreeMap<String, u64>,
    pub ebpf: Option<LoadedObject>,
}

/// A policy change's implementation delay and the stages it went through,
/// in order.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct LastChange {
    /// The revision that carried it.
    pub revision: u32,
    pub total_ms: f64,
    pub stages: Vec<StageTime>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct StageTime {
    pub stage: String,
    pub ms: f64,
}

/// The eBPF object the daemon loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct LoadedObject {
    pub sha256: String,
    /// By program name: the kernel's tag, 16 hex digits.
    pub program_tags: BTreeMap<String, String>,
}

/// One interface the daemon attached to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct InterfaceStatus {
    pub name: String,
    pub ifindex: u32,
    /// `namespace/name` of the pod behind it, if known.
    pub pod: Option<String>,
}

impl DaemonStatus {
    pub fn interface_names(&self) -> Vec<&str> {
        self.interfaces.iter().map(|i| i.name.as_str()).collect()
    }
}

/// Where the daemon binary is: `$NETSEG_BIN`, else `netseg` in the cargo
/// profile directory of the running test (`target/<profile>/netseg`).
pub fn netseg_binary() -> Result<PathBuf> {
    workspace_binary("netseg", "NETSEG_BIN")
}

/// Where binary `name` of the workspace is: `$<variable>`, else in the
/// cargo profile directory of the running test (`target/<profile>/<name>`).
pub fn workspace_binary(name: &str, variable: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("{variable}={} is not a file", path.display());
        }
        return Ok(path);
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    // Test executables live in target/<profile>/deps/.
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join(name))
        .collect();
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "the {name} binary is not built (looked at {candidates:?}): run `cargo build` \
                 with the same profile as the tests, or set {variable}"
            )
        })
}

/// Where a daemon reads the objects it enforces.
#[derive(Debug, Clone, Copy)]
pub enum DaemonSource<'a> {
    /// `--manifests DIR`
    Manifests(&'a Path),
    /// `--kubeconfig FILE`: the API server (a fake one, in tests) it names.
    Kubeconfig(&'a Path),
}

/// Where a daemon reads its objects and writes its flow log and status.
pub struct DaemonPaths<'a> {
    pub source: DaemonSource<'a>,
    pub flow_log: &'a Path,
    pub status_file: &'a Path,
}

/// `ip netns exec <node> [WRAPPER..] BINARY daemon --manifests DIR |
/// --kubeconfig FILE --node-name .. --flow-log .. --status-file ..`, output
/// to `log`, and SIGTERM to the daemon if the thread that starts it dies
/// without stopping it. `wrapper` is a program and its arguments that
/// exec the daemon (e.g. `setpriv` with fewer capabilities), or empty.
pub fn daemon_command(
    binary: &Path,
    wrapper: &[&str],
    node: &Node,
    paths: &DaemonPaths<'_>,
    log: File,
) -> Result<Command> {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", node.netns_name()])
        .args(wrapper)
        .arg(binary)
        .arg("daemon");
    match paths.source {
        DaemonSource::Manifests(dir) => command.arg("--manifests").arg(dir),
        DaemonSource::Kubeconfig(file) => command.arg("--kubeconfig").arg(file),
    };
    command
        .args(["--node-name", node.name()])
        .arg("--flow-log")
        .arg(paths.flow_log)
        .arg("--status-file")
        .arg(paths.status_file)
        // Plain logs: they end up in files and panic messages.
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: prctl is async-signal-safe and touches no memory of the
    // parent. `ip netns exec` execs the daemon in the same process, so the
    // daemon gets SIGTERM if the thread that started it dies without
    // dropping it (e.g. the test process is killed).
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(command)
}

/// A running daemon; dropping it sends SIGTERM and kills it after 5 s.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    dir: TempDir,
}

impl Daemon {
    /// Runs `ip netns exec <node-ns> netseg daemon --manifests DIR
    /// --node-name <node> --flow-log FILE --status-file FILE [extra...]`
    /// with stdout and stderr written to [`Daemon::log_path`].
    pub fn start(node: &Node, manifests_dir: &Path, extra_args: &[&str]) -> Result<Self> {
        Self::start_binary(&netseg_binary()?, node, manifests_dir, extra_args)
    }

    /// [`Daemon::start`] in Kubernetes mode: `--kubeconfig FILE` instead of
    /// `--manifests DIR`. The API server it names must be reachable from
    /// the node namespace, where the daemon runs.
    pub fn start_kube(node: &Node, kubeconfig: &Path, extra_args: &[&str]) -> Result<Self> {
        Self::launch(
            &netseg_binary()?,
            &[],
            node,
            DaemonSource::Kubeconfig(kubeconfig),
            extra_args,
        )
    }

    /// [`Daemon::start`] with another executable that takes the same
    /// arguments (the harness tests its plumbing with a fake daemon).
    pub fn start_binary(
        binary: &Path,
        node: &Node,
        manifests_dir: &Path,
        extra_args: &[&str],
    ) -> Result<Self> {
        Self::launch(
            binary,
            &[],
            node,
            DaemonSource::Manifests(manifests_dir),
            extra_args,
        )
    }

    /// The most general start: `binary` exec'd by `wrapper` (a program and
    /// its arguments, or empty), reading `source`.
    pub fn launch(
        binary: &Path,
        wrapper: &[&str],
        node: &Node,
        source: DaemonSource<'_>,
        extra_args: &[&str],
    ) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("netseg-daemon-")
            .tempdir()?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("daemon.log"))?;
        let paths = DaemonPaths {
            source,
            flow_log: &dir.path().join("flows.jsonl"),
            status_file: &dir.path().join("status.json"),
        };
        let mut command = daemon_command(binary, wrapper, node, &paths, log)?;
        command.args(extra_args);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self {
            child: Some(child),
            dir,
        })
    }

    /// The process id of the daemon (of `ip netns exec` and any wrapper
    /// before they exec'd it), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn status_path(&self) -> PathBuf {
        self.dir.path().join("status.json")
    }

    pub fn flow_log_path(&self) -> PathBuf {
        self.dir.path().join("flows.jsonl")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    /// What the daemon printed so far (stdout and stderr).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The current status, `None` before the first policy application.
    pub fn status(&self) -> Result<Option<DaemonStatus>> {
        match fs::read_to_string(self.status_path()) {
            Ok(text) => Ok(Some(
                serde_json::from_str(&text).with_context(|| format!("status file: {text}"))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).context("reading the status file"),
        }
    }

    /// Waits until the daemon reports `endpoints` attached endpoints.
    pub fn wait_ready(&mut self, endpoints: u64) -> Result<DaemonStatus> {
        self.wait_status(&format!("{endpoints} endpoints"), READY_TIMEOUT, |s| {
            s.endpoints == endpoints
        })
    }

    /// Waits until the daemon enforces a complete policy of its own: its
    /// source is synced, it waits for nothing (no pinned programs of a
    /// previous daemon stand in for it), and `endpoints` pods are enforced.
    pub fn wait_in_charge(&mut self, endpoints: u64) -> Result<DaemonStatus> {
        self.wait_status(
            &format!("a synced source, nothing waited for and {endpoints} endpoints"),
            READY_TIMEOUT,
            |s| s.synced && s.waiting_for.is_none() && s.revision > 0 && s.endpoints == endpoints,
        )
    }

    /// Waits until the daemon applied policy again after `previous_reloads`,
    /// and took in whatever followed: its sources take the first change of
    /// a burst at once and the rest within 50 ms, so one reload may be of
    /// an earlier change (the daemon's own status writes to the API wake it
    /// too) and not yet of the one the caller just made.
    pub fn wait_reload_after(&mut self, previous_reloads: u64) -> Result<DaemonStatus> {
        let mut status = self.wait_status(
            &format!("a reload after reload {previous_reloads}"),
            READY_TIMEOUT,
            |s| s.reloads > previous_reloads,
        )?;
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            std::thread::sleep(RELOADS_SETTLED);
            match self.status()? {
                Some(now) if now.reloads == status.reloads => return Ok(now),
                Some(now) => status = now,
                None => {}
            }
        }
        Ok(status)
    }

    /// Waits until the status satisfies `done`; fails early if the daemon
    /// exits, and with its log on timeout.
    pub fn wait_status(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&DaemonStatus) -> bool,
    ) -> Result<DaemonStatus> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            // A status file written between two reads may be mid-rename on
            // other file systems; a parse error is retried until the deadline.
            if let Ok(Some(status)) = self.status() {
                if done(&status) {
                    return Ok(status);
                }
                last = Some(status);
            }
            if let Some(exit) = self.try_exit()? {
                bail!(
                    "the daemon exited ({exit}) while waiting for {what}\n--- daemon log ---\n{}",
                    self.log()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {timeout:?} waiting for {what}; last status: {last:?}\n\
                     --- daemon log ---\n{}",
                    self.log()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Every complete line of the flow log, parsed.
    pub fn flows(&self) -> Result<Vec<Value>> {
        let text = match fs::read_to_string(self.flow_log_path()) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).context("reading the flow log"),
        };
        // The last line may still be being written.
        let complete = text.rsplit_once('\n').map_or("", |(done, _)| done);
        complete
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line).with_context(|| format!("flow log line: {line}"))
            })
            .collect()
    }

    /// Waits for a flow record matching `matches`.
    pub fn wait_for_flow(
        &self,
        matches: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let flows = self.flows()?;
            if let Some(flow) = flows.iter().find(|flow| matches(flow)) {
                return Ok(flow.clone());
            }
            if Instant::now() >= deadline {
                let tail: Vec<String> = flows.iter().rev().take(20).map(Value::to_string).collect();
                bail!(
                    "no matching flow within {timeout:?}; {} flows, the last ones:\n{}",
                    flows.len(),
                    tail.join("\n")
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// The daemon's exit status if it has exited.
    pub fn try_exit(&mut self) -> Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => Ok(child.try_wait()?),
            None => bail!("the daemon was already stopped"),
        }
    }

    /// SIGKILL: the daemon gets no chance to clean up, as in a crash.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        let mut child = self
            .child
            .take()
            .context("the daemon was already stopped")?;
        child.kill()?;
        Ok(child.wait()?)
    }

    /// SIGTERM, then SIGKILL after 5 s; returns how it exited.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        let mut child = self
            .child
            .take()
            .context("the daemon was already stopped")?;
        if child.try_wait()?.is_none() {
            let pid = Pid::from_raw(i32::try_from(child.id())?);
            let _ = kill(pid, Signal::SIGTERM);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while child.try_wait()?.is_none() && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
            if child.try_wait()?.is_none() {
                eprintln!(
                    "netseg-tests: the daemon ignored SIGTERM for {STOP_TIMEOUT:?}, killing it"
                );
                child.kill()?;
            }
        }
        Ok(child.wait()?)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_none() {
            return;
        }
        if let Err(e) = self.stop() {
            eprintln!("netseg-tests: stopping the daemon: {e:#}");
        }
        if std::thread::panicking() {
            eprintln!(
                "--- daemon log ({}) ---\n{}",
                self.log_path().display(),
                self.log()
            );
        }
    }
}
