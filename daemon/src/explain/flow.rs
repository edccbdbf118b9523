//! The question a flow record asks `netseg explain`: its connection from
//! the source (its pod, else its address) to the destination, by protocol
//! and destination port, over IPv6 when its addresses are.

use std::{io::BufRead, net::IpAddr};

use anyhow::{Context as _, Result};
use netseg_contract::{PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP};
use netseg_policy::DefaultAction;

use super::Question;
use crate::flows::{FlowRecord, protocol_name};

/// A connection to explain, as `--from`, `--to`, `--protocol`, `--port`
/// and `--ipv6` give it or a flow record names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowQuestion {
    pub from: String,
    pub to: String,
    pub protocol: u8,
    pub port: u16,
    pub ipv6: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordQuestionError {
    #[error(
        "a {kind} record counts denials at {endpoint} without their connections: there is no connection to explain"
    )]
    NoConnection {
        kind: &'static str,
        endpoint: String,
    },
    #[error("the record has no {field}: there is no connection to explain")]
    Missing { field: &'static str },
    #[error("the record's protocol {protocol:?} is not one netseg names")]
    UnknownProtocol { protocol: String },
}

impl FlowQuestion {
    /// The connection of `record`.
    pub fn of_record(record: &FlowRecord) -> Result<Self, RecordQuestionError> {
        use RecordQuestionError::*;
        let (Some(src_ip), Some(dst_ip)) = (record.src_ip, record.dst_ip) else {
            return Err(match record.protocol {
                None => NoConnection {
                    kind: record.kind.name(),
                    endpoint: record.endpoint.clone().unwrap_or_else(|| "?".into()),
                },
                Some(_) => Missing {
                    field: "source or destination address",
                },
            });
        };
        let name = record
            .protocol
            .as_deref()
            .ok_or(Missing { field: "protocol" })?;
        let protocol = (0..=u8::MAX)
            .find(|&number| protocol_name(number) == name)
            .ok_or_else(|| UnknownProtocol {
                protocol: name.into(),
            })?;
        // A pod is `namespace/name`; the node and strangers go by address.
        let end = |pod: &Option<String>, ip: IpAddr| match pod {
            Some(pod) if pod.contains('/') => pod.clone(),
            _ => ip.to_string(),
        };
        Ok(Self {
            from: end(&record.src.pod, src_ip),
            to: end(&record.dst.pod, dst_ip),
            protocol,
            port: record.dst_port.unwrap_or(0),
            ipv6: dst_ip.is_ipv6(),
        })
    }

    /// The connection of the record in `text`, a JSON line; `-` reads the
    /// first non-empty line of `stdin`.
    pub fn read_record(text: &str, stdin: impl BufRead) -> Result<Self> {
        let line = match text {
            "-" => first_line(stdin).context("reading the flow record from stdin")?,
            text => text.to_owned(),
        };
        let record = FlowRecord::parse(&line).context("the flow record does not read")?;
        Ok(Self::of_record(&record)?)
    }

    pub fn question(&self, default_action: DefaultAction) -> Question<'_> {
        Question {
            from: &self.from,
            to: &self.to,
            protocol: self.protocol,
            port: self.port,
            ipv6: self.ipv6,
            default_action,
        }
    }

    /// The `netseg explain DIR ...` command line that asks this, when its
    /// protocol is one the command line takes.
    pub fn command_line(&self, dir: &str) -> Option<String> {
        let (protocol, port) = match self.protocol {
            PROTO_TCP => ("tcp", true),
            PROTO_UDP => ("udp", true),
            PROTO_SCTP => ("sctp", true),
            PROTO_ICMP | PROTO_ICMPV6 => ("icmp", false),
            _ => return None,
        };
        let mut line = format!(
            "netseg explain {dir} --from {} --to {} --protocol {protocol}",
            self.from, self.to
        );
        if port {
            line.push_str(&format!(" --port {}", self.port));
        }
        if self.ipv6 {
            line.push_str(" --ipv6");
        }
        Some(line)
    }
}

fn first_line(input: impl BufRead) -> Result<String> {
    for line in input.lines() {
        let line = line?;
        if !line.trim().is_empty() {
            return Ok(line);
        }
    }
    anyhow::bail!("no record: stdin was empty")
}
