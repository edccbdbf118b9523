//! A pod that sends as fast as it can from its first moment, and a
//! receiver that counts what arrives: the start-of-pod window, measured.
//! Each datagram carries the sender's current phase in its first byte, so
//! the receiver can tell which phase of the pod's start leaked.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::netns::in_netns;

/// Sends datagrams to `target` from a socket of netns `netns` until
/// dropped. Sends fail (and are retried) until the namespace has a route.
#[derive(Debug)]
pub struct UdpBlaster {
    phase: Arc<AtomicU8>,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpBlaster {
    pub fn start(netns: &str, target: SocketAddr) -> Result<Self> {
        let any: SocketAddr = match target {
            SocketAddr::V4(_) => "0.0.0.0:0".parse()?,
            SocketAddr::V6(_) => "[::]:0".parse()?,
        };
        let socket = in_netns(netns, || UdpSocket::bind(any))?.context("binding the blaster")?;
        let (phase, sent, stop): (Arc<AtomicU8>, Arc<AtomicU64>, Arc<AtomicBool>) =
            Default::default();
        let thread = {
            let (phase, sent, stop) = (Arc::clone(&phase), Arc::clone(&sent), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("blaster".into())
                .spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let datagram = [phase.load(Ordering::SeqCst); 32];
                        if socket.send_to(&datagram, target).is_ok() {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })?
        };
        Ok(Self {
            phase,
            sent,
            stop,
            thread: Some(thread),
        })
    }

    /// Stamps the datagrams sent from now on.
    pub fn set_phase(&self, phase: u8) {
        self.phase.store(phase, Ordering::SeqCst);
    }

    /// Datagrams the kernel accepted for sending so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for UdpBlaster {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Counts the datagrams arriving on `[::]:port` of a pod, by phase byte.
#[derive(Debug)]
pub struct UdpCounter {
    counts: Arc<Mutex<BTreeMap<u8, u64>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpCounter {
    pub fn start(netns: &str, port: u16) -> Result<Self> {
        let socket = in_netns(netns, || UdpSocket::bind(("::", port)))?
            .with_context(|| format!("binding UDP port {port} in {netns}"))?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let counts: Arc<Mutex<BTreeMap<u8, u64>>> = Arc::default();
        let stop: Arc<AtomicBool> = Arc::default();
        let thread = {
            let (counts, stop) = (Arc::clone(&counts), Arc::clone(&stop));
            std::thread::Builder::new()
                .name(format!("counter:{port}"))
                .spawn(move || {
                    let mut buf = [0u8; 2048];
                    while !stop.load(Ordering::SeqCst) {
                        if let Ok((n, _)) = socket.recv_from(&mut buf)
                            && n > 0
                        {
                            let mut counts = counts.lock().unwrap_or_else(|e| e.into_inner());
                            *counts.entry(buf[0]).or_default() += 1;
                        }
                    }
                })?
        };
        Ok(Self {
            counts,
            stop,
            thread: Some(thread),
        })
    }

    /// Datagrams received so far, by phase.
    pub fn counts(&self) -> BTreeMap<u8, u64> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for UdpCounter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
