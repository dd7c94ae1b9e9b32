//! The installer's small records and indexes, shaped for 100,000 tunnels: each is held
//! once per IKE SA or per tunnel, so what is nearly always one element stays inline
//! and the keys are as small as their job allows.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::net::SocketAddr;

use shared::path::PathId;

use crate::ike::sa::{ChildId, SaId, SpiHasher};

/// The children of an IKE SA or of a tunnel, in the order given. Nearly always one,
/// kept inline (a `Vec` of one costs its 24 bytes and a 32-byte allocation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ChildList {
    One(ChildId),
    /// None, or two and more.
    Many(Vec<ChildId>),
}

impl Default for ChildList {
    fn default() -> Self {
        ChildList::Many(Vec::new())
    }
}

impl ChildList {
    pub fn as_slice(&self) -> &[ChildId] {
        match self {
            ChildList::One(c) => std::slice::from_ref(c),
            ChildList::Many(v) => v,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn last(&self) -> Option<ChildId> {
        self.as_slice().last().copied()
    }

    /// Adds `id` at its place in ascending order, if absent.
    pub fn insert_sorted(&mut self, id: ChildId) {
        let v = self.as_slice();
        if let Err(i) = v.binary_search(&id) {
            let mut n = Vec::with_capacity(v.len() + 1);
            n.extend_from_slice(&v[..i]);
            n.push(id);
            n.extend_from_slice(&v[i..]);
            self.set(n);
        }
    }

    /// Adds `id` at the end.
    pub fn push(&mut self, id: ChildId) {
        let mut n = Vec::with_capacity(self.len() + 1);
        n.extend_from_slice(self.as_slice());
        n.push(id);
        self.set(n);
    }

    /// Removes `id` wherever it is.
    pub fn remove(&mut self, id: ChildId) {
        if self.as_slice().contains(&id) {
            let n: Vec<ChildId> = self
                .as_slice()
                .iter()
                .copied()
                .filter(|&c| c != id)
                .collect();
            self.set(n);
        }
    }

    fn set(&mut self, mut v: Vec<ChildId>) {
        *self = match v.as_slice() {
            [one] => ChildList::One(*one),
            _ => {
                v.shrink_to_fit();
                ChildList::Many(v)
            }
        };
    }
}

/// The IKE SAs whose path runs between one pair of addresses, each with its path.
/// Nearly always one (each peer has its address), which a `BTreeMap` would keep in a
/// node of eleven; a map only when several share the pair (many clients behind one
/// address and port) or, rarely, when two pairs share a key (see [`PairKeys`]).
#[derive(Debug)]
pub(super) enum PairSas {
    One(SaId, PathId),
    Many(BTreeMap<SaId, PathId>),
}

impl PairSas {
    /// The SAs with their paths, ascending by SPI.
    pub fn iter(&self) -> impl Iterator<Item = (SaId, PathId)> + '_ {
        let (one, many) = match self {
            PairSas::One(s, p) => (Some((*s, *p)), None),
            PairSas::Many(m) => (None, Some(m.iter().map(|(&s, &p)| (s, p)))),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    pub fn insert(&mut self, sa: SaId, path: PathId) {
        match self {
            PairSas::One(s, p) if *s == sa => *p = path,
            PairSas::One(s, p) => *self = PairSas::Many(BTreeMap::from([(*s, *p), (sa, path)])),
            PairSas::Many(m) => {
                m.insert(sa, path);
            }
        }
    }

    /// Removes `sa`; true if none is left.
    pub fn remove(&mut self, sa: SaId) -> bool {
        match self {
            PairSas::One(s, _) => *s == sa,
            PairSas::Many(m) => {
                m.remove(&sa);
                let only = match m.len() {
                    1 => m.iter().next().map(|(&s, &p)| (s, p)),
                    _ => None,
                };
                if let Some((s, p)) = only {
                    *self = PairSas::One(s, p);
                    return false;
                }
                m.is_empty()
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        match self {
            PairSas::One(..) => 1,
            PairSas::Many(m) => m.len(),
        }
    }
}

/// Keys of the address-pair index: a keyed 64-bit hash of (local, remote) instead of
/// the 64 bytes of two `SocketAddr`s. Two pairs may share a key (about once in 10^9
/// at 100,000 SAs); the index then holds both pairs' SAs under it, and the lookup
/// checks each SA's path record for its addresses, so the answer stays exact.
#[derive(Default)]
pub(super) struct PairKeys(RandomState);

impl PairKeys {
    pub fn key(&self, local: SocketAddr, remote: SocketAddr) -> u64 {
        self.0.hash_one((local, remote))
    }
}

/// The hasher of maps keyed by [`PairKeys`]: the key is a hash already.
pub(super) type PairHasher = BuildHasherDefault<SpiHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A `ChildList` answers as a plain vector would, and holds one inline.
        #[test]
        fn child_list_is_a_vector(ops in proptest::collection::vec((0u8..3, 0u64..6), 0..40)) {
            let (mut l, mut sorted, mut pushed) = (ChildList::default(), ChildList::default(), Vec::new());
            let mut model: Vec<u64> = Vec::new();
            for (op, id) in ops {
                match op {
                    0 => {
                        if let Err(i) = model.binary_search(&id) {
                            model.insert(i, id);
                        }
                        sorted.insert_sorted(id);
                    }
                    1 => {
                        model.retain(|&c| c != id);
                        sorted.remove(id);
                        pushed.retain(|&c| c != id);
                        l.remove(id);
                    }
                    _ => {
                        pushed.push(id);
                        l.push(id);
                    }
                }
                prop_assert_eq!(sorted.as_slice(), model.as_slice());
                prop_assert_eq!(l.as_slice(), pushed.as_slice());
                for x in [&l, &sorted] {
                    prop_assert_eq!(x.len() == 1, matches!(x, ChildList::One(_)));
                }
            }
        }
    }
}
