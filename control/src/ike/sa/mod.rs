//! The IKE SA state machines, sans-IO (quinn-proto style): no sockets, no clock, no
//! global randomness. The [`Endpoint`] owns every IKE SA of one process; the caller
//! feeds it datagrams ([`Endpoint::handle_datagram`]) and the time
//! ([`Endpoint::handle_timeout`]), gives commands ([`Endpoint::initiate`],
//! [`Endpoint::rekey_child`], [`Endpoint::rekey_ike`], [`Endpoint::delete`]) and
//! drains what it wants done: datagrams to send ([`Endpoint::poll_transmit`]), the
//! next deadline ([`Endpoint::poll_timeout`]) and what happened
//! ([`Endpoint::poll_event`]: child SAs to install or remove, paths to publish).
//!
//! Time is a `u64` of nanoseconds on any monotonic clock the caller chooses.
//! Datagrams are IKE messages without the RFC 3948 non-ESP marker: the engine strips
//! it on receipt and adds it when sending to the NAT-T port.

mod counters;
mod events;
mod ikesa;
pub mod negotiate;
pub mod pool;
mod stateless;

pub use counters::Counters;
pub use events::{ChildInfo, DownReason, Event, FailReason, Transmit};

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};

use super::conn::{Conn, Identity, Selector};
use super::crypto::random::Random;
use super::wire::header::{self, HeaderRepr};
use super::wire::ExchangeType;
use ikesa::{Handover, IkeSa};
use pool::Pools;

/// Our SPI of an IKE SA: the handle by which the caller names it. An IKE SA rekey
/// makes a new one ([`Event::IkeRekeyed`]).
pub type SaId = u64;

/// Hashes one of our IKE SPIs as itself. They come from the random source, so they are
/// uniform already and no peer chooses them; the SA map is consulted for every message
/// and every timer, where SipHash showed up in profiles with 100,000 SAs.
#[derive(Clone, Copy, Default)]
pub struct SpiHasher(u64);

impl std::hash::Hasher for SpiHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by our IKE SPIs.
pub type SaMap<V> = HashMap<SaId, V, std::hash::BuildHasherDefault<SpiHasher>>;

/// A child SA's handle, unique over the endpoint's life.
pub type ChildId = u64;

/// Index of a connection in the endpoint's list.
pub type ConnId = usize;

/// Endpoint-wide settings.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The IKE port (500) and the NAT-T port (4500): the initiator moves to the
    /// latter when a NAT is detected or encapsulation is forced (RFC 7296 2.23).
    pub port: u16,
    pub port_nat_t: u16,
    /// Half-open IKE SAs (IKE_SA_INIT answered, IKE_AUTH not yet) from which on the
    /// responder demands a cookie (RFC 7296 2.6).
    pub cookie_threshold: usize,
    /// Half-open IKE SAs beyond which new IKE_SA_INIT requests are dropped even with
    /// a valid cookie: state kept for unauthenticated peers stays bounded.
    pub max_half_open: usize,
    /// IKE SAs in all, beyond which new ones are refused.
    pub max_ike_sas: usize,
    /// Child SAs the dataplane can hold (our inbound SPIs in use): beyond it the
    /// responder refuses new children with NO_ADDITIONAL_SAS.
    pub max_child_sas: usize,
    /// How long a half-open SA waits for IKE_AUTH before it is dropped.
    pub half_open_timeout_ms: u64,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            port: 500,
            port_nat_t: 4500,
            cookie_threshold: 1000,
            max_half_open: 20_000,
            max_ike_sas: 200_000,
            max_child_sas: usize::MAX,
            half_open_timeout_ms: 30_000,
        }
    }
}

/// The state shared by every IKE SA of an endpoint, lent to one SA at a time.
pub(crate) struct Ctx<'a> {
    pub cfg: &'a EndpointConfig,
    pub conns: &'a [Conn],
    pub rng: &'a mut dyn Random,
    pub out: &'a mut VecDeque<Transmit>,
    pub events: &'a mut VecDeque<Event>,
    pub counters: &'a mut Counters,
    pub pools: &'a mut Pools,
    pub child_spis: &'a mut HashSet<u32>,
    pub next_child: &'a mut ChildId,
    /// IKE SAs born during the call (an IKE rekey), inserted by the endpoint.
    pub born: Vec<IkeSa>,
    /// Children handed by a rekeyed IKE SA to another one already in the map.
    pub handovers: Vec<Handover>,
    /// SPIs taken by IKE SAs, including those born during this call.
    pub ike_spis: &'a SaMap<Box<IkeSa>>,
    /// Established IKE SAs of each connection, by connection id (the SA lent to the
    /// call is not among them).
    pub established_by_conn: &'a [u32],
    pub born_spis: Vec<SaId>,
    /// An IKE SA authenticated with INITIAL_CONTACT: its id and the peer's identity.
    /// The endpoint drops the other IKE SAs with that identity after the call.
    pub initial_contact: Vec<(SaId, Identity)>,
    /// The host's usable addresses (MOBIKE).
    pub own_addrs: &'a OwnAddrs,
    /// Whether the host has a route from one address to another (MOBIKE's path
    /// choice); without an oracle every pair may work.
    pub routable: &'a dyn Fn(IpAddr, IpAddr) -> bool,
}

impl Ctx<'_> {
    pub fn new_child_spi(&mut self) -> u32 {
        loop {
            let mut b = [0u8; 4];
            self.rng.fill(&mut b);
            let spi = u32::from_be_bytes(b);
            // SPIs 1..=255 are reserved (RFC 4303 2.1).
            if spi >= 256 && self.child_spis.insert(spi) {
                return spi;
            }
        }
    }

    pub fn new_child_id(&mut self) -> ChildId {
        *self.next_child += 1;
        *self.next_child
    }

    pub fn new_ike_spi(&mut self) -> u64 {
        loop {
            let mut b = [0u8; 8];
            self.rng.fill(&mut b);
            let spi = u64::from_be_bytes(b);
            if spi != 0 && !self.ike_spis.contains_key(&spi) && !self.born_spis.contains(&spi) {
                self.born_spis.push(spi);
                return spi;
            }
        }
    }

    pub fn nonce(&mut self) -> Vec<u8> {
        let mut n = vec![0u8; 32];
        self.rng.fill(&mut n);
        n
    }

    pub fn send(&mut self, local: SocketAddr, remote: SocketAddr, data: Vec<u8>) {
        self.counters.tx += 1;
        self.out.push_back(Transmit {
            local,
            remote,
            data,
        });
    }
}

/// Every IKE SA of one process and what they share.
pub struct Endpoint {
    cfg: EndpointConfig,
    conns: Vec<Conn>,
    /// Boxed: a bucket of the map is then a pointer, not a whole IKE SA (the map keeps
    /// up to half its buckets empty), and taking an SA out to run it and filing it
    /// again moves a pointer.
    sas: SaMap<Box<IkeSa>>,
    /// Responder: (peer address, peer's SPI) -> our SPI, to recognise retransmitted
    /// IKE_SA_INIT requests (RFC 7296 2.1).
    init_index: HashMap<(SocketAddr, u64), SaId>,
    rng: Box<dyn Random + Send>,
    out: VecDeque<Transmit>,
    events: VecDeque<Event>,
    counters: Counters,
    pools: Pools,
    child_spis: HashSet<u32>,
    next_child: ChildId,
    timers: BinaryHeap<Reverse<(u64, SaId)>>,
    cookie_secret: [u8; 32],
    /// Responder SAs answered in IKE_SA_INIT and not yet authenticated.
    half_open_n: usize,
    /// Initiator SAs in IKE_SA_INIT or IKE_AUTH.
    initiating_n: usize,
    /// Set by the last call's context (see [`Ctx::initial_contact`]).
    initial_contact: Vec<(SaId, Identity)>,
    /// The IKE SAs in `sas` whose peer is authenticated, by the peer's identity: what
    /// an INITIAL_CONTACT (RFC 7296 2.4) replaces is found without a walk over all SAs.
    /// Kept by [`Self::file`]: an SA enters once its peer is known and leaves when it
    /// dies; an IKE rekey's new SA enters with the same identity.
    /// The SAs of one identity in a `Vec` of exactly their number (nearly always one:
    /// a `HashSet` would allocate room for four and its control bytes).
    by_peer: HashMap<Identity, Vec<SaId>>,
    /// IKE SAs in `sas` established, and their children: counts kept by
    /// [`Self::take`] and [`Self::file`] rather than walks over all SAs.
    established_n: usize,
    /// Established IKE SAs per connection (whether a new one is alone: INITIAL_CONTACT).
    established_by_conn: Vec<u32>,
    children_n: usize,
    /// The host's usable addresses: at first the connections' local addresses, then
    /// whatever [`Endpoint::set_own_addrs`] says.
    own_addrs: OwnAddrs,
    /// See [`Endpoint::set_route_oracle`].
    routable: Box<dyn Fn(IpAddr, IpAddr) -> bool + Send>,
}

/// The host's usable addresses in their order, and as a set: a client emulating
/// thousands of tunnels holds tens of thousands of addresses, and MOBIKE asks whether
/// one is ours on every path choice (a scan of the list cost O(addresses) per rotation,
/// and building the list O(addresses²) at start).
#[derive(Clone, Debug, Default)]
pub struct OwnAddrs {
    list: Vec<IpAddr>,
    set: HashSet<IpAddr>,
}

impl OwnAddrs {
    /// `addrs` without repeats, in their order.
    pub fn new(addrs: &[IpAddr]) -> OwnAddrs {
        let mut o = OwnAddrs::default();
        for a in addrs {
            o.push(*a);
        }
        o
    }

    /// Adds `a` at the end unless it is there.
    pub fn push(&mut self, a: IpAddr) {
        if self.set.insert(a) {
            self.list.push(a);
        }
    }

    pub fn contains(&self, a: &IpAddr) -> bool {
        self.set.contains(a)
    }

    pub fn as_slice(&self) -> &[IpAddr] {
        &self.list
    }

    pub fn to_vec(&self) -> Vec<IpAddr> {
        self.list.clone()
    }
}

impl Endpoint {
    pub fn new(cfg: EndpointConfig, conns: Vec<Conn>, mut rng: Box<dyn Random + Send>) -> Self {
        let n_conns = conns.len();
        let mut cookie_secret = [0u8; 32];
        rng.fill(&mut cookie_secret);
        let mut pools = Pools::default();
        let mut own_addrs = OwnAddrs::default();
        for c in &conns {
            for p in c.pools.iter() {
                pools.add(p);
            }
            for a in &c.local_addrs {
                own_addrs.push(a.ip());
            }
        }
        Endpoint {
            cfg,
            conns,
            sas: SaMap::default(),
            init_index: HashMap::new(),
            rng,
            out: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
            pools,
            child_spis: HashSet::new(),
            next_child: 0,
            timers: BinaryHeap::new(),
            cookie_secret,
            half_open_n: 0,
            initiating_n: 0,
            initial_contact: Vec::new(),
            by_peer: HashMap::new(),
            established_n: 0,
            established_by_conn: vec![0; n_conns],
            children_n: 0,
            own_addrs,
            routable: Box::new(|_, _| true),
        }
    }

    /// MOBIKE: how to tell whether the host can reach `to` from `from` (a route
    /// lookup); pairs it denies are tried last. The endpoint never asks on the
    /// packet path, only when it chooses a path.
    pub fn set_route_oracle(&mut self, f: Box<dyn Fn(IpAddr, IpAddr) -> bool + Send>) {
        self.routable = f;
    }

    pub fn conns(&self) -> &[Conn] {
        &self.conns
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// IKE SAs in any state.
    pub fn sa_count(&self) -> usize {
        self.sas.len()
    }

    /// IKE SAs established.
    pub fn established(&self) -> usize {
        self.established_n
    }

    /// Half-open IKE SAs we answered as responder.
    pub fn half_open(&self) -> usize {
        self.half_open_n
    }

    /// IKE SAs we initiated that are not established yet.
    pub fn initiating(&self) -> usize {
        self.initiating_n
    }

    /// Addresses leased from the pools.
    pub fn leased(&self) -> usize {
        self.pools.leased()
    }

    /// Child SAs installed, over all IKE SAs.
    pub fn child_count(&self) -> usize {
        self.children_n
    }

    /// Child SAs of one IKE SA (0 for an unknown one).
    pub fn child_count_of(&self, sa: SaId) -> usize {
        self.sas.get(&sa).map_or(0, |s| s.child_count())
    }

    /// The established IKE SAs and their children's ids, for inspection.
    pub fn sa_ids(&self) -> Vec<SaId> {
        let mut v: Vec<SaId> = self.sas.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// The children of an IKE SA.
    pub fn children(&self, sa: SaId) -> Vec<ChildId> {
        self.sas.get(&sa).map(|s| s.child_ids()).unwrap_or_default()
    }

    /// Starts an IKE SA for connection `conn` towards its first peer address, from
    /// `local` (None: the connection's first local address).
    pub fn initiate(&mut self, now: u64, conn: ConnId, local: Option<SocketAddr>) -> Option<SaId> {
        let c = self.conns.get(conn)?;
        let remote = *c.peer_addrs.first()?;
        let local = local.or_else(|| c.local_addrs.first().copied())?;
        let (sa, born, handovers) = self.with_ctx(None, |ctx| {
            let spi = ctx.new_ike_spi();
            IkeSa::initiate(ctx, now, conn, spi, local, remote)
        });
        let id = sa.id();
        self.file(Box::new(sa), false);
        self.settle(now, born, handovers);
        Some(id)
    }

    /// Starts a rekey of child `child` of IKE SA `sa`.
    pub fn rekey_child(&mut self, now: u64, sa: SaId, child: ChildId) -> bool {
        self.on_sa(now, sa, |s, ctx| s.start_rekey_child(ctx, now, child))
            .unwrap_or(false)
    }

    /// Starts a rekey of the IKE SA.
    pub fn rekey_ike(&mut self, now: u64, sa: SaId) -> bool {
        self.on_sa(now, sa, |s, ctx| s.start_rekey_ike(ctx, now))
            .unwrap_or(false)
    }

    /// Negotiates an additional child SA for the connection's selectors.
    pub fn create_child(&mut self, now: u64, sa: SaId) -> bool {
        self.on_sa(now, sa, |s, ctx| s.start_create_child(ctx, now))
            .unwrap_or(false)
    }

    /// Deletes the IKE SA and its children (INFORMATIONAL with D).
    pub fn delete(&mut self, now: u64, sa: SaId) -> bool {
        self.on_sa(now, sa, |s, ctx| s.start_delete(ctx, now))
            .unwrap_or(false)
    }

    /// Takes child `child` of IKE SA `sa` out at once and deletes it at the peer (a
    /// child the dataplane could not install).
    pub fn drop_child(&mut self, now: u64, sa: SaId, child: ChildId) -> bool {
        self.on_sa(now, sa, |s, ctx| s.drop_child(ctx, now, child))
            .unwrap_or(false)
    }

    /// Sends a liveness check now.
    pub fn dpd(&mut self, now: u64, sa: SaId) -> bool {
        self.on_sa(now, sa, |s, ctx| s.start_dpd(ctx, now))
            .unwrap_or(false)
    }

    /// Tells the SA that ESP arrived from the peer (the dataplane's counters), so
    /// DPD does not probe a live peer.
    pub fn note_inbound_traffic(&mut self, now: u64, sa: SaId) {
        if let Some(s) = self.sas.get_mut(&sa) {
            s.note_rx(now);
        }
    }

    /// MOBIKE: the host's usable addresses are now `addrs` (an address added or
    /// removed, a link down). An SA whose initiator lost its address moves to the
    /// best pair left (break-before-make); each end announces its new list.
    pub fn set_own_addrs(&mut self, now: u64, addrs: &[IpAddr]) {
        if self.own_addrs.as_slice() == addrs {
            return;
        }
        self.own_addrs = OwnAddrs::new(addrs);
        for sa in self.sa_ids() {
            self.on_sa(now, sa, |s, ctx| s.own_addrs_changed(ctx, now));
        }
    }

    /// The host's usable addresses as last set.
    pub fn own_addrs(&self) -> &OwnAddrs {
        &self.own_addrs
    }

    /// MOBIKE: moves IKE SA `sa` and its children to `local` -> `remote` (port
    /// 4500), make-before-break: the SAs stay where they are until the peer
    /// answers there. False unless MOBIKE is on and we are the original initiator.
    pub fn migrate(&mut self, now: u64, sa: SaId, local: IpAddr, remote: IpAddr) -> bool {
        self.on_sa(now, sa, |s, ctx| s.migrate(ctx, now, local, remote))
            .unwrap_or(false)
    }

    /// The authenticated peer's identity and the virtual IP of the SA.
    pub fn peer_of(&self, sa: SaId) -> (Option<&Identity>, Option<IpAddr>) {
        self.sas
            .get(&sa)
            .map_or((None, None), |s| (s.peer_id(), s.vip()))
    }

    /// A child's (local, remote) traffic selectors.
    pub fn child_selectors(&self, sa: SaId, child: ChildId) -> Option<(&[Selector], &[Selector])> {
        self.sas.get(&sa)?.child_selectors(child)
    }

    /// Whether MOBIKE is on for the SA.
    pub fn mobike(&self, sa: SaId) -> bool {
        self.sas.get(&sa).is_some_and(|s| s.mobike())
    }

    /// The SA's (local, remote, UDP encapsulation).
    pub fn path(&self, sa: SaId) -> Option<(SocketAddr, SocketAddr, bool)> {
        self.sas.get(&sa).map(|s| s.path())
    }

    /// The peer's addresses for the SA: the current one first, then what it
    /// announced, then the configured ones.
    pub fn peer_addrs(&mut self, sa: SaId) -> Vec<IpAddr> {
        let s = self.sas.remove(&sa);
        let v = match &s {
            Some(s) => self.with_ctx(None, |ctx| s.peer_addrs(ctx)).0,
            None => Vec::new(),
        };
        if let Some(s) = s {
            self.sas.insert(sa, s);
        }
        v
    }

    /// The address pairs the SA would try now, best first.
    pub fn candidates(&mut self, sa: SaId) -> Vec<(SocketAddr, SocketAddr)> {
        let s = self.sas.remove(&sa);
        let v = match &s {
            Some(s) => self.with_ctx(None, |ctx| s.candidates(ctx)).0,
            None => Vec::new(),
        };
        if let Some(s) = s {
            self.sas.insert(sa, s);
        }
        v
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest deadline of any SA. It may be early (a timer that was
    /// re-armed); calling [`Self::handle_timeout`] then is harmless.
    pub fn poll_timeout(&mut self) -> Option<u64> {
        while let Some(Reverse((t, sa))) = self.timers.peek().copied() {
            match self.sas.get(&sa).and_then(|s| s.next_timeout()) {
                Some(due) if due == t => return Some(t),
                _ => {
                    self.timers.pop();
                }
            }
        }
        None
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: u64) {
        // In the order they fell due, each once (an SA re-armed has older entries).
        let mut due = Vec::new();
        let mut seen = HashSet::new();
        while let Some(Reverse((t, sa))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            if seen.insert(sa) {
                due.push(sa);
            }
        }
        for sa in due {
            self.on_sa(now, sa, |s, ctx| {
                // Its heap entry was consumed: arm again whatever comes next.
                s.clear_armed();
                s.handle_timeout(ctx, now)
            });
        }
    }

    /// Processes one received IKE datagram. `local` is the address it arrived on,
    /// `remote` its source.
    pub fn handle_datagram(
        &mut self,
        now: u64,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        self.counters.rx += 1;
        let Ok(p) = header::Packet::new_checked(data) else {
            self.counters.malformed += 1;
            return;
        };
        let Ok(h) = HeaderRepr::parse(&p) else {
            self.counters.bad_version += 1;
            // RFC 7296 2.5: a request of a later major version learns ours.
            if let Some(d) = stateless::invalid_major_version(&p) {
                self.counters.tx += 1;
                self.out.push_back(Transmit {
                    local,
                    remote,
                    data: d,
                });
            }
            return;
        };
        let data = p.message();
        if h.exchange_type == ExchangeType::IKE_SA_INIT && !h.response && h.spi_r == 0 {
            self.handle_init_request(now, local, remote, &h, data);
            return;
        }
        // The I flag says the sender is the original initiator, so our SPI is the
        // responder's (RFC 7296 3.1).
        let ours = if h.initiator { h.spi_r } else { h.spi_i };
        let Some(sa) = self.sas.get(&ours) else {
            self.counters.unknown_spi += 1;
            return;
        };
        if !sa.spis_match(&h) {
            self.counters.unknown_spi += 1;
            return;
        }
        self.on_sa(now, ours, |s, ctx| {
            s.handle_message(ctx, now, local, remote, &h, data)
        });
    }

    fn handle_init_request(
        &mut self,
        now: u64,
        local: SocketAddr,
        remote: SocketAddr,
        h: &HeaderRepr,
        data: &[u8],
    ) {
        if h.spi_i == 0 {
            self.counters.malformed += 1;
            return;
        }
        if let Some(&ours) = self.init_index.get(&(remote, h.spi_i)) {
            // A retransmission (or a retry after COOKIE / INVALID_KE, which
            // carries message ID 0 again): let the half-open SA decide.
            self.on_sa(now, ours, |s, ctx| {
                s.handle_message(ctx, now, local, remote, h, data)
            });
            return;
        }
        if self.half_open_n >= self.cfg.max_half_open || self.sas.len() >= self.cfg.max_ike_sas {
            self.counters.limit_dropped += 1;
            return;
        }
        let need_cookie = self.half_open_n >= self.cfg.cookie_threshold;
        let secret = self.cookie_secret;
        let (sa, born, handovers) = self.with_ctx(None, |ctx| {
            let spi = ctx.new_ike_spi();
            IkeSa::respond_init(ctx, now, spi, local, remote, h, data, need_cookie, &secret)
        });
        if let Some(sa) = sa {
            if !sa.is_dead() {
                self.init_index.insert((remote, h.spi_i), sa.id());
            }
            self.file(Box::new(sa), false);
        }
        self.settle(now, born, handovers);
    }

    /// Runs `f` with the shared context; returns its result and the IKE SAs born.
    fn with_ctx<R>(
        &mut self,
        taken: Option<SaId>,
        f: impl FnOnce(&mut Ctx<'_>) -> R,
    ) -> (R, Vec<IkeSa>, Vec<Handover>) {
        let mut ctx = Ctx {
            cfg: &self.cfg,
            conns: &self.conns,
            rng: &mut *self.rng,
            out: &mut self.out,
            events: &mut self.events,
            counters: &mut self.counters,
            pools: &mut self.pools,
            child_spis: &mut self.child_spis,
            next_child: &mut self.next_child,
            born: Vec::new(),
            handovers: Vec::new(),
            ike_spis: &self.sas,
            established_by_conn: &self.established_by_conn,
            born_spis: taken.into_iter().collect(),
            initial_contact: Vec::new(),
            own_addrs: &self.own_addrs,
            routable: &*self.routable,
        };
        let r = f(&mut ctx);
        let (born, handovers) = (ctx.born, ctx.handovers);
        self.initial_contact.extend(ctx.initial_contact);
        (r, born, handovers)
    }

    /// Runs `f` on SA `sa` with the shared context, then files the SA and any born.
    fn on_sa<R>(
        &mut self,
        now: u64,
        sa: SaId,
        f: impl FnOnce(&mut IkeSa, &mut Ctx<'_>) -> R,
    ) -> Option<R> {
        let mut s = self.take(sa)?;
        let was_half_open = s.is_half_open();
        let (r, born, handovers) = self.with_ctx(Some(sa), |ctx| f(&mut s, ctx));
        self.file(s, was_half_open);
        self.settle(now, born, handovers);
        Some(r)
    }

    /// Files the IKE SAs born during a call and gives handed-over children to their
    /// new IKE SA. Each of them then sends what it has queued (a child rekey that fell
    /// due while the IKE SA was being rekeyed): after the call, so that the peer has
    /// the response that made the new SA before its first request.
    fn settle(&mut self, now: u64, born: Vec<IkeSa>, handovers: Vec<Handover>) {
        for mut b in born {
            let id = b.id();
            let _ = self.with_ctx(Some(id), |ctx| b.kick(ctx, now));
            self.file(Box::new(b), false);
        }
        self.apply(now, handovers);
        for (keep, who) in std::mem::take(&mut self.initial_contact) {
            for id in self.replaced_by(keep, &who) {
                self.counters.initial_contact_dropped += 1;
                self.on_sa(now, id, |s, ctx| s.drop_replaced(ctx));
            }
        }
    }

    /// What an INITIAL_CONTACT from `who` on IKE SA `keep` replaces (RFC 7296 2.4):
    /// the other IKE SAs authenticated with that identity, by SPI.
    fn replaced_by(&self, keep: SaId, who: &Identity) -> Vec<SaId> {
        let mut stale: Vec<SaId> = self
            .by_peer
            .get(who)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&id| id != keep && self.sas.get(&id).is_some_and(|s| !s.is_half_open()))
            .collect();
        stale.sort_unstable();
        stale
    }

    /// Gives handed-over children to their new IKE SA.
    fn apply(&mut self, now: u64, handovers: Vec<Handover>) {
        for h in handovers {
            match self.take(h.to) {
                Some(mut t) => {
                    t.adopt(h);
                    t.clear_armed();
                    let _ = self.with_ctx(Some(t.id()), |ctx| t.kick(ctx, now));
                    self.file(t, false);
                }
                None => {
                    for spi in IkeSa::handover_spis(&h) {
                        self.child_spis.remove(&spi);
                    }
                }
            }
        }
    }

    /// Takes SA `id` out of the map (to run it and [`Self::file`] it again), and out
    /// of the counts of the SAs in the map.
    fn take(&mut self, id: SaId) -> Option<Box<IkeSa>> {
        let s = self.sas.remove(&id)?;
        if s.is_initiating() {
            self.initiating_n -= 1;
        }
        if s.is_established() {
            self.established_n -= 1;
            if let Some(n) = self.established_by_conn.get_mut(s.conn_id()) {
                *n -= 1;
            }
        }
        self.children_n -= s.child_count();
        Some(s)
    }

    /// `was_half_open`: the SA counted as half-open before this call.
    fn file(&mut self, mut s: Box<IkeSa>, was_half_open: bool) {
        let id = s.id();
        if s.is_initiating() {
            self.initiating_n += 1;
        }
        match (was_half_open, s.is_half_open()) {
            (false, true) => self.half_open_n += 1,
            (true, false) => self.half_open_n -= 1,
            _ => {}
        }
        // A responder SA stays in the index of IKE_SA_INIT requests through IKE_AUTH,
        // so a retransmitted IKE_SA_INIT (RFC 7296 2.1) finds it rather than making a
        // new one; once established, the initiator had our response and sends none.
        if s.is_established() || s.is_dead() {
            if let Some(k) = s.take_init_key() {
                if self.init_index.get(&k) == Some(&id) {
                    self.init_index.remove(&k);
                }
            }
        }
        if s.is_dead() {
            if let Some(who) = s.peer_id() {
                if let Some(ids) = self.by_peer.get_mut(who) {
                    if let Some(i) = ids.iter().position(|&x| x == id) {
                        ids.swap_remove(i);
                        ids.shrink_to_fit();
                    }
                    if ids.is_empty() {
                        self.by_peer.remove(who);
                    }
                }
            }
            s.release(&mut self.child_spis);
            return;
        }
        if let Some(who) = s.peer_id() {
            // The identity is cloned once, when the SA enters the index.
            if !s.peer_indexed() {
                let ids = self.by_peer.entry(who.clone()).or_default();
                ids.reserve_exact(1);
                ids.push(id);
                s.set_peer_indexed();
            }
        }
        if s.is_established() {
            self.established_n += 1;
            if let Some(n) = self.established_by_conn.get_mut(s.conn_id()) {
                *n += 1;
            }
        }
        self.children_n += s.child_count();
        s.compact();
        let due = s.next_timeout();
        let rearm = due.is_some() && s.take_armed(due);
        self.sas.insert(id, s);
        if let (true, Some(t)) = (rearm, due) {
            self.timers.push(Reverse((t, id)));
        }
    }
}

#[cfg(test)]
mod tests;
