//! The tunnel ids of one policy bucket, in ascending order and persistent: tables are
//! copied on write at every publication, so adding one id to a bucket that 100,000
//! tunnels share (a client's tunnels to one gateway subnet) must not copy the other
//! 99,999. The first id is inline (nearly always the only one); several live in shared
//! chunks of up to `2 * CHUNK` ids, and a change copies one chunk and the directory.

use super::TunnelId;
use std::sync::Arc;

/// Ids per chunk after a split.
const CHUNK: usize = 256;

#[derive(Clone, Debug, Default)]
pub(super) struct Ids {
    /// The lowest id.
    pub(super) first: TunnelId,
    /// Every id (the first too) when there are several; chunks are never empty.
    chunks: Option<Arc<[Arc<[TunnelId]>]>>,
}

impl Ids {
    pub(super) fn one(id: TunnelId) -> Ids {
        Ids {
            first: id,
            chunks: None,
        }
    }

    /// Whether there is more than one id.
    pub(super) fn several(&self) -> bool {
        self.chunks.is_some()
    }

    /// The ids, lowest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = TunnelId> + '_ {
        let single = self.chunks.is_none().then_some(self.first);
        single.into_iter().chain(
            self.chunks
                .iter()
                .flat_map(|d| d.iter().flat_map(|c| c.iter().copied())),
        )
    }

    fn from_dir(dir: Vec<Arc<[TunnelId]>>) -> Option<Ids> {
        let total: usize = dir.iter().map(|c| c.len()).sum();
        let first = *dir.first()?.first()?;
        Some(if total == 1 {
            Ids::one(first)
        } else {
            Ids {
                first,
                chunks: Some(dir.into()),
            }
        })
    }

    /// With `id` added; `None` if it is there already.
    pub(super) fn with(&self, id: TunnelId) -> Option<Ids> {
        let Some(dir) = &self.chunks else {
            if id == self.first {
                return None;
            }
            let pair: Arc<[TunnelId]> = Arc::from([self.first.min(id), self.first.max(id)]);
            return Ids::from_dir(vec![pair]);
        };
        // The chunk that holds or would hold `id`: the first whose last id is not below
        // it, else the last one.
        let ci = dir
            .partition_point(|c| c.last().is_some_and(|&l| l < id))
            .min(dir.len().saturating_sub(1));
        let c = dir.get(ci)?;
        let at = c.binary_search(&id).err()?;
        let mut grown = Vec::with_capacity(c.len() + 1);
        grown.extend_from_slice(&c[..at]);
        grown.push(id);
        grown.extend_from_slice(&c[at..]);
        let mut out: Vec<Arc<[TunnelId]>> = Vec::with_capacity(dir.len() + 1);
        out.extend_from_slice(&dir[..ci]);
        if grown.len() > 2 * CHUNK {
            let upper = grown.split_off(grown.len() / 2);
            out.push(grown.into());
            out.push(upper.into());
        } else {
            out.push(grown.into());
        }
        out.extend_from_slice(&dir[ci + 1..]);
        Ids::from_dir(out)
    }

    /// With `id` removed: `None` if it is not there, `Some(None)` if none is left.
    pub(super) fn without(&self, id: TunnelId) -> Option<Option<Ids>> {
        let Some(dir) = &self.chunks else {
            return (id == self.first).then_some(None);
        };
        let ci = dir.partition_point(|c| c.last().is_some_and(|&l| l < id));
        let c = dir.get(ci)?;
        let at = c.binary_search(&id).ok()?;
        let mut out: Vec<Arc<[TunnelId]>> = Vec::with_capacity(dir.len());
        out.extend_from_slice(&dir[..ci]);
        if c.len() > 1 {
            let mut shrunk = c.to_vec();
            shrunk.remove(at);
            out.push(shrunk.into());
        }
        out.extend_from_slice(&dir[ci + 1..]);
        Some(Ids::from_dir(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn ids_stay_sorted_and_shared_through_adds_and_removes() {
        let mut ids = Ids::one(5000);
        let mut model: BTreeSet<TunnelId> = [5000].into();
        // A spread of adds (more than a few chunks), then removes.
        let order = |i: u32| (i.wrapping_mul(2_654_435_761)) % 10_000;
        for i in 0..3000 {
            let id = order(i);
            match ids.with(id) {
                Some(n) => {
                    assert!(model.insert(id));
                    ids = n;
                }
                None => assert!(model.contains(&id)),
            }
        }
        assert!(ids.iter().eq(model.iter().copied()));
        assert_eq!(ids.first, *model.first().unwrap());
        // The chunks stay bounded: a change copies at most 2 * CHUNK ids.
        let dir = ids.chunks.as_ref().unwrap();
        assert!(dir.iter().all(|c| !c.is_empty() && c.len() <= 2 * CHUNK));
        assert!(dir.len() >= model.len() / (2 * CHUNK));
        // An add leaves every chunk but one shared with the old version.
        let before = ids.clone();
        let fresh = (0..).find(|i| !model.contains(i)).unwrap();
        let after = ids.with(fresh).unwrap();
        let shared = before
            .chunks
            .as_ref()
            .unwrap()
            .iter()
            .filter(|c| {
                after
                    .chunks
                    .as_ref()
                    .unwrap()
                    .iter()
                    .any(|d| Arc::ptr_eq(c, d))
            })
            .count();
        assert!(shared + 1 >= before.chunks.as_ref().unwrap().len());

        for i in 0..3000 {
            let id = order(i * 7 + 3);
            match ids.without(id) {
                Some(Some(n)) => {
                    assert!(model.remove(&id));
                    ids = n;
                }
                Some(None) => {
                    assert!(model.remove(&id));
                    assert!(model.is_empty());
                    return;
                }
                None => assert!(!model.contains(&id)),
            }
            assert_eq!(ids.several(), model.len() > 1);
        }
        assert!(ids.iter().eq(model.iter().copied()));
        // Down to one, then none.
        let all: Vec<TunnelId> = model.iter().copied().collect();
        for id in &all[..all.len() - 1] {
            ids = ids.without(*id).unwrap().unwrap();
        }
        assert!(!ids.several());
        assert_eq!(ids.iter().collect::<Vec<_>>(), vec![*all.last().unwrap()]);
        assert!(ids.without(*all.last().unwrap()).unwrap().is_none());
        assert!(Ids::one(3).without(4).is_none());
        assert!(Ids::one(3).with(3).is_none());
    }
}
