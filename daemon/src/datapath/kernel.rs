//! The kernel maps behind [`MapWriter`].

use aya::{
    Ebpf,
    maps::{Array, HashMap, IterableMap, MapData, lpm_trie::Key, lpm_trie::LpmTrie},
};
use ipnetwork::IpNetwork;
use netseg_contract::{
    CONFIG_CONNTRACK_PER_ENDPOINT, CONFIG_DENY_RECORDS_PER_ENDPOINT, CONFIG_DENY_RECORDS_TOTAL,
    CONFIG_FLOW_EVENTS_OFF, CONFIG_FRAGMENTS_PER_ENDPOINT, CONFIG_REVISION, Endpoint, EndpointKey,
    IpcacheV4Key, IpcacheV6Key, PolicyKey, PolicyValue,
};
use netseg_policy::PolicyEntryKey;

use super::{
    DatapathError, DenyBudgets, FlowEvents, Limits,
    batch_write::{self, BatchStopped},
    publish::{MapWriter, Stopped, one_by_one},
};

#[derive(Debug, thiserror::Error)]
#[error("{operation} in map {map}")]
pub struct MapError {
    map: &'static str,
    operation: &'static str,
    #[source]
    source: aya::maps::MapError,
}

pub struct KernelMaps {
    config: Array<MapData, u32>,
    endpoints: HashMap<MapData, EndpointKey, Endpoint>,
    ipcache_v4: LpmTrie<MapData, IpcacheV4Key, u32>,
    ipcache_v6: LpmTrie<MapData, IpcacheV6Key, u32>,
    policy: LpmTrie<MapData, PolicyKey, PolicyValue>,
    /// Whether the kernel has batch commands for the LPM tries; until one
    /// is refused whole, it is assumed to.
    batches: bool,
}

pub(super) fn take_map<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(
    ebpf: &mut Ebpf,
    map: &'static str,
) -> Result<T, DatapathError> {
    let raw = ebpf.take_map(map).ok_or(DatapathError::Missing(map))?;
    T::try_from(raw).map_err(|source| DatapathError::Map { map, source })
}

/// A handle of its own on map `map`, which stays in `ebpf`.
pub(super) fn second_handle<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(
    ebpf: &Ebpf,
    map: &'static str,
) -> Result<T, DatapathError> {
    let fail = |source| DatapathError::Map { map, source };
    let raw = match ebpf.map(map).ok_or(DatapathError::Missing(map))? {
        aya::maps::Map::HashMap(data) => data,
        _ => return Err(DatapathError::Missing(map)),
    };
    let fd = std::os::fd::AsFd::as_fd(raw.fd())
        .try_clone_to_owned()
        .map_err(|error| {
            fail(aya::maps::MapError::SyscallError(aya::sys::SyscallError {
                call: "dup",
                io_error: error,
            }))
        })?;
    let data = aya::maps::MapData::from_fd(fd).map_err(fail)?;
    T::try_from(aya::maps::Map::HashMap(data)).map_err(fail)
}

impl KernelMaps {
    /// Turns kinds of flow events off (or back on) in the programs.
    pub fn set_flow_events(&mut self, events: FlowEvents) -> Result<(), MapError> {
        self.config
            .set(CONFIG_FLOW_EVENTS_OFF, events.off_bits(), 0)
            .map_err(failed("CONFIG", "set flow events"))
    }

    /// Sets how much of the conntrack and fragment tables one endpoint may hold.
    pub fn set_limits(&mut self, limits: Limits) -> Result<(), MapError> {
        for (index, limit) in [
            (CONFIG_CONNTRACK_PER_ENDPOINT, limits.conntrack_per_endpoint),
            (CONFIG_FRAGMENTS_PER_ENDPOINT, limits.fragments_per_endpoint),
        ] {
            self.config
                .set(index, limit, 0)
                .map_err(failed("CONFIG", "set limits"))?;
        }
        Ok(())
    }

    /// Sets how many denials a second get a record of their own.
    pub fn set_deny_budgets(&mut self, budgets: DenyBudgets) -> Result<(), MapError> {
        self.config
            .set(CONFIG_DENY_RECORDS_PER_ENDPOINT, budgets.per_endpoint, 0)
            .and_then(|()| self.config.set(CONFIG_DENY_RECORDS_TOTAL, budgets.total, 0))
            .map_err(failed("CONFIG", "set denial record budgets"))
    }

    pub(super) fn take(ebpf: &mut Ebpf) -> Result<Self, DatapathError> {
        Ok(Self {
            config: take_map(ebpf, "CONFIG")?,
            endpoints: take_map(ebpf, "ENDPOINTS")?,
            ipcache_v4: take_map(ebpf, "IPCACHE_V4")?,
            ipcache_v6: take_map(ebpf, "IPCACHE_V6")?,
            policy: take_map(ebpf, "POLICY")?,
            batches: true,
        })
    }
}

fn failed(
    map: &'static str,
    operation: &'static str,
) -> impl FnOnce(aya::maps::MapError) -> MapError {
    move |source| MapError {
        map,
        operation,
        source,
    }
}

/// Removing an entry that is already gone is not an error.
fn removed(result: Result<(), aya::maps::MapError>) -> Result<(), aya::maps::MapError> {
    match result {
        Err(aya::maps::MapError::KeyNotFound) => Ok(()),
        other => other,
    }
}

enum IpcacheKey {
    V4(Key<IpcacheV4Key>),
    V6(Key<IpcacheV6Key>),
}

fn ipcache_key(slot: u32, prefix: IpNetwork) -> IpcacheKey {
    let len = 32 + u32::from(prefix.prefix());
    match prefix {
        IpNetwork::V4(net) => IpcacheKey::V4(Key::new(
            len,
            IpcacheV4Key {
                slot,
                addr: net.network().octets(),
            },
        )),
        IpNetwork::V6(net) => IpcacheKey::V6(Key::new(
            len,
            IpcacheV6Key {
                slot,
                addr: net.network().octets(),
            },
        )),
    }
}

impl MapWriter for KernelMaps {
    type Error = MapError;

    fn upsert_endpoint(
        &mut self,
        slot: u32,
        ifindex: u32,
        endpoint: &Endpoint,
    ) -> Result<(), MapError> {
        self.endpoints
            .insert(EndpointKey { slot, ifindex }, endpoint, 0)
            .map_err(failed("ENDPOINTS", "insert"))
    }

    fn remove_endpoint(&mut self, slot: u32, ifindex: u32) -> Result<(), MapError> {
        removed(self.endpoints.remove(&EndpointKey { slot, ifindex }))
            .map_err(failed("ENDPOINTS", "remove"))
    }

    fn upsert_ipcache(
        &mut self,
        slot: u32,
        prefix: IpNetwork,
        identity: u32,
    ) -> Result<(), MapError> {
        match ipcache_key(slot, prefix) {
            IpcacheKey::V4(key) => self
                .ipcache_v4
                .insert(&key, identity, 0)
                .map_err(failed("IPCACHE_V4", "insert")),
            IpcacheKey::V6(key) => self
                .ipcache_v6
                .insert(&key, identity, 0)
                .map_err(failed("IPCACHE_V6", "insert")),
        }
    }

    fn remove_ipcache(&mut self, slot: u32, prefix: IpNetwork) -> Result<(), MapError> {
        match ipcache_key(slot, prefix) {
            IpcacheKey::V4(key) => {
                removed(self.ipcache_v4.remove(&key)).map_err(failed("IPCACHE_V4", "remove"))
            }
            IpcacheKey::V6(key) => {
                removed(self.ipcache_v6.remove(&key)).map_err(failed("IPCACHE_V6", "remove"))
            }
        }
    }

    fn upsert_policy(
        &mut self,
        slot: u32,
        key: &PolicyEntryKey,
        value: PolicyValue,
    ) -> Result<(), MapError> {
        self.policy
            .insert(&policy_key(slot, key), value, 0)
            .map_err(failed("POLICY", "insert"))
    }

    fn remove_policy(&mut self, slot: u32, key: &PolicyEntryKey) -> Result<(), MapError> {
        removed(self.policy.remove(&policy_key(slot, key))).map_err(failed("POLICY", "remove"))
    }

    fn set_revision(&mut self, revision: u32) -> Result<(), MapError> {
        self.config
            .set(CONFIG_REVISION, revision, 0)
            .map_err(failed("CONFIG", "set revision"))
    }

    fn upsert_ipcache_all(
        &mut self,
        slot: u32,
        entries: &[(IpNetwork, u32)],
    ) -> Result<(), Stopped<MapError>> {
        let mut done = 0;
        // The diff lists IPv4 prefixes before IPv6 ones: one run a map.
        for run in entries.chunk_by(|a, b| a.0.is_ipv4() == b.0.is_ipv4()) {
            let identities: Vec<u32> = run.iter().map(|(_, identity)| *identity).collect();
            let (v4, v6) = ipcache_keys(slot, run.iter().map(|(prefix, _)| *prefix));
            let batched = match run[0].0 {
                IpNetwork::V4(_) => self.batch("IPCACHE_V4", BatchCommand::Update, |maps| {
                    batch_write::update(maps.ipcache_v4.map(), &v4, &identities)
                }),
                IpNetwork::V6(_) => self.batch("IPCACHE_V6", BatchCommand::Update, |maps| {
                    batch_write::update(maps.ipcache_v6.map(), &v6, &identities)
                }),
            };
            self.or_one_by_one(batched, run, |maps, (prefix, identity)| {
                maps.upsert_ipcache(slot, *prefix, *identity)
            })
            .map_err(|stopped| stopped.after(done))?;
            done += run.len();
        }
        Ok(())
    }

    fn remove_ipcache_all(
        &mut self,
        slot: u32,
        prefixes: &[IpNetwork],
    ) -> Result<(), Stopped<MapError>> {
        let mut done = 0;
        for run in prefixes.chunk_by(|a, b| a.is_ipv4() == b.is_ipv4()) {
            let (v4, v6) = ipcache_keys(slot, run.iter().copied());
            let batched = match run[0] {
                IpNetwork::V4(_) => self.batch("IPCACHE_V4", BatchCommand::Delete, |maps| {
                    batch_write::delete(maps.ipcache_v4.map(), &v4)
                }),
                IpNetwork::V6(_) => self.batch("IPCACHE_V6", BatchCommand::Delete, |maps| {
                    batch_write::delete(maps.ipcache_v6.map(), &v6)
                }),
            };
            self.or_one_by_one(batched, run, |maps, prefix| {
                maps.remove_ipcache(slot, *prefix)
            })
            .map_err(|stopped| stopped.after(done))?;
            done += run.len();
        }
        Ok(())
    }

    fn upsert_policy_all(
        &mut self,
        slot: u32,
        entries: &[(PolicyEntryKey, PolicyValue)],
    ) -> Result<(), Stopped<MapError>> {
        let keys: Vec<Key<PolicyKey>> = entries
            .iter()
            .map(|(key, _)| policy_key(slot, key))
            .collect();
        let values: Vec<PolicyValue> = entries.iter().map(|(_, value)| *value).collect();
        let batched = self.batch("POLICY", BatchCommand::Update, |maps| {
            batch_write::update(maps.policy.map(), &keys, &values)
        });
        self.or_one_by_one(batched, entries, |maps, (key, value)| {
            maps.upsert_policy(slot, key, *value)
        })
    }

    fn remove_policy_all(
        &mut self,
        slot: u32,
        keys: &[PolicyEntryKey],
    ) -> Result<(), Stopped<MapError>> {
        let lpm: Vec<Key<PolicyKey>> = keys.iter().map(|key| policy_key(slot, key)).collect();
        let batched = self.batch("POLICY", BatchCommand::Delete, |maps| {
            batch_write::delete(maps.policy.map(), &lpm)
        });
        self.or_one_by_one(batched, keys, |maps, key| maps.remove_policy(slot, key))
    }
}

fn policy_key(slot: u32, key: &PolicyEntryKey) -> Key<PolicyKey> {
    Key::new(key.prefix_len(), key.to_contract(slot))
}

/// The kernel keys of `prefixes`, IPv4 and IPv6 apart.
fn ipcache_keys(
    slot: u32,
    prefixes: impl Iterator<Item = IpNetwork>,
) -> (Vec<Key<IpcacheV4Key>>, Vec<Key<IpcacheV6Key>>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for prefix in prefixes {
        match ipcache_key(slot, prefix) {
            IpcacheKey::V4(key) => v4.push(key),
            IpcacheKey::V6(key) => v6.push(key),
        }
    }
    (v4, v6)
}

#[derive(Clone, Copy)]
enum BatchCommand {
    Update,
    Delete,
}

impl BatchCommand {
    fn operation(self) -> &'static str {
        match self {
            Self::Update => "insert",
            Self::Delete => "remove",
        }
    }

    fn call(self) -> &'static str {
        match self {
            Self::Update => "bpf_map_update_batch",
            Self::Delete => "bpf_map_delete_batch",
        }
    }
}

/// What a batch command did: all, or where it stopped and why; `None`
/// when the kernel has no batch commands for the map.
type Batched = Option<Result<(), Stopped<MapError>>>;

impl KernelMaps {
    /// Runs `write` as a batch command on map `map`, unless the kernel
    /// refused one before.
    fn batch(
        &mut self,
        map: &'static str,
        command: BatchCommand,
        write: impl FnOnce(&mut Self) -> Result<(), BatchStopped>,
    ) -> Batched {
        if !self.batches {
            return None;
        }
        match write(self) {
            Ok(()) => Some(Ok(())),
            Err(stopped) if stopped.unsupported() => {
                tracing::info!(
                    map,
                    error = %stopped.error,
                    "the kernel has no batch map writes here; writing one entry a call"
                );
                self.batches = false;
                None
            }
            Err(stopped) => Some(Err(Stopped {
                done: stopped.done,
                error: MapError {
                    map,
                    operation: command.operation(),
                    source: aya::maps::MapError::SyscallError(aya::sys::SyscallError {
                        call: command.call(),
                        io_error: stopped.error,
                    }),
                },
            })),
        }
    }

    /// `batched`'s outcome, or `items` written one a call when it did not run.
    fn or_one_by_one<T>(
        &mut self,
        batched: Batched,
        items: &[T],
        mut write: impl FnMut(&mut Self, &T) -> Result<(), MapError>,
    ) -> Result<(), Stopped<MapError>> {
        match batched {
            Some(outcome) => outcome,
            None => one_by_one(items, |item| write(self, item)),
        }
    }
}
