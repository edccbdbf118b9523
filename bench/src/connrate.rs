//! New TCP connections per second: a client that connects, sends one byte,
//! reads the one-byte answer and closes, as fast as it can, against a server
//! that answers each connection once and closes it.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netseg_testbed::{Netns, in_netns};

const ACCEPT_THREADS: usize = 4;

/// Answers every connection with one byte and closes it; stops on drop.
pub struct ConnServer {
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl ConnServer {
    pub fn start(pod: &impl Netns, port: u16) -> Result<Self> {
        let listener = in_netns(pod.netns_name(), || {
            TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
        })??;
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..ACCEPT_THREADS)
            .map(|_| {
                let listener = listener.try_clone()?;
                let stop = Arc::clone(&stop);
                Ok(std::thread::spawn(move || serve(&listener, &stop)))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            listener,
            stop,
            threads,
        })
    }
}

fn serve(listener: &TcpListener, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let Ok((mut stream, _)) = listener.accept() else {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut byte = [0u8; 1];
        if stream.read_exact(&mut byte).is_ok() {
            let _ = stream.write_all(&byte);
        }
    }
}

impl Drop for ConnServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // SAFETY: shutting down a listening socket we own wakes the threads
        // blocked in accept(); the fd stays valid until `listener` drops.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// What a run of the connection client did.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnRun {
    pub completed: u64,
    pub failed: u64,
    pub elapsed: Duration,
}

impl ConnRun {
    pub fn per_second(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `threads` sequential connect-request-close loops from `pod` for
/// `duration` and sums them.
pub fn run_clients(
    pod: &impl Netns,
    addr: SocketAddr,
    threads: usize,
    duration: Duration,
) -> Result<ConnRun> {
    let ns = pod.netns_name().to_owned();
    let runs: Vec<Result<ConnRun>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let ns = ns.clone();
                scope.spawn(move || in_netns(&ns, || client_loop(addr, duration)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut total = ConnRun::default();
    for run in runs {
        let run = run.context("connection client")?;
        total.completed += run.completed;
        total.failed += run.failed;
        total.elapsed = total.elapsed.max(run.elapsed);
    }
    Ok(total)
}

fn client_loop(addr: SocketAddr, duration: Duration) -> ConnRun {
    let start = Instant::now();
    let mut run = ConnRun::default();
    while start.elapsed() < duration {
        if one_connection(addr).is_ok() {
            run.completed += 1;
        } else {
            run.failed += 1;
        }
    }
    run.elapsed = start.elapsed();
    run
}

fn one_connection(addr: SocketAddr) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(b"x")?;
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte)?;
    Ok(())
}
