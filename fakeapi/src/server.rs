//! The HTTP side: a tokio runtime on its own thread, the accept loop, and per-connection
//! serving that ends when the fake "restarts".

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::faults::Faults;
use crate::store::Store;
use crate::{LoggedRequest, StreamingLists, routes};

/// What the test driver changes while watches are open; each open watch and connection
/// compares it with what it saw when it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Control {
    pub expired: u64,
    pub dropped: u64,
    pub restarts: u64,
    pub stalled: bool,
    pub bookmark_interval: Duration,
    pub streaming_lists: StreamingLists,
}

pub(crate) struct Shared {
    pub addr: SocketAddr,
    pub store: Mutex<Store>,
    pub faults: Faults,
    pub requests: Mutex<Vec<LoggedRequest>>,
    /// Bytes of watch event lines sent, all watches together.
    pub watch_bytes_sent: Arc<AtomicU64>,
    pub control: watch::Sender<Control>,
}

impl Shared {
    pub fn new(addr: SocketAddr) -> Shared {
        Shared {
            addr,
            store: Mutex::new(Store::new()),
            faults: Faults::default(),
            requests: Mutex::new(Vec::new()),
            watch_bytes_sent: Arc::default(),
            control: watch::Sender::new(Control {
                expired: 0,
                dropped: 0,
                restarts: 0,
                stalled: false,
                // Upstream sends a bookmark to each watcher about once a minute.
                bookmark_interval: Duration::from_secs(60),
                streaming_lists: StreamingLists::Supported,
            }),
        }
    }

    /// The store; a panic while it was held cannot leave it half-written (writes are single
    /// inserts), so a poisoned lock is still usable.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn log(&self, request: LoggedRequest) {
        self.requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(request);
    }
}

/// Accepts connections until `shutdown` turns true.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(serve_connection(stream, shared.clone()));
                }
            }
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let mut control = shared.control.subscribe();
    let started_in = control.borrow_and_update().restarts;
    let service = service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(routes::handle(shared, request).await) }
    });
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        // Dropping the connection future closes the socket, whatever it was doing.
        _ = control.wait_for(|c| c.restarts != started_in) => {}
    }
}
