//! Poll-mode workers: receive a burst, classify, decrypt or encrypt, rewrite the outer
//! header from the SA's current path record, transmit. Here: the worker's settings and
//! state, its poll loop and the staging of bursts for the ports; the per-packet paths
//! are in `decap` (cipher side to clear side) and `encap` (clear side to cipher side).
//!
//! A worker owns its ports, private per-SA state (outbound sequence numbers, inbound
//! replay windows) found by the slot the control plane gave each SA, and its counters.
//! That state grows with what the worker owns and has seen, not with the table's
//! capacity: an arena of inbound states (see `inbound`), and outbound and path states
//! grown to the highest slot or path id the worker has used. Growth happens once per new
//! SA or new high slot (amortized like a `Vec` push), never per packet in steady state.
//! Per burst it passes one quiescent point (`TableReader::begin_burst`) and gets the
//! current snapshot; per packet it does table lookups and crypto only: no allocation,
//! no lock, no log, no syscall beyond the ports' burst calls. Packets for an SA owned by
//! another worker are handed to that worker so sequence numbers and replay windows need
//! no atomics.

use crate::buf::{PacketBuf, LARGE_FRAME};
use crate::channel::Channel;
pub use crate::fabric::{Fabric, FabricConfig, WorkerEvent};
use crate::io::{BurstIo, Layer};
use crate::ip;
pub use idle::IdleWait;
use shared::clock::now_ns;
use shared::counters::{Counter, LocalCounters};
use shared::path::{Encap, OuterTemplate, PathId, PathSpec, L2};
use shared::table::{Snapshot, TableReader};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

mod decap;
mod encap;
mod housekeeping;
mod idle;
mod inbound;

use decap::{stage_in, InVerdict};
use encap::stage_out;
use housekeeping::{keepalives, recycle_inbound, Housekeeping, HOUSEKEEPING_NS};
use idle::{Sleep, SPIN_BEFORE_SLEEP};
use inbound::InboundStates;

/// Largest burst a worker processes at once.
pub const MAX_BURST: usize = 256;

/// Handoff direction, carried in `Meta::tag` while a packet sits in a handoff channel.
const TAG_INBOUND: u32 = 1;
const TAG_OUTBOUND: u32 = 2;

/// What the worker does between the clear and the cipher side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardMode {
    /// ESP tunnel mode (the product).
    Esp,
    /// Forward inner packets unencrypted inside UDP on the same paths: the baseline the
    /// forwarding benchmark compares ESP against (same lookups, same I/O).
    Plain,
}

/// What an idle worker does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idle {
    /// Spin: lowest latency, one core at 100% (a dedicated gateway core).
    Busy,
    /// Spin for a while, then sleep until a packet arrives on a port, another worker or
    /// the control plane queues something for this one, or a keepalive is due (ports
    /// that cannot be waited on, like `mem`: short naps between polls instead).
    Adaptive,
}

/// Static settings of one worker.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub id: u16,
    /// Core to pin to (`core_affinity`), if any.
    pub core: Option<usize>,
    /// Packets per burst, 1..=MAX_BURST.
    pub burst: usize,
    pub mode: ForwardMode,
    pub idle: Idle,
    /// Must match the table's `TableConfig` (slot and path id ranges).
    pub max_inbound: usize,
    pub max_outbound: usize,
    pub max_paths: usize,
    /// Largest replay window any SA may ask for (bitmap storage of each inbound SA the
    /// worker owns, allocated when its first packet arrives).
    pub replay_capacity: u32,
    /// The NAT-T port on Ethernet- and IP-layer cipher ports (RFC 3948: 4500).
    pub natt_port: u16,
    /// Ethernet header for packets sent on an Ethernet-layer clear port.
    pub clear_l2: Option<L2>,
}

impl WorkerConfig {
    /// Defaults for worker `id` sized by a table configuration.
    pub fn new(id: u16, table: &shared::table::TableConfig) -> WorkerConfig {
        WorkerConfig {
            id,
            core: None,
            burst: 64,
            mode: ForwardMode::Esp,
            idle: Idle::Adaptive,
            max_inbound: table.max_inbound,
            max_outbound: table.max_outbound,
            max_paths: table.max_paths,
            replay_capacity: crate::replay::DEFAULT_WINDOW,
            natt_port: 4500,
            clear_l2: None,
        }
    }
}

#[derive(Clone, Copy, Default)]
struct OutState {
    install_id: u64,
    seq: u64,
}

#[derive(Clone, Copy, Default)]
struct PathState {
    /// Generation of the last packet this worker staged on the path.
    generation: u64,
    last_tx_ns: u64,
}

/// Packets staged for one port, sent in one `tx_burst`.
struct Stage {
    bufs: Vec<PacketBuf>,
    n: usize,
    /// (index in `bufs`, path) of packets that are the first on a new path generation.
    firsts: Vec<(usize, PathId, u64)>,
}

impl Stage {
    fn new(cap: usize) -> Stage {
        Stage {
            bufs: PacketBuf::alloc(cap),
            n: 0,
            firsts: Vec::with_capacity(cap),
        }
    }

    #[inline]
    fn is_full(&self) -> bool {
        self.n == self.bufs.len()
    }

    /// Moves `b` into the stage (leaving an empty buffer in `b`). The caller flushes first
    /// when full.
    #[inline]
    fn take(&mut self, b: &mut PacketBuf) -> usize {
        let i = self.n;
        std::mem::swap(&mut self.bufs[i], b);
        b.reset();
        self.n += 1;
        i
    }
}

/// One worker's private state.
struct Core {
    cfg: WorkerConfig,
    workers: usize,
    inb: InboundStates,
    /// By outbound slot, grown to the highest slot this worker has sent on.
    outb: Vec<OutState>,
    /// By path id, grown to the highest path id this worker has sent on or scanned.
    paths: Vec<PathState>,
    cnt: LocalCounters,
    cipher_layer: Layer,
    clear_layer: Layer,
    /// Something was punted in this burst: notify the control plane once at its end.
    punted: bool,
    /// Workers this burst handed packets to (notified once at its end), and whether any.
    handed_to: Vec<bool>,
    handed: bool,
}

impl Core {
    fn new(cfg: WorkerConfig, workers: usize, cipher_layer: Layer, clear_layer: Layer) -> Core {
        Core {
            inb: InboundStates::new(cfg.max_inbound, cfg.replay_capacity),
            outb: Vec::new(),
            paths: Vec::new(),
            cnt: LocalCounters::default(),
            workers,
            cfg,
            cipher_layer,
            clear_layer,
            punted: false,
            handed_to: vec![false; workers],
            handed: false,
        }
    }

    fn hand_off(
        &mut self,
        owner: u16,
        tag: u32,
        buf: &mut PacketBuf,
        fabric: &Fabric,
    ) -> InVerdict {
        let Some(ch) = fabric.handoff.get(owner as usize) else {
            return InVerdict::Drop(Counter::DropHandoffFull);
        };
        buf.meta.tag = tag;
        if ch.send_swap(buf) {
            self.cnt.inc(Counter::HandoffOut);
            if let Some(f) = self.handed_to.get_mut(owner as usize) {
                *f = true;
                self.handed = true;
            }
            InVerdict::Consumed
        } else {
            InVerdict::Drop(Counter::DropHandoffFull)
        }
    }
}

/// The entry `i` of a per-slot (or per-path) state vector, growing the vector to `i + 1`
/// entries if it is shorter and `i < max`: at most once per new highest slot, amortized.
#[inline]
fn grow_to<T: Default + Clone>(v: &mut Vec<T>, i: usize, max: usize) -> Option<&mut T> {
    if i >= v.len() {
        if i >= max {
            return None;
        }
        v.resize(i + 1, T::default());
    }
    v.get_mut(i)
}

/// Addresses a datagram-port packet (the port writes the headers) to `spec`.
#[inline]
fn address_datagram(buf: &mut PacketBuf, spec: &PathSpec) -> Result<(), Counter> {
    if spec.encap != Encap::Udp {
        // Plain ESP needs a backend that writes IP headers (configuration refuses it).
        return Err(Counter::DropNoSa);
    }
    buf.meta.src = spec.local;
    buf.meta.dst = spec.remote;
    Ok(())
}

/// Writes the outer header of a published path in front of an ESP (or plain) packet,
/// from the path's prebuilt template (`ip::push_template`).
#[inline]
fn frame_path(
    layer: Layer,
    buf: &mut PacketBuf,
    spec: &PathSpec,
    outer: &OuterTemplate,
) -> Result<(), Counter> {
    match layer {
        Layer::Datagram => address_datagram(buf, spec),
        Layer::Ip => ip::push_template(buf, outer, false).map_err(|e| e.counter()),
        Layer::Ethernet => ip::push_template(buf, outer, true).map_err(|e| e.counter()),
    }
}

/// Writes the outer header for `spec`, built field by field (control-plane packets, whose
/// addresses are their own rather than a path's).
#[inline]
fn frame_for(layer: Layer, buf: &mut PacketBuf, spec: &PathSpec) -> Result<(), Counter> {
    match layer {
        Layer::Datagram => address_datagram(buf, spec),
        Layer::Ip => ip::push_outer(buf, spec, false).map_err(|e| e.counter()),
        Layer::Ethernet => {
            if spec.l2.is_none() {
                return Err(Counter::DropNoSa);
            }
            ip::push_outer(buf, spec, true).map_err(|e| e.counter())
        }
    }
}

/// A worker ready to run: its ports, its table reader and the shared fabric.
pub struct Worker<C: BurstIo, L: BurstIo> {
    core: Core,
    cipher: C,
    clear: L,
    reader: TableReader,
    fabric: Arc<Fabric>,
    rx: Vec<PacketBuf>,
    to_clear: Stage,
    to_cipher: Stage,
    housekeeping: Housekeeping,
    /// Large IKE messages from the control plane pass through here.
    large: PacketBuf,
    sleep: Sleep,
}

impl<C: BurstIo, L: BurstIo> Worker<C, L> {
    pub fn new(
        cfg: WorkerConfig,
        cipher: C,
        clear: L,
        reader: TableReader,
        fabric: Arc<Fabric>,
    ) -> Worker<C, L> {
        let burst = cfg.burst.clamp(1, MAX_BURST);
        let mut cfg = cfg;
        cfg.burst = burst;
        let mut cipher = cipher;
        // Only the cipher side carries IKE (RFC 3948 on the NAT-T port).
        cipher.attach_large_punt(fabric.punt_large.clone());
        let wakeup = fabric.wakeups.get(cfg.id as usize).cloned().flatten();
        let sleep = Sleep::new(cfg.idle, &cipher, &clear, wakeup);
        let core = Core::new(cfg, fabric.workers(), cipher.layer(), clear.layer());
        Worker {
            core,
            cipher,
            clear,
            reader,
            fabric,
            rx: PacketBuf::alloc(burst),
            to_clear: Stage::new(burst),
            to_cipher: Stage::new(burst),
            housekeeping: Housekeeping::new(),
            large: PacketBuf::with_frame(LARGE_FRAME),
            sleep,
        }
    }

    /// Heap bytes of the worker's per-SA and per-path state (inbound slot index and
    /// arena with its replay bitmaps, outbound and path states), which grows with the SAs
    /// and paths it has used, not with the table's capacity.
    pub fn sa_state_bytes(&self) -> usize {
        let c = &self.core;
        c.inb.heap_bytes()
            + c.outb.capacity() * std::mem::size_of::<OutState>()
            + c.paths.capacity() * std::mem::size_of::<PathState>()
    }

    /// Whether this worker sleeps in poll(2) when idle (false: it spins, or naps
    /// between polls because a port cannot be waited on).
    pub fn sleeps_in_poll(&self) -> bool {
        matches!(self.sleep, Sleep::Poll { .. })
    }

    /// Runs until the fabric's stop flag is set; returns the ports.
    pub fn run(mut self) -> (C, L) {
        if let Some(c) = self.core.cfg.core {
            core_affinity::set_for_current(core_affinity::CoreId { id: c });
        }
        let mut idle_polls = 0u32;
        while !self.fabric.stop.load(Ordering::Relaxed) {
            let work = self.poll_once();
            if work == 0 {
                idle_polls = idle_polls.saturating_add(1);
                if idle_polls > SPIN_BEFORE_SLEEP {
                    self.idle_wait();
                }
            } else {
                idle_polls = 0;
            }
        }
        self.core
            .cnt
            .flush(self.fabric.counters.worker(self.core.cfg.id as usize));
        self.reader.offline();
        (self.cipher, self.clear)
    }

    /// The wait of an idle worker (see [`Sleep`]). Sleeping in poll(2), the worker is
    /// offline for QSBR, so table reclamation does not wait for it; its next burst comes
    /// online again. Public so tests can drive a worker step by step.
    pub fn idle_wait(&mut self) -> IdleWait {
        let me = self.core.cfg.id as usize;
        self.sleep
            .wait(&mut self.reader, &self.fabric, &self.housekeeping, me)
    }

    /// Spawns the worker on its own thread.
    pub fn spawn(self, name: String) -> std::io::Result<JoinHandle<(C, L)>>
    where
        C: 'static,
        L: 'static,
    {
        std::thread::Builder::new()
            .name(name)
            .spawn(move || self.run())
    }

    /// One iteration: a quiescent point, then a burst from each source. Returns the number
    /// of packets handled. Public so tests and benchmarks can drive a worker step by step.
    pub fn poll_once(&mut self) -> usize {
        self.poll_at(now_ns())
    }

    /// `poll_once` with the burst's timestamp given (keepalive timers follow it; tests
    /// drive time explicitly).
    pub fn poll_at(&mut self, now: u64) -> usize {
        let Worker {
            core,
            cipher,
            clear,
            reader,
            fabric,
            rx,
            to_clear,
            to_cipher,
            housekeeping,
            large,
            ..
        } = self;
        let fabric: &Fabric = fabric;
        let snap = reader.begin_burst();
        let burst = core.cfg.burst;
        let me = core.cfg.id as usize;
        let mut work = 0;

        // Cipher side -> clear side.
        let n = rx_from(cipher, &mut rx[..burst], &mut core.cnt, Counter::RxCipher);
        // Datagrams the port dropped or punted itself (oversize, large IKE).
        cipher.take_counts(&mut core.cnt);
        work += n;
        for b in rx[..n].iter_mut() {
            let v = core.cipher_rx(snap, b, fabric);
            stage_in(core, snap, v, b, clear, to_clear, fabric, me);
            b.reset();
        }

        // Clear side -> cipher side.
        let n = rx_from(clear, &mut rx[..burst], &mut core.cnt, Counter::RxClear);
        work += n;
        for b in rx[..n].iter_mut() {
            let v = core.clear_rx(snap, b, now, fabric);
            stage_out(core, snap, v, b, cipher, to_cipher, fabric, me);
            b.reset();
        }

        // Packets other workers handed to us.
        if let Some(inbox) = fabric.handoff.get(me) {
            let k = recv_from(inbox, &mut rx[..burst]);
            work += k;
            core.cnt.add(Counter::HandoffIn, k as u64);
            for b in rx[..k].iter_mut() {
                if b.meta.tag == TAG_INBOUND {
                    let v = core.esp_in(snap, b, fabric);
                    stage_in(core, snap, v, b, clear, to_clear, fabric, me);
                } else {
                    let v = core.esp_out(snap, b, now, fabric);
                    stage_out(core, snap, v, b, cipher, to_cipher, fabric, me);
                }
                b.reset();
            }
        }

        // Control-plane packets (IKE) to send from the dataplane's socket.
        if let Some(inject) = fabric.inject.get(me) {
            let k = recv_from(inject, &mut rx[..burst]);
            work += k;
            for b in rx[..k].iter_mut() {
                let spec = inject_spec(snap, b);
                match frame_for(core.cipher_layer, b, &spec) {
                    Ok(()) => {
                        stage_one(
                            cipher,
                            to_cipher,
                            &mut core.cnt,
                            Counter::TxCipher,
                            snap,
                            fabric,
                            me,
                            b,
                        );
                        core.cnt.inc(Counter::InjectTx);
                    }
                    Err(c) => core.cnt.inc(c),
                }
                b.reset();
            }
        }

        // Large control-plane packets, one at a time (rare: IKE with certificates).
        if let Some(inject) = fabric.inject_large.get(me) {
            while inject.recv_swap(large) {
                work += 1;
                inject_large(core, snap, large, cipher);
                large.reset();
            }
        }

        let elapsed = now.saturating_sub(housekeeping.last_ns);
        if elapsed >= HOUSEKEEPING_NS {
            housekeeping.last_ns = now;
            recycle_inbound(core, snap);
            keepalives(
                core,
                housekeeping,
                elapsed,
                snap,
                now,
                &mut rx[0],
                cipher,
                to_cipher,
                fabric,
                me,
            );
        }

        flush(
            clear,
            to_clear,
            &mut core.cnt,
            Counter::TxClear,
            snap,
            fabric,
            me,
        );
        flush(
            cipher,
            to_cipher,
            &mut core.cnt,
            Counter::TxCipher,
            snap,
            fabric,
            me,
        );
        core.cnt.flush(fabric.counters.worker(me));
        if core.punted {
            // Once per burst, and a syscall only if the control plane sleeps.
            core.punted = false;
            fabric.punt.notify();
        }
        if core.handed {
            // Once per burst per receiving worker, a syscall only if it sleeps.
            core.handed = false;
            for (w, f) in core.handed_to.iter_mut().enumerate() {
                if std::mem::take(f) {
                    if let Some(ch) = fabric.handoff.get(w) {
                        ch.notify();
                    }
                }
            }
        }
        work
    }
}

/// One receive burst from a port; errors are counted, never fatal.
#[inline]
fn rx_from<P: BurstIo>(
    port: &mut P,
    bufs: &mut [PacketBuf],
    cnt: &mut LocalCounters,
    ok: Counter,
) -> usize {
    match port.rx_burst(bufs) {
        Ok(n) => {
            let n = n.min(bufs.len());
            cnt.add(ok, n as u64);
            n
        }
        Err(_) => {
            cnt.inc(Counter::RxError);
            0
        }
    }
}

/// Takes up to `bufs.len()` packets from a channel into the front of `bufs`.
#[inline]
fn recv_from(ch: &Channel, bufs: &mut [PacketBuf]) -> usize {
    let mut k = 0;
    while k < bufs.len() && ch.recv_swap(&mut bufs[k]) {
        k += 1;
    }
    k
}

/// The outer header of a control-plane packet: its own addresses, UDP, and the link
/// header of the path named by its tag.
#[inline]
fn inject_spec(snap: &Snapshot, b: &PacketBuf) -> PathSpec {
    PathSpec {
        local: b.meta.src,
        remote: b.meta.dst,
        encap: Encap::Udp,
        l2: snap.path(b.meta.tag).and_then(|p| p.spec.l2),
        keepalive_ms: 0,
    }
}

/// Frames and sends one large control-plane packet (IKE longer than a packet buffer)
/// on its own: it never joins a staged burst of standard buffers.
#[inline(never)]
fn inject_large<C: BurstIo>(core: &mut Core, snap: &Snapshot, b: &mut PacketBuf, cipher: &mut C) {
    let spec = inject_spec(snap, b);
    if let Err(c) = frame_for(core.cipher_layer, b, &spec) {
        core.cnt.inc(c);
        return;
    }
    core.cnt.inc(Counter::InjectTx);
    let sent = cipher.tx_burst(std::slice::from_mut(b)).unwrap_or(0).min(1);
    core.cnt.add(Counter::TxCipher, sent as u64);
    core.cnt.add(Counter::DropTxFail, 1 - sent as u64);
}

/// Stages `b` for `port`, first sending what is staged if the stage is full; returns
/// its index in the stage.
#[allow(clippy::too_many_arguments)]
#[inline]
fn stage_one<P: BurstIo>(
    port: &mut P,
    stage: &mut Stage,
    cnt: &mut LocalCounters,
    ok: Counter,
    snap: &Snapshot,
    fabric: &Fabric,
    me: usize,
    b: &mut PacketBuf,
) -> usize {
    if stage.is_full() {
        flush(port, stage, cnt, ok, snap, fabric, me);
    }
    stage.take(b)
}

/// Sends everything staged; counts what the port refused; reports path-on-wire events.
#[inline]
fn flush<P: BurstIo>(
    port: &mut P,
    stage: &mut Stage,
    cnt: &mut LocalCounters,
    ok: Counter,
    snap: &Snapshot,
    fabric: &Fabric,
    me: usize,
) {
    let n = stage.n;
    if n == 0 {
        return;
    }
    let sent = port.tx_burst(&mut stage.bufs[..n]).unwrap_or(0).min(n);
    cnt.add(ok, sent as u64);
    cnt.add(Counter::DropTxFail, (n - sent) as u64);
    if !stage.firsts.is_empty() {
        let wire_ns = now_ns();
        for &(i, path, generation) in &stage.firsts {
            if i >= sent {
                continue;
            }
            let published_ns = snap
                .path(path)
                .filter(|r| r.generation == generation)
                .map_or(0, |r| r.published_ns);
            let _ = fabric.events.push(WorkerEvent::PathOnWire {
                worker: me as u16,
                path,
                generation,
                published_ns,
                wire_ns,
            });
        }
        stage.firsts.clear();
    }
    for b in stage.bufs[..n].iter_mut() {
        b.reset();
    }
    stage.n = 0;
}
