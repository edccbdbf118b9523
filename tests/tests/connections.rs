//! Whole-connection flow records over real traffic: a connection's records
//! at each of its endpoints add up to exactly what crossed them, and a
//! closed connection gets its `end` record.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use netseg_testbed::{TcpEchoServer, UdpEchoServer, in_netns};
use serde_json::Value;

mod common;

use common::world_with;

/// Updates every second, so the test sees them within the scan interval (2 s).
const UPDATE_EVERY: &str = "--flow-update-interval=1s";
const RECORDS_WAIT: Duration = Duration::from_secs(15);
/// An IPv4 header and a UDP header.
const UDP_OVERHEAD: u64 = 28;

/// Packets and bytes (source then destination) over `records`.
fn summed(records: &[Value]) -> [u64; 4] {
    let field = |name: &str| -> u64 { records.iter().filter_map(|r| r[name].as_u64()).sum() };
    [
        field("src_packets"),
        field("src_bytes"),
        field("dst_packets"),
        field("dst_bytes"),
    ]
}

/// The records of the connection from `client_port` at `endpoint`, once
/// `done` says they are complete.
fn connection_records(
    w: &common::World,
    endpoint: &str,
    client_port: u16,
    done: impl Fn(&[Value]) -> bool,
) -> Result<Vec<Value>> {
    let deadline = Instant::now() + RECORDS_WAIT;
    loop {
        let records: Vec<Value> = w
            .daemon
            .flows()?
            .into_iter()
            .filter(|r| {
                r["endpoint"] == endpoint
                    && r["src_port"] == client_port
                    && r["kind"]
                        .as_str()
                        .is_some_and(|k| ["open", "update", "end"].contains(&k))
            })
            .collect();
        if done(&records) {
            return Ok(records);
        }
        if Instant::now() > deadline {
            bail!("the records of the connection at {endpoint} are incomplete: {records:#?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_udp_exchange_is_counted_exactly_at_both_of_its_endpoints() -> Result<()> {
    const DATAGRAMS: u64 = 7;
    const PAYLOAD: usize = 100;
    let mut w = world_with("conn-udp", &[UPDATE_EVERY])?;
    w.allow_client_to_server()?;
    let _server = UdpEchoServer::start(&w.b, 53)?;
    let server = (w.b.ipv4(), 53);
    let client_port = in_netns(w.a.netns_name(), || -> Result<u16> {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.set_read_timeout(Some(Duration::from_secs(2)))?;
        socket.connect(server)?;
        let mut echo = [0u8; 512];
        for _ in 0..DATAGRAMS {
            socket.send(&[7u8; PAYLOAD])?;
            let n = socket.recv(&mut echo).context("the echo")?;
            ensure!(n == PAYLOAD, "an echo of {n} bytes");
        }
        Ok(socket.local_addr()?.port())
    })??;
    let each_way = DATAGRAMS * (PAYLOAD as u64 + UDP_OVERHEAD);
    let sent = [DATAGRAMS, each_way, DATAGRAMS, each_way];
    for endpoint in ["app/a", "app/b"] {
        let records = connection_records(&w, endpoint, client_port, |r| {
            summed(r).iter().zip(sent).all(|(seen, sent)| *seen >= sent)
        })?;
        assert_eq!(summed(&records), sent, "at {endpoint}: {records:#?}");
        let open = &records[0];
        assert_eq!(open["kind"], "open", "at {endpoint}: {records:#?}");
        assert_eq!(open["protocol"], "udp");
        assert_eq!(open["src_pod"], "app/a");
        assert_eq!(open["dst_pod"], "app/b");
        assert!(records[1..].iter().all(|r| r["kind"] == "update"));
        let last = records.last().expect("records");
        assert_eq!(last["start"], open["time"], "one connection: {records:#?}");
        assert!(last["duration_ms"].as_u64() > Some(0));
        assert!(last["node"].is_string());
        assert_eq!(last["schema"], 1);
    }
    Ok(())
}

#[test]
fn a_closed_tcp_connection_ends_with_the_same_traffic_at_both_endpoints() -> Result<()> {
    const DATA: usize = 10_000;
    let mut w = world_with("conn-tcp", &[UPDATE_EVERY])?;
    w.allow_client_to_server()?;
    let _server = TcpEchoServer::start(&w.b, 80)?;
    let server = (w.b.ipv4(), 80);
    let client_port = in_netns(w.a.netns_name(), || -> Result<u16> {
        let mut stream = TcpStream::connect_timeout(&server.into(), Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        let port = stream.local_addr()?.port();
        stream.write_all(&[b'x'; DATA])?;
        let mut echoed = vec![0u8; DATA];
        stream.read_exact(&mut echoed).context("the echo")?;
        stream.shutdown(Shutdown::Both)?;
        Ok(port)
    })??;
    let ended = |records: &[Value]| records.iter().any(|r| r["kind"] == "end");
    let at_client = connection_records(&w, "app/a", client_port, ended)?;
    let at_server = connection_records(&w, "app/b", client_port, ended)?;
    for records in [&at_client, &at_server] {
        let end = records.last().expect("records");
        assert_eq!(end["kind"], "end", "the last record: {records:#?}");
        assert_eq!(end["reason"], "closed");
        assert_eq!(records.iter().filter(|r| r["kind"] == "end").count(), 1);
        let [src_packets, src_bytes, dst_packets, dst_bytes] = summed(records);
        // Every segment has an IPv4 and a TCP header (40 bytes, 60 at most
        // with options) besides the data it carries.
        for (packets, bytes) in [(src_packets, src_bytes), (dst_packets, dst_bytes)] {
            assert!(
                bytes >= DATA as u64 + 40 * packets && bytes <= DATA as u64 + 60 * packets,
                "{packets} packets of {bytes} bytes carried {DATA} bytes of data: {records:#?}"
            );
        }
    }
    assert_eq!(
        summed(&at_client),
        summed(&at_server),
        "both hooks saw the same packets"
    );
    Ok(())
}
