//! `dataplane:`: the workers, their bursts and polling, the SA table size, the
//! anti-replay default and the queue of IKE messages punted to the control plane.

use super::value::{Ctx, List, S};
use serde_saphyr::Spanned;

/// Packets per burst.
pub const BURST_RANGE: std::ops::RangeInclusive<u64> = 1..=256;
/// Anti-replay window in packets (0 disables).
pub const REPLAY_WINDOW_MAX: u64 = 8192;
/// Worker threads.
pub const WORKERS_MAX: u64 = 256;
/// SA slots per direction.
pub const MAX_SAS_MAX: u64 = 1 << 20;
/// IKE messages the dataplane holds for the control plane (`dataplane.punt_queue`).
pub const PUNT_QUEUE_RANGE: std::ops::RangeInclusive<u64> = 64..=(1 << 20);
/// The default punt queue, whatever `max_sas`: the queue absorbs the IKE that arrives
/// while the control plane is busy with one turn of its loop (which drains it whole),
/// not one message per SA. At 2.2 KiB a message that is 9 MiB, allocated once; what
/// does not fit is dropped and counted (`drop_punt_full`), and the peer retransmits
/// (RFC 7296 2.1). Bulk senders pace themselves well below it (a stopping client
/// deletes its IKE SAs 256 at a time).
pub const PUNT_QUEUE_DEFAULT: usize = 4096;

/// Whether the fastpath encrypts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Esp,
    /// Baseline: forward between the sides without encryption.
    Plain,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplaneConf {
    pub workers: usize,
    /// Core of worker i, when pinned.
    pub cores: Option<Vec<usize>>,
    pub burst: usize,
    pub replay_window: u32,
    pub max_sas: usize,
    pub mode: Mode,
    pub poll: Poll,
    /// IKE messages the dataplane queues for the control plane (each in a 2 KiB
    /// buffer): `dataplane.punt_queue`, else [`PUNT_QUEUE_DEFAULT`] (not scaled by
    /// `max_sas`: the zero-tunnel memory must not grow with the table's size).
    pub punt_queue: usize,
}

/// What a worker does when its ports are idle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Spin: the lowest latency, one core at 100 % per worker.
    Busy,
    /// Spin a while, then sleep until a packet or a queued message arrives (idle
    /// costs next to nothing).
    Adaptive,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDataplane {
    pub(super) workers: Option<S>,
    pub(super) cores: Option<List>,
    pub(super) burst: Option<S>,
    pub(super) replay_window: Option<S>,
    pub(super) max_sas: Option<S>,
    pub(super) mode: Option<S>,
    pub(super) poll: Option<S>,
    pub(super) punt_queue: Option<S>,
}

pub(super) fn validate(
    cx: &mut Ctx<'_>,
    raw: Option<&Spanned<RawDataplane>>,
) -> Option<DataplaneConf> {
    let mut dp = DataplaneConf {
        workers: 1,
        cores: None,
        burst: 64,
        replay_window: 1024,
        max_sas: 4096,
        mode: Mode::Esp,
        poll: Poll::Adaptive,
        punt_queue: PUNT_QUEUE_DEFAULT,
    };
    let Some(raw) = raw else {
        return Some(dp);
    };
    let r = &raw.value;
    let mut ok = true;
    if let Some(v) = &r.workers {
        match cx.uint("dataplane.workers", v, 1..=WORKERS_MAX, "worker threads") {
            Some(n) => dp.workers = n as usize,
            None => ok = false,
        }
    }
    if let Some(v) = &r.burst {
        match cx.uint("dataplane.burst", v, BURST_RANGE, "packets per burst") {
            Some(n) => dp.burst = n as usize,
            None => ok = false,
        }
    }
    if let Some(v) = &r.replay_window {
        match cx.uint(
            "dataplane.replay_window",
            v,
            0..=REPLAY_WINDOW_MAX,
            "anti-replay window in packets (0 disables)",
        ) {
            Some(n) => dp.replay_window = n as u32,
            None => ok = false,
        }
    }
    if let Some(v) = &r.max_sas {
        match cx.uint(
            "dataplane.max_sas",
            v,
            1..=MAX_SAS_MAX,
            "SA slots per direction",
        ) {
            Some(n) => dp.max_sas = n as usize,
            None => ok = false,
        }
    }
    if let Some(v) = &r.mode {
        match cx.choice("dataplane.mode", v, &["esp", "plain"]) {
            Some("plain") => dp.mode = Mode::Plain,
            Some(_) => dp.mode = Mode::Esp,
            None => ok = false,
        }
    }
    if let Some(v) = &r.poll {
        match cx.choice("dataplane.poll", v, &["busy", "adaptive"]) {
            Some("busy") => dp.poll = Poll::Busy,
            Some(_) => dp.poll = Poll::Adaptive,
            None => ok = false,
        }
    }
    if let Some(list) = &r.cores {
        let mut cores = Vec::new();
        for (i, c) in list.value.iter().enumerate() {
            let p = format!("dataplane.cores[{i}]");
            match cx.uint(&p, c, 0..=4095, "CPU number") {
                Some(n) if cores.contains(&(n as usize)) => {
                    cx.err(
                        &p,
                        c.referenced,
                        format!("core {n} is listed twice"),
                        "give each worker its own core",
                    );
                    ok = false;
                }
                Some(n) => cores.push(n as usize),
                None => ok = false,
            }
        }
        if list.value.len() != dp.workers {
            cx.err(
                "dataplane.cores",
                list.referenced,
                format!("{} cores listed for {} workers", list.value.len(), dp.workers),
                format!("list exactly one core per worker ({}), or remove `cores` to leave workers unpinned", dp.workers),
            );
            ok = false;
        }
        dp.cores = Some(cores);
    }
    if let Some(v) = &r.punt_queue {
        match cx.uint(
            "dataplane.punt_queue",
            v,
            PUNT_QUEUE_RANGE,
            "IKE messages queued for the control plane, 2 KiB each (default 4096)",
        ) {
            Some(n) => dp.punt_queue = n as usize,
            None => ok = false,
        }
    }
    ok.then_some(dp)
}
