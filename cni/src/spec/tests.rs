use serde_json::json;

use super::{NetConf, code, interfaces_and_ips, pod_of};

#[test]
fn the_host_interfaces_are_those_without_a_sandbox() {
    // As the bridge plugin reports it: the bridge, the host veth, the pod's eth0.
    let result = json!({
        "cniVersion": "1.0.0",
        "interfaces": [
            { "name": "cni0", "mac": "aa:bb:cc:dd:ee:00" },
            { "name": "veth1234", "mac": "aa:bb:cc:dd:ee:01", "sandbox": "" },
            { "name": "eth0", "sandbox": "/var/run/netns/pod" }
        ],
        "ips": [
            { "address": "10.1.1.5/24", "gateway": "10.1.1.1", "interface": 2 },
            { "address": "fd00::5/64", "interface": 2 }
        ]
    });
    let (host, ips) = interfaces_and_ips(&result).unwrap();
    assert_eq!(host, ["cni0", "veth1234"]);
    assert_eq!(
        ips,
        [
            "10.1.1.5".parse::<std::net::IpAddr>().unwrap(),
            "fd00::5".parse().unwrap()
        ]
    );
}

#[test]
fn a_malformed_address_is_an_invalid_config() {
    let result = json!({ "ips": [{ "address": "10.1.1/24" }] });
    assert_eq!(
        interfaces_and_ips(&result).unwrap_err().code,
        code::INVALID_CONFIG
    );
}

#[test]
fn the_pod_comes_from_cni_args() {
    let args =
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc";
    assert_eq!(
        pod_of(args).unwrap(),
        ("shop".to_owned(), "web-0".to_owned())
    );
    assert_eq!(
        pod_of("K8S_POD_NAME=web-0").unwrap_err().code,
        code::INVALID_ENVIRONMENT
    );
}

#[test]
fn versions_before_results_had_interfaces_are_incompatible() {
    let conf = br#"{ "cniVersion": "0.2.0", "name": "n", "type": "netseg-cni" }"#;
    assert_eq!(
        NetConf::parse(conf).unwrap_err().code,
        code::INCOMPATIBLE_VERSION
    );
    let conf = br#"{ "cniVersion": "1.1.0", "name": "n", "type": "netseg-cni", "socket": "/s" }"#;
    let conf = NetConf::parse(conf).unwrap();
    assert_eq!(conf.socket(), std::path::Path::new("/s"));
    assert_eq!(
        conf.required_prev_result().unwrap_err().code,
        code::INVALID_CONFIG
    );
}
