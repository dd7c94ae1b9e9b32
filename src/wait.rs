//! How the control loops (`mobiked gateway`/`client`, `mobiked run`) sleep between turns:
//! in poll(2) on every descriptor that can bring work (IKE sockets, netlink, the punt
//! queues' eventfds, the control socket and its clients, and a self-pipe the SIGINT/
//! SIGTERM handler writes), until the earliest deadline of the loop's timers. An idle
//! daemon so wakes only for its own timers and at most once per `IDLE_CAP_MS`.

use dataplane::channel::Channel;
use dataplane::io::sys;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Longest sleep of a loop with nothing due: periodic duties without a deadline of their
/// own (table reclamation, worker events) run at least this often.
pub const IDLE_CAP_MS: u64 = 1000;
/// After a publication, retired table versions are reclaimed this soon (workers pass a
/// quiescent point within a burst, or are offline while they sleep).
pub const RECLAIM_NS: u64 = 10_000_000;

/// Milliseconds to sleep at `now` until the earliest of `deadlines` (absolute, in the
/// `now_ns` clock), at most `cap_ms`: 0 when one is due, rounded up otherwise so the loop
/// never wakes just before a deadline and turns once more for nothing.
pub fn timeout_ms(now: u64, deadlines: impl IntoIterator<Item = Option<u64>>, cap_ms: u64) -> i32 {
    let cap_ns = cap_ms.saturating_mul(1_000_000);
    let wait_ns = deadlines
        .into_iter()
        .flatten()
        .map(|t| t.saturating_sub(now))
        .fold(cap_ns, u64::min);
    i32::try_from(wait_ns.div_ceil(1_000_000)).unwrap_or(i32::MAX)
}

/// Nanoseconds to sleep at `now` until the earliest of `deadlines`, at most `cap_ms`
/// (for [`PollSet::wait_ns`]: a rotation or retransmission due between two
/// milliseconds runs when due, not at the next whole millisecond).
pub fn timeout_ns(now: u64, deadlines: impl IntoIterator<Item = Option<u64>>, cap_ms: u64) -> u64 {
    deadlines
        .into_iter()
        .flatten()
        .map(|t| t.saturating_sub(now))
        .fold(cap_ms.saturating_mul(1_000_000), u64::min)
}

/// SIGINT and SIGTERM: a flag the loop checks, and a self-pipe that makes its poll(2)
/// return at once (the handler sets the flag first, then writes).
pub struct StopSignal {
    flag: Arc<AtomicBool>,
    read: UnixStream,
}

impl StopSignal {
    pub fn register() -> io::Result<StopSignal> {
        let flag = Arc::new(AtomicBool::new(false));
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // A second signal ends the process at once (exit status 1), without
            // waiting for peers to confirm the deletions of the first.
            signal_hook::flag::register_conditional_shutdown(sig, 1, flag.clone())?;
            signal_hook::flag::register(sig, flag.clone())?;
            signal_hook::low_level::pipe::register(sig, write.try_clone()?)?;
        }
        Ok(StopSignal { flag, read })
    }

    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Empties the pipe (bounded; the handler writes one byte per signal).
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        for _ in 0..16 {
            match (&self.read).read(&mut buf) {
                Ok(n) if n > 0 => continue,
                _ => break,
            }
        }
    }
}

/// The descriptors of one turn's wait.
#[derive(Default)]
pub struct PollSet {
    fds: Vec<libc::pollfd>,
}

impl PollSet {
    pub fn clear(&mut self) {
        self.fds.clear();
    }

    /// Adds `fd` for `events` (POLLIN, POLLOUT); returns its index for `ready`.
    pub fn add(&mut self, fd: RawFd, events: libc::c_short) -> usize {
        self.fds.push(libc::pollfd {
            fd,
            events,
            revents: 0,
        });
        self.fds.len() - 1
    }

    /// Blocks until a descriptor is ready or `timeout_ms` passed (a signal ends it too).
    pub fn wait(&mut self, timeout_ms: i32) {
        if self.fds.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(timeout_ms.max(0) as u64));
            return;
        }
        // Errors (EINTR: a signal) end the wait early, which is all they can do here.
        let _ = sys::poll(&mut self.fds, timeout_ms);
    }

    /// As [`Self::wait`], for up to `timeout_ns` nanoseconds.
    pub fn wait_ns(&mut self, timeout_ns: u64) {
        if self.fds.is_empty() {
            std::thread::sleep(std::time::Duration::from_nanos(timeout_ns));
            return;
        }
        let _ = sys::ppoll(&mut self.fds, Some(timeout_ns));
    }

    /// Whether the descriptor at `index` had events in the last wait.
    pub fn ready(&self, index: usize) -> bool {
        self.fds.get(index).is_some_and(|p| p.revents != 0)
    }
}

/// A punt queue's part in a wait: arms its wakeup and adds its eventfd to `set`.
/// Returns the index to give to [`finish_punt`], and whether the queue is empty (if not,
/// the wait must not block).
pub fn arm_punt(set: &mut PollSet, queue: &Channel) -> (Option<usize>, bool) {
    let empty = queue.prepare_wait();
    let index = queue.wakeup_fd().map(|fd| set.add(fd, libc::POLLIN));
    (index, empty)
}

/// After the wait: disarms the queue's wakeup and clears its eventfd if it fired.
pub fn finish_punt(set: &PollSet, queue: &Channel, index: Option<usize>) {
    queue.finish_wait_readable(index.is_some_and(|i| set.ready(i)));
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn sleeps_until_the_earliest_deadline_rounded_up_and_capped() {
        let now = 5_000 * MS;
        // Nothing due: the cap.
        assert_eq!(timeout_ms(now, [None, None], IDLE_CAP_MS), 1000);
        assert_eq!(timeout_ms(now, [], 250), 250);
        // The earliest wins, whatever the order.
        assert_eq!(
            timeout_ms(now, [Some(now + 300 * MS), None, Some(now + 20 * MS)], 1000),
            20
        );
        // A deadline between two milliseconds is not slept short.
        assert_eq!(timeout_ms(now, [Some(now + 2 * MS + 1)], 1000), 3);
        assert_eq!(timeout_ms(now, [Some(now + 1)], 1000), 1);
        // Due now or overdue: do not sleep.
        assert_eq!(timeout_ms(now, [Some(now)], 1000), 0);
        assert_eq!(
            timeout_ms(now, [Some(now - 7 * MS), Some(now + MS)], 1000),
            0
        );
        // Far away: the cap.
        assert_eq!(timeout_ms(now, [Some(now + 3_600_000 * MS)], 1000), 1000);
        assert_eq!(timeout_ms(now, [Some(u64::MAX)], u64::MAX), i32::MAX);
    }

    #[test]
    fn nanosecond_timeouts_are_exact_and_capped() {
        let now = 5_000 * MS;
        assert_eq!(timeout_ns(now, [None], 1000), 1000 * MS);
        assert_eq!(
            timeout_ns(now, [Some(now + 2 * MS + 1), Some(now + 9 * MS)], 1000),
            2 * MS + 1
        );
        assert_eq!(timeout_ns(now, [Some(now - 1)], 1000), 0);
        // A wait of 300 us with nothing ready returns after about that, not a whole ms.
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut set = PollSet::default();
        set.add(a.as_raw_fd(), libc::POLLIN);
        let t = std::time::Instant::now();
        set.wait_ns(300_000);
        let took = t.elapsed();
        assert!(took >= std::time::Duration::from_micros(300), "{took:?}");
        assert!(!set.ready(0));
    }

    #[test]
    fn a_punt_queue_wakes_a_sleeping_wait_only_when_armed() {
        let q = Channel::with_wakeup(4);
        let mut set = PollSet::default();
        let (i, empty) = arm_punt(&mut set, &q);
        assert!(empty);
        // A producer on another thread punts while we wait without a deadline: the
        // eventfd ends the wait.
        let q = std::sync::Arc::new(q);
        let producer = {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut b = dataplane::PacketBuf::new();
                assert!(b.fill(b"ike"));
                assert!(q.send_swap(&mut b));
                q.notify();
            })
        };
        set.wait(-1);
        producer.join().unwrap();
        assert!(set.ready(i.unwrap()));
        finish_punt(&set, &q, i);
        assert_eq!(q.len(), 1);
        // Cleared: a wait with something queued must not block (the caller checks
        // `empty`), and the eventfd no longer fires on its own.
        set.clear();
        let (i, empty) = arm_punt(&mut set, &q);
        assert!(!empty);
        set.wait(0);
        assert!(!set.ready(i.unwrap()));
        finish_punt(&set, &q, i);
    }
}
