//! The flow pipeline fed by a synthetic event source: how many ring-buffer
//! events per second one thread (one core) turns into JSON flow records,
//! through the daemon's own `FlowWriter`, into a sink and into a file
//! opened the way `--flow-log` opens it.
//! `NETSEG_SKIP_EBPF=1 cargo bench -p netseg --bench flow_pipeline`.
//!
//! The events name a node of realistic size: 100 local endpoints among
//! 10,000 pods (every fifth dual-stack), 2,000 compiled rules. The mix:
//! allowed new TCP connections with a rule id (60 %), DNS over UDP with a
//! rule id (10 %), policy denials decided by default-deny (20 %, a quarter
//! of them from outside the cluster), kubelet probes (5 %) and pings (5 %);
//! a fifth of the flows use IPv6. Each pod belongs to a Deployment and one
//! or two Segments; the outside addresses to Segment outside.
//! `flow_context/*` is what naming the parties of such a node costs a
//! policy publication.

use std::{
    collections::BTreeMap,
    hint::black_box,
    io::{self, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use netseg::{
    daemon::open_flow_log,
    flows::{FlowContext, FlowLabels, FlowWriter, Naming, Rotation, monotonic_epoch},
    metrics::Metrics,
};
use netseg_contract::{
    DIRECTION_EGRESS, DIRECTION_INGRESS, FIRST_COMPILED_RULE, FlowEvent, PROTO_ICMP, PROTO_ICMPV6,
    PROTO_TCP, PROTO_UDP, VERDICT_ALLOW, VERDICT_DENY, reason, rule,
};
use netseg_policy::{
    Action, Band, Compiled, Decider, Direction, PodParty, PodRef, PolicyKind, RuleRef,
    SegmentNetworks, Verdict, Workload,
};

const ENDPOINTS: u32 = 100;
const PODS: u32 = 10_000;
const DUAL_STACK_EVERY: u32 = 5;
const RULES: u32 = 2_000;
/// Events per iteration: about what one wake-up drains from a busy ring
/// buffer (the writer flushes after each, as `export` does).
const BATCH: usize = 4_096;
const FIRST_IFINDEX: u32 = 10;
const NODE_V4: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 10);
const NODE_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x10);

fn pod_v4(n: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, (n / 256) as u8, n as u8)
}

fn pod_v6(n: u32) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x10, 0x244, 0, 0, 0, (n >> 16) as u16, n as u16)
}

fn pod_ref(n: u32) -> PodRef {
    const APPS: [&str; 5] = ["web", "api", "worker", "db", "cache"];
    let app = APPS[(n % 5) as usize];
    PodRef::new(
        format!("team-{}", n / 20),
        format!("{app}-7d9f8b6c5-{n:05x}"),
    )
}

/// The party of pod `n`: a Deployment's pod with three labels (two of them
/// carried by default), in one or two of 20 Segments.
fn pod_party(n: u32) -> Arc<PodParty> {
    let pod = pod_ref(n);
    let app = pod.name.split('-').next().unwrap_or_default().to_owned();
    let labels = [
        ("app", app.clone()),
        ("app.kubernetes.io/name", app.clone()),
        ("pod-template-hash", "7d9f8b6c5".to_owned()),
    ];
    let segments = [format!("zone-{}", n % 20), "cluster".to_owned()];
    Arc::new(PodParty {
        workload: Some(Workload {
            kind: "Deployment".into(),
            name: app.into(),
        }),
        labels: Arc::new(labels.map(|(k, v)| (k.to_owned(), v)).into()),
        segments: segments[..1 + (n % 2) as usize]
            .iter()
            .map(|s| s.as_str().into())
            .collect(),
        pod,
    })
}

/// What the daemon builds a flow context from.
struct Names {
    endpoints: BTreeMap<u32, PodRef>,
    compiled: Compiled,
    node_addresses: Vec<IpAddr>,
    labels: FlowLabels,
}

fn names() -> Names {
    let mut pods = BTreeMap::new();
    for n in 0..PODS {
        let party = pod_party(n);
        pods.insert(IpAddr::V4(pod_v4(n)), party.clone());
        if n % DUAL_STACK_EVERY == 0 {
            pods.insert(IpAddr::V6(pod_v6(n)), party);
        }
    }
    let verdicts = (0..RULES)
        .map(|n| {
            let rule = RuleRef {
                kind: PolicyKind::NetworkPolicy,
                band: Band::NetworkPolicy,
                namespace: format!("team-{}", n % 500),
                name: format!("allow-from-frontend-{n}"),
                direction: if n % 3 == 0 {
                    Direction::Egress
                } else {
                    Direction::Ingress
                },
                index: n % 4,
                rule_name: None,
                action: Action::Accept,
            };
            (
                FIRST_COMPILED_RULE + n,
                Verdict::plain(true, Decider::Rule(rule)),
            )
        })
        .collect();
    // The outside addresses of `deny` are in Segment outside.
    let outside = ["198.51.100.0/24", "2001:db8::/64"]
        .map(|net| (net.parse().expect("a network"), vec!["outside".into()]));
    Names {
        endpoints: (0..ENDPOINTS)
            .map(|n| (FIRST_IFINDEX + n, pod_ref(n)))
            .collect(),
        compiled: Compiled {
            pod_addresses: pods,
            verdicts,
            segment_networks: SegmentNetworks::new(outside.into()),
            ..Compiled::default()
        },
        node_addresses: vec![IpAddr::V4(NODE_V4), IpAddr::V6(NODE_V6)],
        labels: FlowLabels::default(),
    }
}

impl Names {
    fn naming(&self) -> Naming<'_> {
        Naming {
            endpoints: &self.endpoints,
            compiled: &self.compiled,
            node_addresses: &self.node_addresses,
            labels: &self.labels,
        }
    }

    /// The context of a first publication.
    fn context(&self) -> FlowContext {
        FlowContext::new(&self.naming(), &FlowContext::default())
    }
}

/// splitmix64: a fixed, reproducible mix without a dependency.
struct Mix(u64);

impl Mix {
    fn below(&mut self, bound: u32) -> u32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % u64::from(bound)) as u32
    }

    /// A pod number; with `ipv6`, one of the dual-stack pods.
    fn pod(&mut self, count: u32, ipv6: bool) -> u32 {
        if ipv6 {
            self.below(count / DUAL_STACK_EVERY) * DUAL_STACK_EVERY
        } else {
            self.below(count)
        }
    }
}

/// The event's address encoding: IPv4-mapped for IPv4.
fn address(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn pod_address(n: u32, ipv6: bool) -> [u8; 16] {
    address(if ipv6 {
        IpAddr::V6(pod_v6(n))
    } else {
        IpAddr::V4(pod_v4(n))
    })
}

fn event(mix: &mut Mix, timestamp_ns: u64) -> FlowEvent {
    let ipv6 = mix.below(5) == 0;
    let local = mix.pod(ENDPOINTS, ipv6);
    let (local_ip, peer_ip) = (
        pod_address(local, ipv6),
        pod_address(mix.pod(PODS, ipv6), ipv6),
    );
    let ingress = mix.below(2) == 0;
    let (src, dst) = if ingress {
        (peer_ip, local_ip)
    } else {
        (local_ip, peer_ip)
    };
    let mut event = FlowEvent {
        timestamp_ns,
        ifindex: FIRST_IFINDEX + local,
        rule: FIRST_COMPILED_RULE + mix.below(RULES),
        revision: 7,
        _pad: 0,
        src,
        dst,
        src_port: (32_768 + mix.below(28_000) as u16).to_be(),
        dst_port: [80u16, 443, 8080, 5432, 6379][mix.below(5) as usize].to_be(),
        protocol: PROTO_TCP,
        direction: if ingress {
            DIRECTION_INGRESS
        } else {
            DIRECTION_EGRESS
        },
        verdict: VERDICT_ALLOW,
        reason: reason::NEW_ALLOWED,
    };
    match mix.below(100) {
        0..60 => {}
        60..70 => (event.protocol, event.dst_port) = (PROTO_UDP, 53u16.to_be()),
        70..90 => deny(&mut event, mix, ipv6),
        90..95 => {
            let node = if ipv6 {
                IpAddr::V6(NODE_V6)
            } else {
                IpAddr::V4(NODE_V4)
            };
            (event.src, event.dst) = (address(node), local_ip);
            event.direction = DIRECTION_INGRESS;
            event.rule = rule::NODE_TRAFFIC;
        }
        _ => {
            event.protocol = if ipv6 { PROTO_ICMPV6 } else { PROTO_ICMP };
            (event.src_port, event.dst_port) = (0, 0);
        }
    }
    event
}

/// A new connection no rule allows; a quarter come from outside the cluster.
fn deny(event: &mut FlowEvent, mix: &mut Mix, ipv6: bool) {
    event.verdict = VERDICT_DENY;
    event.reason = reason::POLICY_DENIED;
    event.rule = rule::NONE;
    event.dst_port = (1 + mix.below(65_535) as u16).to_be();
    if mix.below(4) == 0 {
        let host = mix.below(250) as u8;
        let outside = if ipv6 {
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, host.into()))
        } else {
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, host))
        };
        if event.direction == DIRECTION_INGRESS {
            event.src = address(outside);
        } else {
            event.dst = address(outside);
        }
    }
}

/// One ring-buffer drain's worth of events, 2 µs apart, a day after boot.
fn events() -> Vec<FlowEvent> {
    let mut mix = Mix(0x6e65_7473_6567);
    let day = Duration::from_secs(86_400).as_nanos() as u64;
    (0..BATCH as u64)
        .map(|i| event(&mut mix, day + i * 2_000))
        .collect()
}

fn write_batch<W: Write>(writer: &mut FlowWriter<W>, context: &FlowContext, events: &[FlowEvent]) {
    for event in events {
        writer
            .write_event(context, black_box(event))
            .expect("writing flow records");
    }
    writer.flush().expect("flushing flow records");
}

fn pipeline(c: &mut Criterion) {
    let context = names().context();
    let events = events();
    let metrics = Metrics::new();
    let mut group = c.benchmark_group("flow_pipeline");
    group.throughput(Throughput::Elements(BATCH as u64));

    let sink: Box<dyn Write + Send> = Box::new(io::sink());
    let mut writer = FlowWriter::new(sink, monotonic_epoch(), Some("node-1"), &metrics);
    group.bench_function("sink", |b| {
        b.iter(|| write_batch(&mut writer, &context, &events))
    });

    let log = tempfile::Builder::new()
        .prefix("netseg-flow-bench-")
        .tempfile()
        .expect("creating a file in the temporary directory");
    let out = open_flow_log(Some(log.path()), Rotation::NEVER).expect("opening the flow log");
    let mut writer = FlowWriter::new(out, monotonic_epoch(), Some("node-1"), &metrics);
    group.bench_function("file", |b| {
        b.iter_custom(|iterations| {
            let mut spent = Duration::ZERO;
            for _ in 0..iterations {
                // Untimed: keeps the file (and /tmp) small; appends go on at offset 0.
                log.as_file().set_len(0).expect("truncating the flow log");
                let start = Instant::now();
                write_batch(&mut writer, &context, &events);
                spent += start.elapsed();
            }
            spent
        })
    });
    group.finish();
}

/// What a policy publication pays for the pipeline's speed: every name
/// rendered as JSON once (`new`); after a publication that changed no pod
/// (`renewed`: a policy edit; a pod's change renders that pod only); and
/// telling whether a publication changes any name (`unchanged`, every
/// reconcile pass).
fn context(c: &mut Criterion) {
    let names = names();
    c.bench_function("flow_context/new", |b| b.iter(|| names.context()));
    let previous = names.context();
    c.bench_function("flow_context/renewed", |b| {
        b.iter(|| FlowContext::new(&names.naming(), &previous))
    });
    c.bench_function("flow_context/unchanged", |b| {
        b.iter(|| assert!(previous.names_the_same(black_box(&names.naming()))))
    });
}

criterion_group!(benches, pipeline, context);
criterion_main!(benches);
