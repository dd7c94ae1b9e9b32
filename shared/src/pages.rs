//! Persistent paged arrays: the storage under every shared table.
//!
//! A `Pages<T, P>` is a fixed-capacity array split into pages of `P` entries behind `Arc`,
//! found through a three-level index: a root of `capacity / (P * 256)` pointers, then two
//! levels of nodes of `FANOUT` (16) pointers. Cloning one is one reference count. The
//! writer changes its own copy in place through `get_mut`, which copies on write only what
//! is shared with a published version: the root, one node per level and one page, each
//! copy raising the reference count of every child it points to. So a publication costs
//! what changed, not what exists (the root grows with the capacity, by 8 bytes per 256
//! pages), and a version a worker still reads is never touched. The narrow nodes keep
//! that copy small: with 64-pointer nodes, moving one of 100,000 paths raised 90 counts
//! in cold memory, with 16 it raises 39. Nodes and pages are allocated on first write; an
//! empty table is its root alone.
//!
//! `HashPages<E, P>` is an open-addressing hash table (linear probing, backward-shift
//! deletion, load at most one half) over `Pages<E, P>`: adding or removing a key copies
//! the one or two pages its probe run lies in.

use std::sync::Arc;

/// Entries per page unless a table says otherwise (path records: `table::PATH_PAGE`).
pub const PAGE: usize = 64;
/// Pointers per index node.
pub const FANOUT: usize = 16;
const FANOUT_BITS: u32 = FANOUT.trailing_zeros();

type Node<C> = [Option<Arc<C>>; FANOUT];
type Leaves<T, const P: usize> = Node<[T; P]>;
/// The root: one pointer per `P * FANOUT * FANOUT` entries.
type Root<T, const P: usize> = Arc<[Option<Arc<Node<Leaves<T, P>>>>]>;

/// A fixed-capacity persistent array; absent entries read as `None`, or as `T::default()`
/// in pages that exist. `P` must be a power of two.
pub struct Pages<T, const P: usize = PAGE> {
    root: Root<T, P>,
}

impl<T, const P: usize> Clone for Pages<T, P> {
    fn clone(&self) -> Self {
        Pages {
            root: self.root.clone(),
        }
    }
}

impl<T, const P: usize> Default for Pages<T, P> {
    fn default() -> Self {
        Pages::with_capacity(0)
    }
}

impl<T, const P: usize> Pages<T, P> {
    const PAGE_BITS: u32 = {
        assert!(P.is_power_of_two());
        P.trailing_zeros()
    };
    /// Entries under one root pointer.
    const SPAN_BITS: u32 = Self::PAGE_BITS + 2 * FANOUT_BITS;

    /// Room for at least `capacity` entries (rounded up to whole root spans).
    pub fn with_capacity(capacity: usize) -> Pages<T, P> {
        let spans = capacity.div_ceil(1 << Self::SPAN_BITS);
        Pages {
            root: (0..spans).map(|_| None).collect(),
        }
    }

    /// Number of addressable entries.
    pub fn capacity(&self) -> usize {
        self.root.len() << Self::SPAN_BITS
    }

    /// Entry `i`, or `None` if its page was never written (or `i` is out of range).
    /// Four dependent loads (the first three in small, hot nodes), no allocation.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        let a = self.root.get(i >> Self::SPAN_BITS)?.as_deref()?;
        let b = a[(i >> (Self::PAGE_BITS + FANOUT_BITS)) & (FANOUT - 1)].as_deref()?;
        let page = b[(i >> Self::PAGE_BITS) & (FANOUT - 1)].as_deref()?;
        Some(&page[i & (P - 1)])
    }

    /// Pages allocated in this version (for memory accounting).
    pub fn pages(&self) -> usize {
        self.root
            .iter()
            .flatten()
            .flat_map(|a| a.iter().flatten())
            .map(|b| b.iter().flatten().count())
            .sum()
    }
}

impl<T: Clone + Default, const P: usize> Pages<T, P> {
    /// Entry `i` for writing: copies the root, the nodes and the page if a published
    /// version shares them, and allocates them if absent. `None` if `i` is out of range.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i >= self.capacity() {
            return None;
        }
        if Arc::get_mut(&mut self.root).is_none() {
            self.root = self.root.iter().cloned().collect();
        }
        let root = Arc::get_mut(&mut self.root)?;
        let a = root[i >> Self::SPAN_BITS].get_or_insert_with(|| Arc::new(empty_node()));
        let b = Arc::make_mut(a)[(i >> (Self::PAGE_BITS + FANOUT_BITS)) & (FANOUT - 1)]
            .get_or_insert_with(|| Arc::new(empty_node()));
        let page = Arc::make_mut(b)[(i >> Self::PAGE_BITS) & (FANOUT - 1)]
            .get_or_insert_with(|| Arc::new(std::array::from_fn(|_| T::default())));
        Some(&mut Arc::make_mut(page)[i & (P - 1)])
    }
}

fn empty_node<C>() -> Node<C> {
    std::array::from_fn(|_| None)
}

/// An entry of a `HashPages` table: a key when occupied, nothing when empty (the
/// default value must be empty).
pub trait HashEntry: Clone + Default {
    type Key: Copy + Eq;
    /// The key, or `None` for an empty entry.
    fn key(&self) -> Option<Self::Key>;
    fn hash(key: &Self::Key) -> u64;
}

/// splitmix64 finaliser: keys are chosen by peers (SPIs) or by configuration, so spread
/// them well before masking.
#[inline]
pub fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A persistent open-addressing hash table. The capacity is a power of two at least twice
/// the entry count, so probe runs stay short and a lookup always meets an empty entry.
pub struct HashPages<E, const P: usize = PAGE> {
    slots: Pages<E, P>,
    mask: usize,
    len: usize,
}

impl<E, const P: usize> Clone for HashPages<E, P> {
    fn clone(&self) -> Self {
        HashPages {
            slots: self.slots.clone(),
            mask: self.mask,
            len: self.len,
        }
    }
}

impl<E, const P: usize> Default for HashPages<E, P> {
    fn default() -> Self {
        HashPages {
            slots: Pages::default(),
            mask: 0,
            len: 0,
        }
    }
}

impl<E: HashEntry, const P: usize> HashPages<E, P> {
    /// A table that holds `max` entries without growing: `2 * max` rounded up to a power
    /// of two, at least one page.
    pub fn with_max(max: usize) -> HashPages<E, P> {
        let cap = max.saturating_mul(2).next_power_of_two().max(P);
        HashPages {
            slots: Pages::with_capacity(cap),
            mask: cap - 1,
            len: 0,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of buckets.
    pub fn buckets(&self) -> usize {
        if self.slots.capacity() == 0 {
            0
        } else {
            self.mask + 1
        }
    }

    /// Pages allocated in this version.
    pub fn pages(&self) -> usize {
        self.slots.pages()
    }

    /// Where `key` is, or the empty bucket that ends its probe run.
    #[inline]
    fn probe(&self, key: &E::Key) -> (usize, Option<&E>) {
        let mut i = E::hash(key) as usize & self.mask;
        // At most half the buckets are full, so an empty one comes first; the bound only
        // keeps a broken invariant from looping.
        for _ in 0..=self.mask {
            match self.slots.get(i) {
                Some(e) => match e.key() {
                    Some(k) if k == *key => return (i, Some(e)),
                    Some(_) => i = (i + 1) & self.mask,
                    None => return (i, None),
                },
                None => return (i, None),
            }
        }
        (i, None)
    }

    /// The entry for `key`. A few probes, no allocation.
    #[inline]
    pub fn get(&self, key: &E::Key) -> Option<&E> {
        if self.mask == 0 {
            return None;
        }
        self.probe(key).1
    }

    /// Stores `entry` under its key, replacing an entry with the same key. Grows (one
    /// rebuild, amortised) if the table would become more than half full. Returns the
    /// replaced entry.
    pub fn insert(&mut self, entry: E) -> Option<E> {
        let key = entry.key()?;
        if self.mask != 0 {
            if let (i, Some(_)) = self.probe(&key) {
                return self
                    .slots
                    .get_mut(i)
                    .map(|slot| std::mem::replace(slot, entry));
            }
        }
        if self.mask == 0 || (self.len + 1) * 2 > self.mask + 1 {
            self.grow();
        }
        let (i, _) = self.probe(&key);
        *self.slots.get_mut(i)? = entry;
        self.len += 1;
        None
    }

    /// Removes and returns the entry for `key`, shifting later entries of its probe run
    /// back so no tombstone is left.
    pub fn remove(&mut self, key: &E::Key) -> Option<E> {
        if self.mask == 0 {
            return None;
        }
        let (mut hole, found) = self.probe(key);
        found?;
        let removed = std::mem::take(self.slots.get_mut(hole)?);
        self.len -= 1;
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let Some(k) = self.slots.get(j).and_then(HashEntry::key) else {
                break;
            };
            let home = E::hash(&k) as usize & self.mask;
            // The entry at j may move to the hole if its home is not cyclically in
            // (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                let moved = std::mem::take(self.slots.get_mut(j)?);
                *self.slots.get_mut(hole)? = moved;
                hole = j;
            }
        }
        Some(removed)
    }

    fn grow(&mut self) {
        let cap = ((self.mask + 1) * 2).max(P);
        let mut next = HashPages {
            slots: Pages::with_capacity(cap),
            mask: cap - 1,
            len: 0,
        };
        for i in 0..=self.mask {
            if let Some(e) = self.slots.get(i).filter(|e| e.key().is_some()) {
                next.insert(e.clone());
            }
        }
        *self = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Clone, Default, Debug, PartialEq)]
    struct Kv(Option<(u32, u32)>);

    impl HashEntry for Kv {
        type Key = u32;
        fn key(&self) -> Option<u32> {
            self.0.map(|(k, _)| k)
        }
        fn hash(key: &u32) -> u64 {
            mix64(*key as u64)
        }
    }

    /// A hash that puts every key in the last few buckets, so probe runs wrap around the
    /// end of the table and deletion has to shift across it.
    #[derive(Clone, Default, Debug, PartialEq)]
    struct Clumped(Option<(u32, u32)>);

    impl HashEntry for Clumped {
        type Key = u32;
        fn key(&self) -> Option<u32> {
            self.0.map(|(k, _)| k)
        }
        fn hash(key: &u32) -> u64 {
            u64::MAX - (*key as u64 % 5)
        }
    }

    #[test]
    fn pages_copy_on_write_leaves_published_versions_alone() {
        let mut p: Pages<u32> = Pages::with_capacity(10_000);
        assert_eq!(p.capacity(), PAGE * FANOUT * FANOUT);
        assert_eq!(p.pages(), 0);
        assert_eq!(p.get(5), None);
        *p.get_mut(5).unwrap() = 7;
        let v1 = p.clone();
        *p.get_mut(5).unwrap() = 8;
        *p.get_mut(9000).unwrap() = 9;
        assert_eq!(v1.get(5), Some(&7));
        assert_eq!(v1.get(9000), None);
        assert_eq!(p.get(5), Some(&8));
        assert_eq!(p.get(6), Some(&0));
        assert_eq!(p.get(9000), Some(&9));
        assert_eq!(p.pages(), 2);
        assert_eq!(v1.pages(), 1);
        assert!(p.get_mut(p.capacity()).is_none());
        assert_eq!(p.get(usize::MAX), None);
        // The untouched page is shared, not copied.
        let v2 = p.clone();
        *p.get_mut(9001).unwrap() = 1;
        assert!(std::ptr::eq(v2.get(5).unwrap(), p.get(5).unwrap()));
        assert!(!std::ptr::eq(v2.get(9000).unwrap(), p.get(9000).unwrap()));
    }

    #[test]
    fn default_table_grows_on_first_insert() {
        let mut h: HashPages<Kv> = HashPages::default();
        assert_eq!(h.get(&1), None);
        assert_eq!(h.remove(&1), None);
        for k in 0..1000 {
            assert_eq!(h.insert(Kv(Some((k, k + 1)))), None);
        }
        assert_eq!(h.len(), 1000);
        assert!(h.buckets() >= 2000);
        for k in 0..1000 {
            assert_eq!(h.get(&k), Some(&Kv(Some((k, k + 1)))));
        }
    }

    fn check_model<E: HashEntry<Key = u32> + std::fmt::Debug + PartialEq>(
        ops: &[(bool, u32)],
        make: impl Fn(u32, u32) -> E,
        max: usize,
    ) -> Result<(), TestCaseError> {
        let mut h: HashPages<E> = HashPages::with_max(max);
        let mut model: HashMap<u32, u32> = HashMap::new();
        let mut versions: Vec<(HashPages<E>, HashMap<u32, u32>)> = Vec::new();
        for (n, &(add, k)) in ops.iter().enumerate() {
            if add {
                let old = h.insert(make(k, n as u32));
                prop_assert_eq!(old.is_some(), model.insert(k, n as u32).is_some());
            } else {
                let old = h.remove(&k);
                prop_assert_eq!(old.is_some(), model.remove(&k).is_some());
            }
            prop_assert_eq!(h.len(), model.len());
            if n % 7 == 0 {
                versions.push((h.clone(), model.clone()));
            }
        }
        versions.push((h, model));
        for (v, m) in &versions {
            for k in 0..64u32 {
                let want = m.get(&k).map(|&n| make(k, n));
                prop_assert_eq!(v.get(&k), want.as_ref());
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn hashpages_agree_with_hashmap(ops in proptest::collection::vec((any::<bool>(), 0u32..64), 0..400)) {
            check_model(&ops, |k, n| Kv(Some((k, n))), 64)?;
        }

        #[test]
        fn hashpages_with_wrapping_probe_runs(ops in proptest::collection::vec((any::<bool>(), 0u32..40), 0..300)) {
            check_model(&ops, |k, n| Clumped(Some((k, n))), 20)?;
        }
    }
}
