//! The harness proves itself, without any daemon: the topology carries every
//! protocol both ways, probes notice when traffic does not get through, and
//! nothing is left behind or routed off the machine. Root only.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use netseg_testbed::netns::{NETNS_PREFIX, netns_exists, run};
use netseg_testbed::raw::carries;
use netseg_testbed::{
    Capture, ConnectOutcome, ContainerPort, Daemon, Delivery, Family, Manifests, Mismatch, Node,
    Outside, PROBE_TIMEOUT, Pod, Probe, Reachability, ServerSet, TcpSession,
    cleanup_stale_namespaces, matrix::probe_matrices, ping, require_root, sctp_probe, send_ip,
    tcp_connect, tcp_probe, udp_request,
};

const TCP: u16 = 80;
const UDP: u16 = 81;
const SCTP: u16 = 82;
const CLOSED: u16 = 83;

#[test]
fn two_pods_reach_each_other_over_every_protocol_and_family() -> Result<()> {
    let node = Node::new("pair")?;
    let a = node.add_pod("x/a")?;
    let b = node.add_pod("x/b")?;
    let servers = ServerSet::start(&[&a, &b], &[TCP], &[UDP], true)?;
    for family in [Family::V4, Family::V6] {
        for (from, to) in [(&a, &b), (&b, &a)] {
            let (addr, what) = (
                to.ip(family),
                format!("{} -> {} {family:?}", from.full_name(), to.full_name()),
            );
            ensure!(tcp_probe(from, addr, TCP, PROBE_TIMEOUT)?, "TCP {what}");
            ensure!(udp_request(from, addr, UDP, PROBE_TIMEOUT)?, "UDP {what}");
            ensure!(ping(from, addr, PROBE_TIMEOUT)?, "ICMP {what}");
            let receiver = servers
                .sctp_receiver(&to.full_name())
                .expect("receiver started");
            ensure!(
                sctp_probe(from, receiver, addr, SCTP, PROBE_TIMEOUT)?,
                "SCTP {what}"
            );
            // A closed port answers, so these are refusals, not drops.
            ensure!(
                tcp_connect(from, addr, CLOSED, PROBE_TIMEOUT)? == ConnectOutcome::Refused,
                "TCP {what}"
            );
            ensure!(
                !udp_request(from, addr, CLOSED, PROBE_TIMEOUT)?,
                "UDP to a closed port {what}"
            );
        }
    }
    // Pod addresses reach the servers unchanged, in both families.
    let peers = servers
        .tcp_server("x/b", TCP)
        .expect("server")
        .accepted_peers();
    ensure!(
        peers.contains(&a.ip(Family::V4)) && peers.contains(&a.ip(Family::V6)),
        "{peers:?}"
    );
    let inits = servers.sctp_receiver("x/b").expect("receiver").packets();
    ensure!(
        inits.iter().all(|p| p.header.checksum_ok
            && p.header.dst_port == SCTP
            && p.header.verification_tag == 0),
        "{inits:?}"
    );
    ensure!(
        inits.iter().any(|p| p.from == a.ip(Family::V6)),
        "{inits:?}"
    );
    Ok(())
}

#[test]
fn a_matrix_of_nine_pods_is_probed_in_seconds_and_mismatches_are_shown() -> Result<()> {
    let node = Node::new("matrix")?;
    let names: Vec<String> = ["x", "y", "z"]
        .iter()
        .flat_map(|ns| ["a", "b", "c"].map(|pod| format!("{ns}/{pod}")))
        .collect();
    let pods = names
        .iter()
        .map(|name| node.add_pod(name))
        .collect::<Result<Vec<Pod>>>()?;
    let pods: Vec<&Pod> = pods.iter().collect();
    let mut servers = ServerSet::start(&pods, &[TCP], &[UDP], true)?;
    // A second TCP port served only by x/a: every other cell is refused.
    servers.start_on(pods[0], &[CLOSED], &[], false)?;

    let started = Instant::now();
    let mut all = [true; 5].map(|allowed| Reachability::new(names.clone(), allowed));
    let [tcp4, tcp6, udp6, sctp4, only_xa] = &mut all;
    only_xa.expect_peer("*", "*", false);
    only_xa.expect_all_ingress("x/a", true);
    probe_matrices(
        &pods,
        &servers,
        &mut [
            (Probe::tcp(TCP), tcp4),
            (Probe::tcp(TCP).v6(), tcp6),
            (Probe::udp(UDP).v6(), udp6),
            (Probe::sctp(SCTP), sctp4),
            (Probe::tcp(CLOSED).attempts(1), only_xa),
        ],
    )?;
    for (what, reach) in ["tcp4", "tcp6", "udp6", "sctp4", "only x/a"]
        .iter()
        .zip(&all)
    {
        reach.assert_correct(what);
    }
    // A closed port answers with a RST: refused, not dropped, so a suite
    // that requires silent drops would catch a datapath that rejects.
    ensure!(
        all[4].observed("y/b", "z/c") == Some(Delivery::Refused),
        "{}",
        all[4]
    );
    ensure!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );

    // A wrong expectation is reported, with the cell marked.
    let mut wrong = Reachability::new(names.clone(), true);
    wrong.expect("y/b", "z/c", false);
    netseg_testbed::matrix::probe_matrix(
        &pods,
        &servers,
        &Probe::tcp(TCP).attempts(1),
        &mut wrong,
    )?;
    ensure!(
        wrong.mismatches()
            == [Mismatch {
                from: "y/b".into(),
                to: "z/c".into(),
                expected_allowed: false,
                observed: Some(Delivery::Delivered),
            }],
        "{wrong}"
    );
    ensure!(wrong.to_string().contains(".*"), "{wrong}");
    Ok(())
}

#[test]
fn the_node_reaches_its_pods() -> Result<()> {
    let node = Node::new("nodeprobe")?;
    let pod = node.add_pod("x/a")?;
    let _servers = ServerSet::start(&[&pod], &[TCP], &[UDP], false)?;
    for family in [Family::V4, Family::V6] {
        ensure!(
            tcp_probe(&node, pod.ip(family), TCP, PROBE_TIMEOUT)?,
            "TCP {family:?}"
        );
        ensure!(
            udp_request(&node, pod.ip(family), UDP, PROBE_TIMEOUT)?,
            "UDP {family:?}"
        );
        ensure!(
            ping(&node, pod.ip(family), PROBE_TIMEOUT)?,
            "ICMP {family:?}"
        );
        ensure!(
            ping(&pod, node.ip(family), PROBE_TIMEOUT)?,
            "ICMP to node {family:?}"
        );
    }
    Ok(())
}

#[test]
fn a_cut_connection_is_noticed() -> Result<()> {
    let node = Node::new("cut")?;
    let a = node.add_pod("x/a")?;
    let b = node.add_pod("x/b")?;
    let servers = ServerSet::start(&[&b], &[TCP], &[UDP], true)?;
    let mut session = TcpSession::open(&a, b.ipv4().into(), TCP, PROBE_TIMEOUT)?;
    ensure!(
        session.exchange(PROBE_TIMEOUT),
        "an open connection carries data"
    );
    run(
        "ip",
        &[
            "-n",
            node.netns_name(),
            "link",
            "set",
            b.host_ifname(),
            "down",
        ],
    )?;
    ensure!(
        !session.exchange(Duration::from_millis(500)),
        "the cut connection still carried data"
    );
    // Every probe notices a path that drops.
    let short = Duration::from_millis(500);
    for family in [Family::V4, Family::V6] {
        let addr = b.ip(family);
        ensure!(
            tcp_connect(&a, addr, TCP, short)? != ConnectOutcome::Connected,
            "TCP {family:?}"
        );
        ensure!(!udp_request(&a, addr, UDP, short)?, "UDP {family:?}");
        ensure!(!ping(&a, addr, short)?, "ICMP {family:?}");
        let receiver = servers.sctp_receiver("x/b").expect("receiver started");
        ensure!(
            !sctp_probe(&a, receiver, addr, SCTP, short)?,
            "SCTP {family:?}"
        );
    }
    Ok(())
}

#[test]
fn the_daemon_wrapper_drives_a_fake_daemon() -> Result<()> {
    let node = Node::new("fakedaemon")?;
    let pod = node.add_pod("x/a")?;
    let manifests = Manifests::new()?;
    manifests.namespace("x", &[("team", "a")])?;
    let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-netseg.sh");
    let mut daemon = Daemon::start_binary(&fake, &node, manifests.dir(), &["--extra"])?;
    let first = daemon.wait_ready(1)?;
    let interfaces = first.interface_names();
    ensure!(
        interfaces.contains(&"node0"),
        "not run in the node: {first:?}"
    );
    ensure!(interfaces.contains(&pod.host_ifname()), "{first:?}");

    manifests.pod(&pod, &[("pod", "a")], &[ContainerPort::tcp(TCP)])?;
    let second = daemon.wait_reload_after(first.reloads)?;
    ensure!(second.endpoints == 2, "{second:?}");
    let flow = daemon.wait_for_flow(|f| f["files"] == 2, Duration::from_secs(2))?;
    ensure!(flow["event"] == "reload", "{flow}");
    ensure!(daemon.flows()?.len() == 2, "{:?}", daemon.flows()?);
    // A wait that times out shows the daemon's log.
    let timeout = daemon.wait_status("5 endpoints", Duration::from_millis(300), |s| {
        s.endpoints == 5
    });
    ensure!(timeout.is_err_and(|e| format!("{e:#}").contains("fake netseg on fakedaemon")));

    ensure!(daemon.stop()?.success());
    ensure!(
        daemon.log().contains("fake netseg stopping"),
        "{}",
        daemon.log()
    );
    Ok(())
}

#[test]
fn pods_come_and_go_and_nothing_is_left_behind() -> Result<()> {
    let node = Node::new("lifecycle")?;
    let a = node.add_pod("x/a")?;
    let b = node.add_pod("x/b")?;
    let names = [
        node.netns_name().to_owned(),
        a.netns_name().to_owned(),
        b.netns_name().to_owned(),
    ];
    let late = node.add_pod("y/late")?;
    ensure!(
        ping(&late, a.ipv4().into(), PROBE_TIMEOUT)?,
        "a pod added later is reachable"
    );

    let (b_ns, b_veth) = (b.netns_name().to_owned(), b.host_ifname().to_owned());
    ensure!(
        node.interfaces()?.contains(&b_veth),
        "{:?}",
        node.interfaces()?
    );
    b.remove()?;
    ensure!(!netns_exists(&b_ns), "the removed pod's namespace is gone");
    wait_until(Duration::from_secs(3), || {
        Ok(!node.interfaces()?.contains(&b_veth))
    })?;
    ensure!(
        ping(&late, a.ipv6().into(), PROBE_TIMEOUT)?,
        "the other pods still work"
    );

    drop((a, late, node));
    for name in &names {
        ensure!(!netns_exists(name), "{name} survived its node");
    }
    Ok(())
}

#[test]
fn no_route_leaves_the_node() -> Result<()> {
    let node = Node::new("noroute")?;
    let pod = node.add_pod("x/a")?;
    // `ip route get` asks the routing table; it sends nothing.
    for outside in ["8.8.8.8", "2001:4860:4860::8888"] {
        let lookup = run("ip", &["-n", node.netns_name(), "route", "get", outside]);
        ensure!(
            lookup.is_err(),
            "the node has a route to {outside}: {lookup:?}"
        );
    }
    for family in ["-4", "-6"] {
        let routes = run(
            "ip",
            &["-n", node.netns_name(), family, "route", "show", "default"],
        )?;
        ensure!(
            routes.trim().is_empty(),
            "default route in the node: {routes}"
        );
    }
    let uplinks: Vec<String> = node
        .interfaces()?
        .into_iter()
        .filter(|name| name != "lo" && name != "node0" && !name.starts_with("veth"))
        .collect();
    ensure!(
        uplinks.is_empty(),
        "unexpected interfaces in the node: {uplinks:?}"
    );
    ensure!(pod.host_ifname().starts_with("veth") && pod.host_ifname().len() <= 15);
    Ok(())
}

#[test]
fn namespaces_of_dead_processes_are_cleaned_up() -> Result<()> {
    require_root();
    let dead = std::process::Command::new("true").spawn()?;
    let dead_pid = dead.id();
    drop(dead.wait_with_output()?);
    ensure!(!Path::new(&format!("/proc/{dead_pid}")).exists());
    let stale = format!("{NETNS_PREFIX}{dead_pid}-0-stale");
    let own = format!("{NETNS_PREFIX}{}-9999-own", std::process::id());
    run("ip", &["netns", "add", &stale])?;
    run("ip", &["netns", "add", &own])?;
    let removed = cleanup_stale_namespaces();
    let own_survived = netns_exists(&own);
    run("ip", &["netns", "delete", &own])?;
    ensure!(
        removed?.contains(&stale) && !netns_exists(&stale),
        "{stale} was not removed"
    );
    ensure!(own_survived, "a live process's namespace was removed");
    Ok(())
}

fn wait_until(timeout: Duration, done: impl Fn() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !done()? {
        ensure!(
            Instant::now() < deadline,
            "condition not reached within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

#[test]
fn a_raw_frame_from_a_pod_is_routed_by_the_node_and_captured() -> Result<()> {
    let node = Node::new("raw")?;
    let a = node.add_pod("x/a")?;
    let b = node.add_pod("x/b")?;
    // Resolve b's neighbour entry first, so the first raw packet is not queued.
    ensure!(ping(&a, b.ip(Family::V6), PROBE_TIMEOUT)?);
    let capture = Capture::start(&b, "eth0")?;
    let marker = b"netseg raw frame test";
    let mut udp = vec![0x9c, 0x40, 0x9c, 0x41, 0, 0, 0, 0];
    udp[4..6].copy_from_slice(&((8 + marker.len()) as u16).to_be_bytes());
    udp.extend_from_slice(marker);
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(udp.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[17, 64]);
    ip.extend_from_slice(&a.ipv6().octets());
    ip.extend_from_slice(&b.ipv6().octets());
    ip.extend_from_slice(&udp);
    send_ip(&a, &ip)?;
    ensure!(
        capture.arrives(PROBE_TIMEOUT, |frame| carries(frame, marker))?,
        "the raw packet did not reach b"
    );
    ensure!(
        !capture.arrives(Duration::from_millis(200), |frame| carries(
            frame,
            b"never sent"
        ))?,
        "the capture reports a frame nobody sent"
    );
    Ok(())
}

#[test]
fn the_outside_host_is_reached_through_the_node_and_nothing_else_is() -> Result<()> {
    let node = Node::new("outside")?;
    let a = node.add_pod("x/a")?;
    let _outside = Outside::attach(&node)?;
    for family in [Family::V4, Family::V6] {
        ensure!(
            ping(&a, Outside::ip(family), PROBE_TIMEOUT)?,
            "a -> outside {family:?}"
        );
    }
    for unrouted in ["8.8.8.8", "2001:4860:4860::8888"] {
        let lookup = run("ip", &["-n", node.netns_name(), "route", "get", unrouted]);
        ensure!(lookup.is_err(), "the node routes {unrouted}: {lookup:?}");
    }
    Ok(())
}
