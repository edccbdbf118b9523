//! `netseg-cni install --bin-dir DIR --conf-dir DIR [--socket PATH]`: what
//! the DaemonSet's init container runs, as Cilium's and Calico's install
//! containers do: the binary goes into the runtime's plugin directory and
//! a netseg entry at the end of the conflist the runtime uses. Running it
//! again changes nothing.

use std::{
    fs, io,
    path::{Path, PathBuf},
    process::ExitCode,
};

use serde_json::{Value, json};

use crate::wire::DEFAULT_SOCKET;

/// The plugin's `type`, which is also its file name in the plugin directory.
pub const PLUGIN_TYPE: &str = "netseg-cni";

#[derive(Debug)]
pub enum InstallError {
    Io {
        path: PathBuf,
        source: io::Error,
    },
    /// No configuration yet: the cluster's main plugin writes it.
    NoConflist {
        dir: PathBuf,
    },
    /// The runtime would use a file this installer cannot chain into.
    NotAConflist {
        path: PathBuf,
        why: String,
    },
}

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::NoConflist { dir } => write!(
                f,
                "no CNI configuration in {} yet (the main plugin writes it)",
                dir.display()
            ),
            Self::NotAConflist { path, why } => write!(
                f,
                "{} is the configuration the runtime uses, but {why}",
                path.display()
            ),
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> InstallError + '_ {
    move |source| InstallError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Copies `binary` into `bin_dir` (replacing, never half-written).
pub fn install_binary(binary: &Path, bin_dir: &Path) -> Result<PathBuf, InstallError> {
    let target = bin_dir.join(PLUGIN_TYPE);
    let partial = bin_dir.join(format!(".{PLUGIN_TYPE}.partial"));
    fs::copy(binary, &partial).map_err(io_error(&partial))?;
    fs::rename(&partial, &target).map_err(io_error(&target))?;
    Ok(target)
}

/// The file the runtime loads: the first `.conf`, `.conflist` or `.json`
/// of `conf_dir` in name order (as libcni and containerd pick it).
pub fn active_config(conf_dir: &Path) -> Result<PathBuf, InstallError> {
    let mut files: Vec<PathBuf> = fs::read_dir(conf_dir)
        .map_err(io_error(conf_dir))?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| {
            matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("conf" | "conflist" | "json")
            )
        })
        .collect();
    files.sort();
    files.into_iter().next().ok_or(InstallError::NoConflist {
        dir: conf_dir.to_owned(),
    })
}

/// Appends the netseg entry to the conflist at `path`, or brings an
/// existing one's socket up to date. Returns whether the file changed.
pub fn chain_into(path: &Path, socket: &Path) -> Result<bool, InstallError> {
    let not_a_conflist = |why: &str| InstallError::NotAConflist {
        path: path.to_owned(),
        why: why.to_owned(),
    };
    let text = fs::read_to_string(path).map_err(io_error(path))?;
    let mut conflist: Value =
        serde_json::from_str(&text).map_err(|e| not_a_conflist(&format!("it is not JSON: {e}")))?;
    let plugins = conflist
        .get_mut("plugins")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| not_a_conflist("it has no \"plugins\" list (a single-plugin .conf)"))?;
    let entry = json!({ "type": PLUGIN_TYPE, "socket": socket });
    let existing = plugins
        .iter_mut()
        .find(|plugin| plugin.get("type").and_then(Value::as_str) == Some(PLUGIN_TYPE));
    match existing {
        Some(plugin) if plugin.get("socket") == entry.get("socket") => return Ok(false),
        Some(plugin) => plugin["socket"] = entry["socket"].clone(),
        None => plugins.push(entry),
    }
    let mut text = serde_json::to_string_pretty(&conflist)
        .map_err(io::Error::from)
        .map_err(io_error(path))?;
    text.push('\n');
    // Not ending in .conflist: the runtime must never load the partial file.
    let partial = path.with_file_name(format!(".{PLUGIN_TYPE}.partial"));
    fs::write(&partial, text).map_err(io_error(&partial))?;
    fs::rename(&partial, path).map_err(io_error(path))?;
    Ok(true)
}

struct Options {
    bin_dir: PathBuf,
    conf_dir: PathBuf,
    socket: PathBuf,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut bin_dir = None;
    let mut conf_dir = None;
    let mut socket = PathBuf::from(DEFAULT_SOCKET);
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .map(PathBuf::from)
            .ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--bin-dir" => bin_dir = Some(value),
            "--conf-dir" => conf_dir = Some(value),
            "--socket" => socket = value,
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(Options {
        bin_dir: bin_dir.ok_or("--bin-dir is required")?,
        conf_dir: conf_dir.ok_or("--conf-dir is required")?,
        socket,
    })
}

pub fn main(args: &[String]) -> ExitCode {
    let usage = "usage: netseg-cni install --bin-dir DIR --conf-dir DIR [--socket PATH]";
    let options = match parse(args) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("netseg-cni install: {error}\n{usage}");
            return ExitCode::from(2);
        }
    };
    let installed = std::env::current_exe()
        .map_err(io_error(Path::new("/proc/self/exe")))
        .and_then(|exe| install_binary(&exe, &options.bin_dir))
        .and_then(|binary| {
            let config = active_config(&options.conf_dir)?;
            let changed = chain_into(&config, &options.socket)?;
            Ok((binary, config, changed))
        });
    match installed {
        Ok((binary, config, changed)) => {
            let what = if changed { "added to" } else { "already in" };
            println!(
                "installed {}; netseg-cni {what} {}",
                binary.display(),
                config.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("netseg-cni install: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests;
