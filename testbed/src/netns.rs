//! Creating, entering and deleting the test's own network namespaces.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};

use anyhow::{Context, Result, bail};
use nix::sched::{CloneFlags, setns};

/// Every namespace this harness creates starts with this prefix, followed by
/// the creating process id: `nst-<pid>-<n>-<role>`.
pub const NETNS_PREFIX: &str = "nst-";
const NETNS_DIR: &str = "/run/netns";

/// `ip netns add` mounts /run/netns on itself the first time; two threads
/// doing that at once can stack mounts, so the process serialises its calls.
static NETNS_LOCK: Mutex<()> = Mutex::new(());

/// Something that lives in a network namespace of the test: a node or a pod.
pub trait Netns {
    /// The name under /run/netns.
    fn netns_name(&self) -> &str;
}

/// Panics with an explanation unless the process runs as root: the
/// privileged tests must fail loudly, never pass by doing nothing.
pub fn require_root() {
    if !nix::unistd::geteuid().is_root() {
        panic!(
            "netseg-tests creates network namespaces and veth pairs and must run as root \
             (CI does): run `sudo -E cargo test -p netseg-tests`"
        );
    }
}

/// Runs `f` on a fresh thread that first entered the network namespace
/// `name`, and returns its result. Sockets created inside `f` stay in that
/// namespace for their whole life, wherever they are used afterwards.
pub fn in_netns<T, F>(name: &str, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let path = netns_path(name);
    let ns = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name(format!("in {name}"))
            .spawn_scoped(scope, move || {
                setns(&ns, CloneFlags::CLONE_NEWNET).map(|()| f())
            })
            .context("spawning a thread")?;
        match handle.join() {
            Ok(result) => result.with_context(|| format!("entering network namespace {name}")),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// A network namespace created by this process, deleted on drop.
#[derive(Debug)]
pub struct NetnsGuard {
    name: String,
}

impl NetnsGuard {
    /// Creates `nst-<pid>-<n>-<role>`; `role` is shortened and sanitised.
    pub fn create(role: &str) -> Result<Self> {
        require_root();
        static CLEANUP: Once = Once::new();
        CLEANUP.call_once(|| match cleanup_stale_namespaces() {
            Ok(removed) if !removed.is_empty() => {
                eprintln!("netseg-tests: removed stale namespaces {removed:?}")
            }
            Ok(_) => {}
            Err(e) => eprintln!("netseg-tests: cleaning stale namespaces: {e:#}"),
        });
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "{NETNS_PREFIX}{}-{n}-{}",
            std::process::id(),
            sanitize(role, 24)
        );
        let _serialised = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        run("ip", &["netns", "add", &name])?;
        Ok(Self { name })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = delete_netns(&self.name) {
            eprintln!("netseg-tests: {e:#}");
        }
    }
}

/// Deletes a namespace by name; a namespace already gone is not an error.
/// Its interfaces disappear with it once nothing holds it any more (a socket
/// still open inside it keeps it alive, invisible, until closed).
pub fn delete_netns(name: &str) -> Result<()> {
    let _serialised = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !netns_exists(name) {
        return Ok(());
    }
    run("ip", &["netns", "delete", name]).map(drop)
}

pub fn netns_exists(name: &str) -> bool {
    netns_path(name).exists()
}

pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Deletes the namespaces named `nst-<pid>-...` whose process is gone, and
/// returns their names. Namespaces of live processes are left alone.
pub fn cleanup_stale_namespaces() -> Result<Vec<String>> {
    let entries = match fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).context(NETNS_DIR),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some(pid) = creator_pid(&name) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            delete_netns(&name)?;
            removed.push(name);
        }
    }
    Ok(removed)
}

/// The pid encoded in a harness namespace name, `None` for other names.
pub(crate) fn creator_pid(name: &str) -> Option<u32> {
    name.strip_prefix(NETNS_PREFIX)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// Runs `ip -n <netns> -batch -` with one command per line; stops at the
/// first failing line.
pub fn ip_batch(netns: &str, commands: &[String]) -> Result<()> {
    let mut child = Command::new("ip")
        .args(["-n", netns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running ip (iproute2)")?;
    let mut stdin = child.stdin.take().context("ip stdin")?;
    stdin.write_all(commands.join("\n").as_bytes())?;
    drop(stdin);
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "ip -n {netns} -batch failed: {}\ncommands:\n{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            commands.join("\n")
        );
    }
    Ok(())
}

/// Runs a command to completion and returns its stdout; a failure carries
/// the command line and its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Writes sysctls of one namespace, e.g. `("net/ipv4/ip_forward", "1")`.
/// /proc/sys/net shows the namespace of the thread that opens it, so this
/// never touches the machine's own settings.
pub fn write_sysctls(netns: &str, settings: &[(&str, &str)]) -> Result<()> {
    in_netns(netns, || {
        settings.iter().try_for_each(|(key, value)| {
            let path = format!("/proc/sys/{key}");
            fs::write(&path, value).with_context(|| format!("writing {value:?} to {path}"))
        })
    })?
}

/// Lower-case letters, digits and `-` only, at most `max` characters.
pub(crate) fn sanitize(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creator_pid_is_parsed_from_harness_names_only() {
        assert_eq!(creator_pid("nst-1234-0-node"), Some(1234));
        assert_eq!(creator_pid("nst-1234-7-x-a"), Some(1234));
        assert_eq!(creator_pid("nst-x-0-node"), None);
        assert_eq!(creator_pid("cni-1234"), None);
    }

    #[test]
    fn sanitize_keeps_names_short_and_plain() {
        assert_eq!(sanitize("x/A b", 10), "x-a-b");
        assert_eq!(sanitize("abcdefghijkl", 4), "abcd");
    }
}
