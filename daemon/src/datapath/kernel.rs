//! The kernel maps behind [`MapWriter`].

use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, lpm_trie::Key, lpm_trie::LpmTrie},
};
use ipnetwork::IpNetwork;
use netseg_contract::{
    CONFIG_CONNTRACK_PER_ENDPOINT, CONFIG_DENY_RECORDS_PER_ENDPOINT, CONFIG_DENY_RECORDS_TOTAL,
    CONFIG_FLOW_EVENTS_OFF, CONFIG_FRAGMENTS_PER_ENDPOINT, CONFIG_REVISION, Endpoint, EndpointKey,
    IpcacheV4Key, IpcacheV6Key, PolicyKey, PolicyValue,
};
use netseg_policy::PolicyEntryKey;

use super::{DatapathError, DenyBudgets, FlowEvents, Limits, publish::MapWriter};

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
        let lpm = Key::new(key.prefix_len(), key.to_contract(slot));
        self.policy
            .insert(&lpm, value, 0)
            .map_err(failed("POLICY", "insert"))
    }

    fn remove_policy(&mut self, slot: u32, key: &PolicyEntryKey) -> Result<(), MapError> {
        let lpm = Key::new(key.prefix_len(), key.to_contract(slot));
        removed(self.policy.remove(&lpm)).map_err(failed("POLICY", "remove"))
    }

    fn set_revision(&mut self, revision: u32) -> Result<(), MapError> {
        self.config
            .set(CONFIG_REVISION, revision, 0)
            .map_err(failed("CONFIG", "set revision"))
    }
}
