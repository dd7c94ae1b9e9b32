//! Immutable open-addressing maps for the packet path: built once by the writer, read by
//! workers with no allocation, no hashing library and at most a few probes.

use std::net::IpAddr;

const EMPTY: u32 = u32::MAX;

#[inline]
fn mix64(x: u64) -> u64 {
    // splitmix64 finaliser: SPIs are chosen by peers, so spread them well.
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SPI -> value index. Capacity is a power of two at least twice the entry count, so
/// linear probing stays short and always finds an empty slot.
#[derive(Debug, Default, Clone)]
pub struct SpiMap {
    keys: Box<[u32]>,
    vals: Box<[u32]>,
    mask: usize,
}

impl SpiMap {
    /// Builds the map. Later duplicates of a key are ignored (the writer never adds any).
    pub fn build(entries: &[(u32, u32)]) -> SpiMap {
        let cap = (entries.len() * 2).next_power_of_two().max(8);
        let mut keys = vec![0u32; cap].into_boxed_slice();
        let mut vals = vec![EMPTY; cap].into_boxed_slice();
        let mask = cap - 1;
        for &(k, v) in entries {
            let mut i = mix64(k as u64) as usize & mask;
            loop {
                if vals[i] == EMPTY {
                    keys[i] = k;
                    vals[i] = v;
                    break;
                }
                if keys[i] == k {
                    break;
                }
                i = (i + 1) & mask;
            }
        }
        SpiMap { keys, vals, mask }
    }

    #[inline]
    pub fn get(&self, key: u32) -> Option<u32> {
        if self.vals.is_empty() {
            return None;
        }
        let mut i = mix64(key as u64) as usize & self.mask;
        loop {
            let v = self.vals[i];
            if v == EMPTY {
                return None;
            }
            if self.keys[i] == key {
                return Some(v);
            }
            i = (i + 1) & self.mask;
        }
    }
}

/// IP address -> value (tunnel id), for host selectors.
#[derive(Debug, Default, Clone)]
pub struct AddrMap {
    keys: Box<[(u128, bool)]>,
    vals: Box<[u32]>,
    mask: usize,
}

/// The family flag keeps `10.0.0.1` and `::ffff:10.0.0.1` apart.
#[inline]
fn addr_key(a: IpAddr) -> (u128, bool) {
    match a {
        IpAddr::V4(v4) => (u32::from(v4) as u128, false),
        IpAddr::V6(v6) => (u128::from(v6), true),
    }
}

#[inline]
fn addr_hash(k: (u128, bool)) -> u64 {
    mix64((k.0 as u64) ^ mix64((k.0 >> 64) as u64 ^ k.1 as u64))
}

impl AddrMap {
    pub fn build(entries: &[(IpAddr, u32)]) -> AddrMap {
        let cap = (entries.len() * 2).next_power_of_two().max(8);
        let mut keys = vec![(0u128, false); cap].into_boxed_slice();
        let mut vals = vec![EMPTY; cap].into_boxed_slice();
        let mask = cap - 1;
        for &(a, v) in entries {
            let k = addr_key(a);
            let mut i = addr_hash(k) as usize & mask;
            loop {
                if vals[i] == EMPTY {
                    keys[i] = k;
                    vals[i] = v;
                    break;
                }
                if keys[i] == k {
                    break;
                }
                i = (i + 1) & mask;
            }
        }
        AddrMap { keys, vals, mask }
    }

    #[inline]
    pub fn get(&self, a: IpAddr) -> Option<u32> {
        if self.vals.is_empty() {
            return None;
        }
        let k = addr_key(a);
        let mut i = addr_hash(k) as usize & self.mask;
        loop {
            let v = self.vals[i];
            if v == EMPTY {
                return None;
            }
            if self.keys[i] == k {
                return Some(v);
            }
            i = (i + 1) & self.mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        #[test]
        fn spimap_agrees_with_hashmap(keys in proptest::collection::vec(any::<u32>(), 0..300), probes in proptest::collection::vec(any::<u32>(), 0..50)) {
            let mut reference = HashMap::new();
            let mut entries = Vec::new();
            for (i, k) in keys.iter().enumerate() {
                if reference.insert(*k, i as u32).is_none() {
                    entries.push((*k, i as u32));
                } else {
                    reference.insert(*k, entries.iter().find(|e| e.0 == *k).unwrap().1);
                }
            }
            let m = SpiMap::build(&entries);
            for k in keys.iter().chain(probes.iter()) {
                prop_assert_eq!(m.get(*k), reference.get(k).copied());
            }
        }
    }

    #[test]
    fn addrmap_keeps_families_apart() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let m = AddrMap::build(&[(v4, 7)]);
        assert_eq!(m.get(v4), Some(7));
        assert_eq!(m.get(mapped), None);
        let m = AddrMap::build(&[(mapped, 9)]);
        assert_eq!(m.get(mapped), Some(9));
        assert_eq!(m.get(v4), None);
        assert_eq!(AddrMap::default().get(v4), None);
        assert_eq!(SpiMap::default().get(1), None);
    }
}
