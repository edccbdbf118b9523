//! `netseg-cni`: run by the container runtime with `CNI_COMMAND` and the
//! netconf on stdin; `netseg-cni install ...` installs it on a node.

use std::{
    env,
    io::{BufRead, BufReader, Read, Write},
    os::unix::net::UnixStream,
    path::Path,
    process::ExitCode,
};

use netseg_cni::{
    install,
    spec::{self, CniError, LATEST_VERSION, NetConf, SUPPORTED_VERSIONS, code},
    wire::{Attachment, AttachmentId, MAX_MESSAGE_BYTES, Reply, Request},
};
use serde_json::{Value, json};

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("install") {
        return install::main(&args[1..]);
    }
    let mut stdin = Vec::new();
    let read = std::io::stdin()
        .take(MAX_MESSAGE_BYTES)
        .read_to_end(&mut stdin);
    let outcome = match read {
        Ok(_) => run(&env::var("CNI_COMMAND").unwrap_or_default(), &stdin),
        Err(error) => Err(CniError::new(
            code::IO_FAILURE,
            "cannot read the network configuration",
            error.to_string(),
        )),
    };
    let mut stdout = std::io::stdout().lock();
    let (output, exit) = match outcome {
        Ok(None) => return ExitCode::SUCCESS,
        Ok(Some(result)) => (result, ExitCode::SUCCESS),
        Err(error) => (json!(error), ExitCode::FAILURE),
    };
    match writeln!(stdout, "{output}") {
        Ok(()) => exit,
        Err(_) => ExitCode::FAILURE,
    }
}

/// What to print on success (`None`: nothing).
fn run(command: &str, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    if command == "VERSION" {
        return Ok(Some(version(stdin)));
    }
    let conf = NetConf::parse(stdin)?;
    let in_version = |error: CniError| error.in_version(&conf.cni_version);
    match command {
        "ADD" => add(&conf).map(Some).map_err(in_version),
        "DEL" => {
            del(&conf);
            Ok(None)
        }
        "CHECK" => check(&conf).map(|()| None).map_err(in_version),
        "STATUS" => ask(&conf, Request::Status, code::NOT_AVAILABLE)
            .map(|()| None)
            .map_err(in_version),
        // Nothing to collect: the daemon forgets an attachment when its
        // interface disappears.
        "GC" => Ok(None),
        _ => Err(in_version(CniError::new(
            code::INVALID_ENVIRONMENT,
            "unknown CNI_COMMAND",
            format!("CNI_COMMAND is {command:?}"),
        ))),
    }
}

fn version(stdin: &[u8]) -> Value {
    // The runtime's version is echoed back; without one, the latest.
    let asked = serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| LATEST_VERSION.to_owned());
    json!({ "cniVersion": asked, "supportedVersions": SUPPORTED_VERSIONS })
}

/// Holds the ADD until the daemon enforces the pod, then passes
/// `prevResult` through unchanged: this plugin creates nothing.
fn add(conf: &NetConf) -> Result<Value, CniError> {
    let attachment = attachment(conf)?;
    ask(conf, Request::Add(attachment), code::TRY_AGAIN_LATER)?;
    conf.required_prev_result().cloned()
}

fn check(conf: &NetConf) -> Result<(), CniError> {
    let attachment = attachment(conf)?;
    ask(conf, Request::Check(attachment), code::TRY_AGAIN_LATER)
}

/// Best effort, as the spec asks of DEL: a daemon that is gone has nothing
/// to forget, and it drops the attachment anyway when the interface goes.
fn del(conf: &NetConf) {
    let Ok(id) = attachment_id() else { return };
    if let Err(error) = ask(conf, Request::Del(id), code::TRY_AGAIN_LATER) {
        eprintln!("netseg-cni: DEL: {}: {}", error.msg, error.details);
    }
}

fn attachment_id() -> Result<AttachmentId, CniError> {
    let [container_id, ifname] = required_env(["CNI_CONTAINERID", "CNI_IFNAME"])?;
    Ok(AttachmentId {
        container_id,
        ifname,
    })
}

fn attachment(conf: &NetConf) -> Result<Attachment, CniError> {
    let id = attachment_id()?;
    required_env(["CNI_NETNS"])?;
    let (namespace, name) = spec::pod_of(&env::var("CNI_ARGS").unwrap_or_default())?;
    let (host_interfaces, ips) = spec::interfaces_and_ips(conf.required_prev_result()?)?;
    Ok(Attachment {
        id,
        namespace,
        name,
        host_interfaces,
        ips,
    })
}

fn required_env<const N: usize>(names: [&str; N]) -> Result<[String; N], CniError> {
    let values = names.map(|name| env::var(name).ok().filter(|v| !v.is_empty()));
    let missing: Vec<&str> = names
        .iter()
        .zip(&values)
        .filter(|(_, value)| value.is_none())
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() {
        return Err(CniError::new(
            code::INVALID_ENVIRONMENT,
            "missing environment variables",
            missing.join(", "),
        ));
    }
    Ok(values.map(Option::unwrap_or_default))
}

/// Sends `request` and waits (bounded by the netconf's timeout) for the
/// daemon's reply. Unreachable, silent or refusing: an error with
/// `unavailable` or, when the daemon answered no, [`code::NOT_ENFORCED`].
fn ask(conf: &NetConf, request: Request, unavailable: u32) -> Result<(), CniError> {
    let socket = conf.socket();
    let failed = |error: std::io::Error| {
        CniError::new(
            unavailable,
            "the netseg daemon did not confirm",
            format!("{}: {error}", socket.display()),
        )
    };
    let reply = exchange(&socket, conf, &request).map_err(failed)?;
    match reply.error {
        None => Ok(()),
        Some(error) => Err(CniError::new(
            code::NOT_ENFORCED,
            "netseg does not enforce the pod",
            error,
        )),
    }
}

fn exchange(socket: &Path, conf: &NetConf, request: &Request) -> std::io::Result<Reply> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(conf.timeout()))?;
    stream.set_write_timeout(Some(conf.timeout()))?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut reply = String::new();
    BufReader::new(stream.take(MAX_MESSAGE_BYTES)).read_line(&mut reply)?;
    Ok(serde_json::from_str(&reply)?)
}
