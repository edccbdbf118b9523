//! The maps shared with the daemon. Sizes here are defaults: the daemon may
//! resize them before loading.

use crate::parse::Packet;
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf, lpm_trie::Key},
};
use netseg_contract::{
    BudgetKey, CONFIG_ENTRIES, COUNTER_COUNT, ConnKey, ConnValue, DenyCountKey,
    ENDPOINT_SLOT_ENTRIES, Endpoint, EndpointKey, FragmentKey, FragmentValue, IPCACHE_SLOT_ENTRIES,
    IpcacheV4Key, IpcacheV6Key, POLICY_SLOT_ENTRIES, PolicyKey, PolicyValue, RecordBudget, SLOTS,
    UsageKey,
};

#[map]
pub static CONFIG: Array<u32> = Array::with_max_entries(CONFIG_ENTRIES, 0);

#[map]
pub static ENDPOINTS: HashMap<EndpointKey, Endpoint> =
    HashMap::with_max_entries(SLOTS * ENDPOINT_SLOT_ENTRIES, 0);

#[map]
pub static IPCACHE_V4: LpmTrie<IpcacheV4Key, u32> =
    LpmTrie::with_max_entries(SLOTS * IPCACHE_SLOT_ENTRIES, 0);

#[map]
pub static IPCACHE_V6: LpmTrie<IpcacheV6Key, u32> =
    LpmTrie::with_max_entries(SLOTS * IPCACHE_SLOT_ENTRIES, 0);

#[map]
pub static POLICY: LpmTrie<PolicyKey, PolicyValue> =
    LpmTrie::with_max_entries(SLOTS * POLICY_SLOT_ENTRIES, 0);

/// Not least-recently-used: a full table must refuse the newcomer, never
/// evict another endpoint's connection. Expired entries are deleted by the
/// programs when they meet them and by the daemon's sweep.
#[map]
pub static CONNECTIONS: HashMap<ConnKey, ConnValue> = HashMap::with_max_entries(262144, 0);

#[map]
pub static FRAGMENTS: HashMap<FragmentKey, FragmentValue> = HashMap::with_max_entries(8192, 0);

/// What each endpoint holds of `CONNECTIONS` and `FRAGMENTS` (see `UsageKey`):
/// two tables, two writers and two origins, for up to 8192 interfaces.
#[map]
pub static USAGE: HashMap<UsageKey, u64> = HashMap::with_max_entries(8 * 8192, 0);

/// When each denied flow last got a record of its own.
#[map]
pub static DENY_SAMPLES: LruHashMap<ConnKey, u64> = LruHashMap::with_max_entries(65536, 0);

/// Evicting an endpoint's budget only starts its second afresh.
#[map]
pub static DENY_BUDGETS: LruHashMap<BudgetKey, RecordBudget> =
    LruHashMap::with_max_entries(16384, 0);

/// Not LRU: an evicted count would vanish from the log. The daemon removes
/// the keys of interfaces that are gone; a key that does not fit is counted
/// as an event lost.
#[map]
pub static DENY_COUNTS: HashMap<DenyCountKey, u64> = HashMap::with_max_entries(32768, 0);

#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// Scratch space for the packet being classified.
#[map]
pub static SCRATCH: PerCpuArray<Packet> = PerCpuArray::with_max_entries(1, 0);

pub type LpmKey<K> = Key<K>;
