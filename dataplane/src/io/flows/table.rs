//! Which flows exist and between which addresses: written by one control thread, read
//! every burst by a worker, without locks or allocation after construction.
//!
//! Each flow has a slot behind a sequence lock (the generation is odd while the writer
//! changes it; a reader re-checks it after reading and skips the flow for this turn if it
//! moved). Active flow ids also sit in a dense list so that a reader visits only those:
//! appended on activation, swap-removed on clear. A reader racing a swap-remove may skip
//! or repeat one flow for one turn; the slot's own generation keeps it from using a
//! cleared flow.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// A flow's addresses as the generator uses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowSpec {
    /// Source of the generated packets (the emulated client).
    pub src: SocketAddr,
    /// Destination; same family as `src`.
    pub dst: SocketAddr,
    /// From when the flow sends (`shared::clock::now_ns`): the generator makes nothing
    /// for it before (a gateway's stream waits until the client has surely installed
    /// the child SA it just answered); 0 = at once.
    pub since_ns: u64,
}

const META_ACTIVE: u64 = 1;
const META_V6: u64 = 2;
const META_SRC_PORT_SHIFT: u32 = 16;
const META_DST_PORT_SHIFT: u32 = 32;
/// `FlowWriter::pos` of an inactive flow.
const NO_POS: u32 = u32::MAX;

/// One flow's record behind a sequence lock. A cache line each, so the writer changing
/// one slot does not disturb readers of its neighbours.
#[derive(Default)]
#[repr(align(64))]
struct Slot {
    /// Odd while the writer changes the slot.
    gen: AtomicU64,
    /// `META_ACTIVE | META_V6 | src port << 16 | dst port << 32`.
    meta: AtomicU64,
    /// Addresses as two big-endian halves of 128 bits (IPv4: the address, then 0).
    src: [AtomicU64; 2],
    dst: [AtomicU64; 2],
    since_ns: AtomicU64,
}

/// What a reader found in a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SlotRead {
    Active(FlowSpec),
    Inactive,
    /// Being written: skip the flow this turn.
    Busy,
}

fn ip_words(ip: IpAddr) -> [u64; 2] {
    match ip {
        IpAddr::V4(a) => [u64::from(u32::from(a)), 0],
        IpAddr::V6(a) => {
            let v = u128::from(a);
            [(v >> 64) as u64, v as u64]
        }
    }
}

fn socket_addr(v6: bool, w: [u64; 2], port: u64) -> SocketAddr {
    let ip = if v6 {
        IpAddr::V6(Ipv6Addr::from((u128::from(w[0]) << 64) | u128::from(w[1])))
    } else {
        IpAddr::V4(Ipv4Addr::from(w[0] as u32))
    };
    SocketAddr::new(ip, port as u16)
}

impl Slot {
    /// The single writer's update: generation odd, fields, generation even again.
    fn write(&self, meta: u64, src: [u64; 2], dst: [u64; 2], since_ns: u64) {
        let g = self.gen.load(Ordering::Relaxed);
        self.gen.store(g.wrapping_add(1), Ordering::Relaxed);
        // Orders the odd generation before the field stores: a reader whose loads see any
        // of the new fields then sees a changed generation on its re-check.
        fence(Ordering::Release);
        self.meta.store(meta, Ordering::Relaxed);
        self.src[0].store(src[0], Ordering::Relaxed);
        self.src[1].store(src[1], Ordering::Relaxed);
        self.dst[0].store(dst[0], Ordering::Relaxed);
        self.dst[1].store(dst[1], Ordering::Relaxed);
        self.since_ns.store(since_ns, Ordering::Relaxed);
        self.gen.store(g.wrapping_add(2), Ordering::Release);
    }

    #[inline]
    fn read(&self) -> SlotRead {
        let g1 = self.gen.load(Ordering::Acquire);
        if g1 & 1 != 0 {
            return SlotRead::Busy;
        }
        let meta = self.meta.load(Ordering::Relaxed);
        let src = self.src.each_ref().map(|a| a.load(Ordering::Relaxed));
        let dst = self.dst.each_ref().map(|a| a.load(Ordering::Relaxed));
        let since_ns = self.since_ns.load(Ordering::Relaxed);
        // Keeps the field loads before the re-check (pairs with the writer's fence).
        fence(Ordering::Acquire);
        if self.gen.load(Ordering::Relaxed) != g1 {
            return SlotRead::Busy;
        }
        if meta & META_ACTIVE == 0 {
            return SlotRead::Inactive;
        }
        let v6 = meta & META_V6 != 0;
        SlotRead::Active(FlowSpec {
            src: socket_addr(v6, src, (meta >> META_SRC_PORT_SHIFT) & 0xffff),
            dst: socket_addr(v6, dst, (meta >> META_DST_PORT_SHIFT) & 0xffff),
            since_ns,
        })
    }
}

/// Which flows exist and their addresses; see the module documentation. Readers on any
/// thread; the one writer is the [`FlowWriter`] returned with it.
///
/// IPv6 flow labels and scope ids are not kept.
pub struct FlowTable {
    slots: Box<[Slot]>,
    /// Active flow ids in `order[..len]`, in no particular order.
    order: Box<[AtomicU32]>,
    len: AtomicU32,
}

/// The one writer of a [`FlowTable`].
pub struct FlowWriter {
    table: Arc<FlowTable>,
    /// Each flow's index in `order`, or `NO_POS`.
    pos: Box<[u32]>,
    len: u32,
}

impl FlowTable {
    /// A table for flow ids `0..capacity`, all inactive.
    pub fn new(capacity: u32) -> (FlowWriter, Arc<FlowTable>) {
        let n = capacity as usize;
        let table = Arc::new(FlowTable {
            slots: (0..n).map(|_| Slot::default()).collect(),
            order: (0..n).map(|_| AtomicU32::new(0)).collect(),
            len: AtomicU32::new(0),
        });
        let writer = FlowWriter {
            table: Arc::clone(&table),
            pos: vec![NO_POS; n].into_boxed_slice(),
            len: 0,
        };
        (writer, table)
    }

    /// Number of flow ids.
    pub fn capacity(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Number of active flows, as last published.
    #[inline]
    pub fn active(&self) -> u32 {
        self.len
            .load(Ordering::Acquire)
            .min(self.order.len() as u32)
    }

    /// The `i`-th entry of the dense list of active flows (`i < active()` as read before).
    #[inline]
    pub(super) fn active_at(&self, i: u32) -> Option<u32> {
        Some(self.order.get(i as usize)?.load(Ordering::Relaxed))
    }

    #[inline]
    pub(super) fn read(&self, flow: u32) -> SlotRead {
        match self.slots.get(flow as usize) {
            Some(slot) => slot.read(),
            None => SlotRead::Inactive,
        }
    }

    /// The flow's addresses if it is active. None also while the writer is changing that
    /// very flow (never on the writer's own thread).
    pub fn get(&self, flow: u32) -> Option<FlowSpec> {
        match self.read(flow) {
            SlotRead::Active(spec) => Some(spec),
            SlotRead::Inactive | SlotRead::Busy => None,
        }
    }

    /// Calls `f` for each active flow, as the generator visits them: a flow being changed
    /// is skipped, and one racing a `clear` may be skipped or seen twice.
    pub fn visit(&self, mut f: impl FnMut(u32, FlowSpec)) {
        for i in 0..self.active() {
            if let Some(flow) = self.active_at(i) {
                if let SlotRead::Active(spec) = self.read(flow) {
                    f(flow, spec);
                }
            }
        }
    }
}

impl FlowWriter {
    /// Activates `flow` or changes its addresses. False (nothing changed) if `flow` is
    /// not below the capacity or `src` and `dst` are of different families.
    pub fn set(&mut self, flow: u32, src: SocketAddr, dst: SocketAddr, since_ns: u64) -> bool {
        let Some(slot) = self.table.slots.get(flow as usize) else {
            return false;
        };
        if src.is_ipv4() != dst.is_ipv4() {
            return false;
        }
        let mut meta = META_ACTIVE
            | u64::from(src.port()) << META_SRC_PORT_SHIFT
            | u64::from(dst.port()) << META_DST_PORT_SHIFT;
        if src.is_ipv6() {
            meta |= META_V6;
        }
        slot.write(meta, ip_words(src.ip()), ip_words(dst.ip()), since_ns);
        let pos = &mut self.pos[flow as usize];
        if *pos == NO_POS {
            // The slot is complete before the longer list that names it is published.
            self.table.order[self.len as usize].store(flow, Ordering::Relaxed);
            *pos = self.len;
            self.len += 1;
            self.table.len.store(self.len, Ordering::Release);
        }
        true
    }

    /// Deactivates `flow` (nothing if it is not active). Its slot says so before the list
    /// drops it, so a reader that still finds it in the list skips it.
    pub fn clear(&mut self, flow: u32) {
        let Some(&pos) = self.pos.get(flow as usize) else {
            return;
        };
        if pos == NO_POS {
            return;
        }
        self.table.slots[flow as usize].write(0, [0; 2], [0; 2], 0);
        let last_pos = self.len - 1;
        let last = self.table.order[last_pos as usize].load(Ordering::Relaxed);
        self.table.order[pos as usize].store(last, Ordering::Relaxed);
        self.pos[last as usize] = pos;
        self.pos[flow as usize] = NO_POS;
        self.len = last_pos;
        self.table.len.store(self.len, Ordering::Release);
    }

    /// Number of active flows.
    pub fn active(&self) -> u32 {
        self.len
    }

    /// The table this writer changes.
    pub fn table(&self) -> &Arc<FlowTable> {
        &self.table
    }
}
