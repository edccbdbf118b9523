//! The daemon's end of `netseg-cni` (`--cni-socket`): requests come in on
//! a unix socket and go to the enforcer, which replies once it has acted.

mod registry;

use std::{io, path::Path, time::Duration};

use netseg_cni::wire::{MAX_MESSAGE_BYTES, Reply, Request};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
};
use tracing::{debug, warn};

pub use registry::{CniRegistry, resolve_interface};

/// How long a connection may take to send its request: the plugin writes
/// it at once, and a stuck client must not hold a task forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A request and where its reply goes.
pub struct CniRequest {
    pub request: Request,
    pub reply: oneshot::Sender<Reply>,
}

#[derive(Debug, thiserror::Error)]
pub enum CniSocketError {
    #[error("preparing the CNI socket {path}")]
    Prepare {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("listening on the CNI socket {path}")]
    Bind {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Listens on `path` (replacing a socket a previous daemon left there),
/// readable and writable by root only, and yields each request.
pub fn serve(path: &Path) -> Result<mpsc::Receiver<CniRequest>, CniSocketError> {
    let prepare = |source| CniSocketError::Prepare {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(prepare)?;
    }
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(prepare(error)),
        _ => {}
    }
    let listener = UnixListener::bind(path).map_err(|source| CniSocketError::Bind {
        path: path.display().to_string(),
        source,
    })?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(prepare)?;
    let (requests, received) = mpsc::channel(64);
    tokio::spawn(accept(listener, requests));
    Ok(received)
}

async fn accept(listener: UnixListener, requests: mpsc::Sender<CniRequest>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(converse(stream, requests.clone()));
            }
            Err(error) => {
                warn!(%error, "accepting a CNI connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One request line in, one reply line out.
async fn converse(stream: UnixStream, requests: mpsc::Sender<CniRequest>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut read = BufReader::new(read.take(MAX_MESSAGE_BYTES));
    let reply = match tokio::time::timeout(REQUEST_TIMEOUT, read.read_line(&mut line)).await {
        Err(_) => Reply::refused("no request within 5 s"),
        Ok(Err(error)) => Reply::refused(format!("reading the request: {error}")),
        Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
            Err(error) => Reply::refused(format!("malformed request: {error}")),
            Ok(request) => {
                debug!(?request, "CNI request");
                let (reply, replied) = oneshot::channel();
                match requests.send(CniRequest { request, reply }).await {
                    Ok(()) => replied
                        .await
                        .unwrap_or_else(|_| Reply::refused("the daemon is stopping")),
                    Err(_) => Reply::refused("the daemon is stopping"),
                }
            }
        },
    };
    let Ok(mut text) = serde_json::to_vec(&reply) else {
        return;
    };
    text.push(b'\n');
    if let Err(error) = write.write_all(&text).await {
        debug!(%error, "the CNI plugin left before the reply");
    }
}
