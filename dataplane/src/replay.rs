//! RFC 4303 3.4.3 anti-replay window with Appendix A extended sequence numbers.

/// Why a sequence number was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// Already received inside the window.
    Duplicate,
    /// Left of the window.
    TooOld,
    /// RFC 4303 2.2: sequence number 0 is never sent.
    Zero,
}
