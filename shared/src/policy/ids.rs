//! The tunnel ids of one policy bucket, in ascending order and persistent: tables are
//! copied on write at every publication, so adding one id to a bucket that 100,000
//! tunnels share (a client's tunnels to one gateway subnet) must not copy the other
//! 99,999. The first id is inline (nearly always the only one); several live in shared
//! chunks of up to `2 * CHUNK` ids, grouped in directories of up to `2 * DIR` chunks
//! under one top list. A change copies one chunk, one directory and the top: with
//! 100,000 ids about 60 pointers, where one flat directory of chunks was 300-400 (each
//! copy raises a reference count in cold memory, and dropping the old version lowers
//! it again).

use super::TunnelId;
use std::sync::Arc;

/// Ids per chunk after a split.
const CHUNK: usize = 256;
/// Chunks per directory after a split.
const DIR: usize = 16;

type Chunk = Arc<[TunnelId]>;
type Dir = Arc<[Chunk]>;

#[derive(Clone, Debug, Default)]
pub(super) struct Ids {
    /// The lowest id.
    pub(super) first: TunnelId,
    /// Every id (the first too) when there are several; directories and chunks are
    /// never empty.
    dirs: Option<Arc<[Dir]>>,
}

/// `v` with its element `i` replaced by `with`.
fn replaced<T: Clone>(v: &[T], i: usize, with: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out = Vec::with_capacity(v.len() + 1);
    out.extend_from_slice(&v[..i]);
    out.extend(with);
    out.extend_from_slice(&v[i + 1..]);
    out
}

/// `v` as one part, or as two halves once it is longer than `2 * max`.
fn split<T>(mut v: Vec<T>, max: usize) -> Vec<Vec<T>> {
    if v.len() > 2 * max {
        let upper = v.split_off(v.len() / 2);
        vec![v, upper]
    } else if v.is_empty() {
        Vec::new()
    } else {
        vec![v]
    }
}

fn last_of(d: &Dir) -> Option<TunnelId> {
    d.last()?.last().copied()
}

impl Ids {
    pub(super) fn one(id: TunnelId) -> Ids {
        Ids {
            first: id,
            dirs: None,
        }
    }

    /// Whether there is more than one id.
    pub(super) fn several(&self) -> bool {
        self.dirs.is_some()
    }

    /// The ids, lowest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = TunnelId> + '_ {
        let single = self.dirs.is_none().then_some(self.first);
        single.into_iter().chain(self.dirs.iter().flat_map(|t| {
            t.iter()
                .flat_map(|d| d.iter().flat_map(|c| c.iter().copied()))
        }))
    }

    /// From a top list: `None` if it holds no id. Reads only the first chunk.
    fn from_top(top: Vec<Dir>) -> Option<Ids> {
        let first_chunk = top.first()?.first()?;
        let first = *first_chunk.first()?;
        Some(
            if top.len() == 1 && top[0].len() == 1 && first_chunk.len() == 1 {
                Ids::one(first)
            } else {
                Ids {
                    first,
                    dirs: Some(top.into()),
                }
            },
        )
    }

    /// Where `id` is or would go: (directory, chunk) indexes, by binary search on the
    /// last id of each (a directory or chunk whose last id is below `id` holds no
    /// place for it; past the end, the last one).
    fn place(top: &[Dir], id: TunnelId) -> Option<(usize, usize)> {
        let di = top
            .partition_point(|d| last_of(d).is_some_and(|l| l < id))
            .min(top.len().checked_sub(1)?);
        let dir = &top[di];
        let ci = dir
            .partition_point(|c| c.last().is_some_and(|&l| l < id))
            .min(dir.len().checked_sub(1)?);
        Some((di, ci))
    }

    /// With `top[di][ci]` replaced by `chunk` (split if too long, dropped if empty), and
    /// the directory likewise.
    fn rebuilt(top: &[Dir], di: usize, ci: usize, chunk: Vec<TunnelId>) -> Option<Ids> {
        let chunks = split(chunk, CHUNK).into_iter().map(Chunk::from);
        let dir = replaced(&top[di], ci, chunks);
        let dirs = split(dir, DIR).into_iter().map(Dir::from);
        Ids::from_top(replaced(top, di, dirs))
    }

    /// With `id` added; `None` if it is there already.
    pub(super) fn with(&self, id: TunnelId) -> Option<Ids> {
        let Some(top) = &self.dirs else {
            if id == self.first {
                return None;
            }
            let pair: Chunk = Arc::from([self.first.min(id), self.first.max(id)]);
            return Ids::from_top(vec![Dir::from([pair])]);
        };
        let (di, ci) = Ids::place(top, id)?;
        let c = &top[di][ci];
        let at = c.binary_search(&id).err()?;
        let mut grown = Vec::with_capacity(c.len() + 1);
        grown.extend_from_slice(&c[..at]);
        grown.push(id);
        grown.extend_from_slice(&c[at..]);
        Ids::rebuilt(top, di, ci, grown)
    }

    /// With `id` removed: `None` if it is not there, `Some(None)` if none is left.
    pub(super) fn without(&self, id: TunnelId) -> Option<Option<Ids>> {
        let Some(top) = &self.dirs else {
            return (id == self.first).then_some(None);
        };
        let (di, ci) = Ids::place(top, id)?;
        let c = &top[di][ci];
        let at = c.binary_search(&id).ok()?;
        let mut shrunk = c.to_vec();
        shrunk.remove(at);
        Some(Ids::rebuilt(top, di, ci, shrunk))
    }

    /// (directories, chunks, longest chunk, longest directory), for the tests.
    #[cfg(test)]
    fn shape(&self) -> (usize, usize, usize, usize) {
        let top = self.dirs.as_deref().unwrap_or_default();
        let chunks = top.iter().map(|d| d.len()).sum();
        let longest = top.iter().flat_map(|d| d.iter().map(|c| c.len())).max();
        let widest = top.iter().map(|d| d.len()).max();
        (top.len(), chunks, longest.unwrap_or(0), widest.unwrap_or(0))
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
        let order = |i: u32| (i.wrapping_mul(2_654_435_761)) % 100_000;
        for i in 0..30_000 {
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
        // The chunks and directories stay bounded: a change copies at most 2 * CHUNK
        // ids, 2 * DIR chunk pointers and the top.
        let (dirs, chunks, longest, widest) = ids.shape();
        assert!(longest <= 2 * CHUNK && widest <= 2 * DIR);
        assert!(chunks >= model.len() / (2 * CHUNK) && dirs >= chunks / (2 * DIR));
        assert!(dirs > 1, "enough ids for several directories");
        // An add leaves every chunk but one and every directory but one shared with
        // the old version.
        let before = ids.clone();
        let fresh = (0..).find(|i| !model.contains(i)).unwrap();
        let after = ids.with(fresh).unwrap();
        let (b, a) = (
            before.dirs.as_deref().unwrap(),
            after.dirs.as_deref().unwrap(),
        );
        let shared_dirs = b
            .iter()
            .filter(|d| a.iter().any(|e| Arc::ptr_eq(d, e)))
            .count();
        assert!(shared_dirs + 1 >= b.len());
        let chunks_of =
            |t: &[Dir]| -> Vec<Chunk> { t.iter().flat_map(|d| d.iter().cloned()).collect() };
        let (bc, ac) = (chunks_of(b), chunks_of(a));
        let shared = bc
            .iter()
            .filter(|c| ac.iter().any(|d| Arc::ptr_eq(c, d)))
            .count();
        assert!(shared + 1 >= bc.len());

        for i in 0..30_000 {
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
