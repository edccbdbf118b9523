use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
    sync::Arc,
};

use netseg_policy::{Compiled, PodRef, SegmentNetworks};

use super::{FlowContext, FlowLabels, JsonText, Naming, PartyNames};
use crate::flows::tests::{compiled, party};

const WEB: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const DB: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

fn labels(list: &str) -> FlowLabels {
    list.parse().expect("label keys")
}

fn context(compiled: &Compiled, labels: &FlowLabels, previous: &FlowContext) -> FlowContext {
    FlowContext::new(&naming(compiled, labels), previous)
}

/// No local pods.
static ENDPOINTS: BTreeMap<u32, PodRef> = BTreeMap::new();

fn naming<'a>(compiled: &'a Compiled, labels: &'a FlowLabels) -> Naming<'a> {
    Naming {
        endpoints: &ENDPOINTS,
        compiled,
        node_addresses: &[],
        labels,
    }
}

fn text(json: Option<&JsonText>) -> Option<&str> {
    json.map(|json| &*json.0)
}

/// The names of the party at `ip`: pod, workload, labels, segments.
fn names(context: &FlowContext, ip: &str) -> [Option<String>; 4] {
    let party: &PartyNames = context.party(ip.parse().expect("an address"));
    [&party.pod, &party.workload, &party.labels, &party.segments]
        .map(|json| text(json.as_ref()).map(str::to_owned))
}

#[test]
fn flow_labels_are_a_list_of_label_keys() {
    assert_eq!(
        FlowLabels::default(),
        FlowLabels(vec!["app".into(), "app.kubernetes.io/name".into()])
    );
    assert_eq!(labels(""), FlowLabels(vec![]));
    assert_eq!(
        labels(" team ,app,team,"),
        FlowLabels(vec!["app".into(), "team".into()])
    );
    let error = "app,not a key".parse::<FlowLabels>().expect_err("refused");
    assert_eq!(
        error.to_string(),
        "\"not a key\" is not a label key: it must be alphanumerics, '-', '_' or '.', \
         starting and ending alphanumeric"
    );
}

#[test]
fn records_carry_only_the_chosen_labels_of_a_pod() {
    let compiled = compiled();
    let team = context(&compiled, &labels("team"), &FlowContext::default());
    let web = names(&team, "10.0.0.1");
    assert_eq!(web[2].as_deref(), Some(r#"{"team":"shop"}"#));
    assert_eq!(names(&team, "10.0.0.2")[2].as_deref(), Some("{}"));
    let none = context(&compiled, &labels(""), &FlowContext::default());
    assert_eq!(names(&none, "10.0.0.1")[2].as_deref(), Some("{}"));
    let every = context(&compiled, &labels("team,app"), &FlowContext::default());
    assert_eq!(
        names(&every, "10.0.0.1")[2].as_deref(),
        Some(r#"{"app":"web","team":"shop"}"#)
    );
}

#[test]
fn a_pod_is_renamed_when_its_party_changes_and_only_then() {
    let before = compiled();
    let chosen = FlowLabels::default();
    let first = context(&before, &chosen, &FlowContext::default());
    assert!(first.names_the_same(&naming(&before, &chosen)));
    // web is relabelled and leaves Segment web; db is untouched.
    let mut after = before.clone();
    let web = PodRef::new("app", "web");
    let relabelled = party(&web, None, &[("app", "shop-web")], &["front"]);
    after.pod_addresses.insert(WEB, relabelled);
    assert!(!first.names_the_same(&naming(&after, &chosen)));
    let second = context(&after, &chosen, &first);
    assert_eq!(
        names(&second, "10.0.0.1"),
        [
            Some(r#""app/web""#.into()),
            None,
            Some(r#"{"app":"shop-web"}"#.into()),
            Some(r#"["front"]"#.into())
        ]
    );
    assert!(
        Arc::ptr_eq(second.party(DB), first.party(DB)),
        "an unchanged pod keeps the names rendered before"
    );
    assert!(
        !first.names_the_same(&naming(&before, &labels("team"))),
        "other label keys are other names"
    );
}

#[test]
fn an_address_no_pod_holds_is_named_by_its_segment_networks() {
    let network = |text: &str| text.parse().expect("a network");
    let compiled = Compiled {
        segment_networks: SegmentNetworks::new(vec![
            (network("198.51.100.0/24"), vec!["outside".into()]),
            (
                network("198.51.100.128/25"),
                vec!["outside".into(), "partners".into()],
            ),
            (network("192.168.1.0/24"), vec!["nodes".into()]),
        ]),
        ..compiled()
    };
    let chosen = FlowLabels::default();
    let naming = Naming {
        node_addresses: &["192.168.1.10".parse().expect("an address")],
        ..naming(&compiled, &chosen)
    };
    let context = FlowContext::new(&naming, &FlowContext::default());
    let segments = |ip| names(&context, ip)[3].clone();
    assert_eq!(
        segments("198.51.100.200").as_deref(),
        Some(r#"["outside","partners"]"#)
    );
    assert_eq!(segments("198.51.100.7").as_deref(), Some(r#"["outside"]"#));
    assert_eq!(segments("203.0.113.1").as_deref(), Some("[]"));
    let node = names(&context, "192.168.1.10");
    assert_eq!(node[0].as_deref(), Some(r#""node""#));
    assert_eq!(node[3].as_deref(), Some(r#"["nodes"]"#));
    assert_eq!(
        segments("10.0.0.1").as_deref(),
        Some(r#"["front","web"]"#),
        "a pod's Segments are its own"
    );
}
