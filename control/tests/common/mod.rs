//! The in-memory link with a virtual clock that the IKE tests drive two endpoints
//! over (and spoofing third parties): real, encrypted IKE messages, no sockets, no
//! sleeps; every run is deterministic for its seed.

#![allow(dead_code, unused_imports)]

pub use std::collections::HashSet;
pub use std::net::{IpAddr, SocketAddr};

pub use mobiked_control::ike::conn::{
    Conn, EspProposal, Identity, IkeProposal, PoolConf, Selector,
};
pub use mobiked_control::ike::crypto::random::SeededRandom;
pub use mobiked_control::ike::sa::{
    ChildInfo, DownReason, Endpoint, EndpointConfig, Event, FailReason, Transmit,
};
pub use mobiked_control::ike::wire::header::{self, HeaderRepr};
pub use mobiked_control::ike::wire::ExchangeType;

pub const MS: u64 = 1_000_000;
pub const S: u64 = 1_000_000_000;

pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

/// Which endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

pub struct Flight {
    pub at: u64,
    pub to: Side,
    pub t: Transmit,
}

pub type Filter = Box<dyn FnMut(Side, &Transmit, u64) -> bool>;
pub type Rewrite = Box<dyn FnMut(Side, &mut Transmit)>;

/// Two endpoints joined by a link with a fixed one-way latency, an optional loss
/// filter (return false to drop) and an optional rewrite (a NAT).
pub struct Net {
    pub a: Endpoint,
    pub b: Endpoint,
    pub a_ips: Vec<IpAddr>,
    pub now: u64,
    pub latency: u64,
    pub flights: Vec<Flight>,
    pub filter: Option<Filter>,
    pub rewrite: Option<Rewrite>,
    pub ev_a: Vec<Event>,
    pub ev_b: Vec<Event>,
    /// Every datagram that went on the link (after the filter), in order.
    pub wire: Vec<(Side, Transmit)>,
}

impl Net {
    pub fn new(a: Endpoint, b: Endpoint) -> Self {
        Net {
            a,
            b,
            a_ips: vec!["10.0.0.1".parse().unwrap()],
            now: 1_000 * S,
            latency: 5 * MS,
            flights: Vec::new(),
            filter: None,
            rewrite: None,
            ev_a: Vec::new(),
            ev_b: Vec::new(),
            wire: Vec::new(),
        }
    }

    pub fn ep(&mut self, s: Side) -> &mut Endpoint {
        match s {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    pub fn collect(&mut self) {
        for from in [Side::A, Side::B] {
            while let Some(mut t) = self.ep(from).poll_transmit() {
                if let Some(f) = self.filter.as_mut() {
                    if !f(from, &t, self.now) {
                        continue;
                    }
                }
                if let Some(r) = self.rewrite.as_mut() {
                    r(from, &mut t);
                }
                let to = if self.a_ips.contains(&t.remote.ip()) {
                    Side::A
                } else {
                    Side::B
                };
                self.wire.push((from, t.clone()));
                self.flights.push(Flight {
                    at: self.now + self.latency,
                    to,
                    t,
                });
            }
            while let Some(e) = self.ep(from).poll_event() {
                match from {
                    Side::A => self.ev_a.push(e),
                    Side::B => self.ev_b.push(e),
                }
            }
        }
    }

    /// Advances to the next delivery or timer, at most until `until`. Returns false
    /// when nothing is left to do before `until`.
    pub fn step(&mut self, until: u64) -> bool {
        self.collect();
        let next_flight = self.flights.iter().map(|f| f.at).min();
        let ta = self.a.poll_timeout();
        let tb = self.b.poll_timeout();
        let Some(next) = [next_flight, ta, tb].into_iter().flatten().min() else {
            return false;
        };
        if next > until {
            self.now = until;
            return false;
        }
        self.now = self.now.max(next);
        let now = self.now;
        let (due, rest): (Vec<Flight>, Vec<Flight>) = std::mem::take(&mut self.flights)
            .into_iter()
            .partition(|f| f.at <= now);
        self.flights = rest;
        for f in due {
            let local = f.t.remote;
            let remote = f.t.local;
            self.ep(f.to).handle_datagram(now, local, remote, &f.t.data);
        }
        if ta.is_some_and(|t| t <= now) {
            self.a.handle_timeout(now);
        }
        if tb.is_some_and(|t| t <= now) {
            self.b.handle_timeout(now);
        }
        self.collect();
        true
    }

    /// Runs for `d` of virtual time (bounded in steps).
    pub fn run_for(&mut self, d: u64) {
        let until = self.now + d;
        for _ in 0..1_000_000 {
            if !self.step(until) {
                return;
            }
        }
        panic!("run_for: more than a million steps");
    }

    /// Runs until `pred` holds, at most `d` of virtual time.
    pub fn run_until(&mut self, d: u64, mut pred: impl FnMut(&Net) -> bool) -> bool {
        let until = self.now + d;
        for _ in 0..1_000_000 {
            if pred(self) {
                return true;
            }
            if !self.step(until) {
                return pred(self);
            }
        }
        false
    }
}

pub fn child_ups(ev: &[Event]) -> Vec<ChildInfo> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ChildUp { child, .. } => Some(child.clone()),
            _ => None,
        })
        .collect()
}

pub fn downs(ev: &[Event]) -> Vec<u32> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ChildDown { spi_in, .. } => Some(*spi_in),
            _ => None,
        })
        .collect()
}

/// Children up and not down: the dataplane's view, by inbound SPI.
pub fn live(ev: &[Event]) -> Vec<ChildInfo> {
    let gone: HashSet<u32> = downs(ev).into_iter().collect();
    child_ups(ev)
        .into_iter()
        .filter(|c| !gone.contains(&c.spi_in))
        .collect()
}

pub fn ike_up(ev: &[Event]) -> usize {
    ev.iter()
        .filter(|e| matches!(e, Event::IkeUp { .. }))
        .count()
}

pub fn ike_down(ev: &[Event]) -> Vec<DownReason> {
    ev.iter()
        .filter_map(|e| match e {
            Event::IkeDown { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

/// The two ends' live children pair up: each one's outbound is the other's inbound,
/// with the same keys.
pub fn assert_paired(a: &[ChildInfo], b: &[ChildInfo]) {
    assert_eq!(a.len(), b.len(), "live children: a {a:?} b {b:?}");
    for x in a {
        let y = b
            .iter()
            .find(|y| y.spi_in == x.spi_out)
            .unwrap_or_else(|| panic!("no peer child for {x:?} in {b:?}"));
        assert_eq!(y.spi_out, x.spi_in);
        assert_eq!(y.key_in, x.key_out);
        assert_eq!(y.key_out, x.key_in);
        assert_eq!(y.cipher, x.cipher);
        assert_eq!(y.esn, x.esn);
        assert_ne!(x.key_in, x.key_out);
    }
}

pub fn client_conn() -> Conn {
    let mut c = Conn::new("a", Identity::parse("a.test").unwrap(), b"a shared secret");
    c.peer_addrs = vec![sa("10.0.0.2:500")];
    c.local_addrs = vec![sa("10.0.0.1:500")];
    c.remote_id = Some(Identity::parse("b.test").unwrap());
    c.local_ts = vec![sel("10.1.0.0/24")].into();
    c.remote_ts = vec![sel("10.2.0.0/24")].into();
    c.dpd.interval_s = 0;
    c
}

pub fn gateway_conn() -> Conn {
    let mut c = Conn::new("b", Identity::parse("b.test").unwrap(), b"a shared secret");
    c.remote_id = None;
    c.local_ts = vec![sel("10.2.0.0/16")].into();
    c.remote_ts = vec![sel("10.1.0.0/16")].into();
    c.dpd.interval_s = 0;
    c
}

pub fn endpoints(a: Conn, b: Conn, seed: u64) -> Net {
    let ea = Endpoint::new(
        EndpointConfig::default(),
        vec![a],
        Box::new(SeededRandom::new(seed)),
    );
    let eb = Endpoint::new(
        EndpointConfig::default(),
        vec![b],
        Box::new(SeededRandom::new(seed ^ 0xb0b)),
    );
    Net::new(ea, eb)
}

pub fn establish(net: &mut Net) -> u64 {
    let sa_a = net.a.initiate(net.now, 0, None).expect("initiate");
    assert!(
        net.run_until(10 * S, |n| ike_up(&n.ev_a) == 1 && ike_up(&n.ev_b) == 1),
        "not established: a {:?} b {:?} counters a {:?} b {:?}",
        net.ev_a,
        net.ev_b,
        net.a.counters(),
        net.b.counters()
    );
    sa_a
}

pub fn exchanges(net: &Net) -> Vec<(Side, u8, bool)> {
    net.wire
        .iter()
        .filter_map(|(s, t)| {
            let p = header::Packet::new_checked(&t.data[..]).ok()?;
            let h = HeaderRepr::parse(&p).ok()?;
            Some((*s, h.exchange_type.0, h.response))
        })
        .collect()
}
