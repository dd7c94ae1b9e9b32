//! The IKE counters, declared once: `ctl stats` reports each by construction
//! (`named_counters!`).

crate::named_counters! {
/// Why a received datagram was dropped or refused: one counter each.
pub struct Counters {
    rx => "ike_rx",
    tx => "ike_tx",
    /// Header or payload chain did not parse.
    malformed => "ike_malformed",
    /// Major version other than 2 (requests of a later one are answered with
    /// INVALID_MAJOR_VERSION, RFC 7296 2.5).
    bad_version => "ike_bad_version",
    /// Requests refused for an unknown payload with the critical bit set, answered
    /// with UNSUPPORTED_CRITICAL_PAYLOAD (RFC 7296 2.5).
    unsupported_critical => "ike_unsupported_critical",
    /// No IKE SA with that SPI (or the other SPI did not match).
    unknown_spi => "ike_unknown_spi",
    /// SK payload failed its integrity check or did not decrypt.
    decrypt_failed => "ike_decrypt_failed",
    /// A request whose message ID is neither the next nor the last one.
    msgid_out_of_window => "ike_msgid_out_of_window",
    /// A response to no outstanding request.
    unexpected_response => "ike_unexpected_response",
    /// Retransmitted requests answered from the response cache.
    resent_responses => "ike_resent_responses",
    /// Our requests retransmitted after a timeout.
    retransmits => "ike_retransmits",
    auth_failed => "ike_auth_failed",
    no_proposal => "ike_no_proposal",
    invalid_ke_sent => "ike_invalid_ke_sent",
    cookies_sent => "ike_cookies_sent",
    /// Requests with a cookie that did not verify.
    cookie_invalid => "ike_cookie_invalid",
    /// IKE_SA_INIT requests dropped because of the half-open or total SA limits.
    limit_dropped => "ike_limit_dropped",
    ts_unacceptable => "ike_ts_unacceptable",
    /// Messages that are valid but break the exchange (missing payloads, bad values).
    invalid_syntax => "ike_invalid_syntax",
    /// A key share that failed the RFC 6989 checks.
    bad_key_share => "ike_bad_key_share",
    /// Messages from a peer while the SA was being torn down, or of an exchange
    /// type we do not handle.
    ignored => "ike_ignored",
    ike_up => "ike_up",
    ike_down => "ike_down",
    child_up => "ike_child_up",
    child_down => "ike_child_down",
    half_open_expired => "ike_half_open_expired",
    /// New child SAs refused with NO_ADDITIONAL_SAS: the dataplane is full
    /// (`max_child_sas`).
    child_refused_capacity => "ike_child_refused_capacity",
    /// Virtual IPs asked for when every pool of the connection was leased out
    /// (answered with INTERNAL_ADDRESS_FAILURE, no child SA).
    pool_exhausted => "ike_pool_exhausted",
    /// Established IKE SAs deleted for having had no child SA for
    /// `childless_timeout`.
    childless_deleted => "ike_childless_deleted",
    /// IKE SAs dropped because the peer came back with INITIAL_CONTACT.
    initial_contact_dropped => "ike_initial_contact_dropped",
    /// MOBIKE: the SA's path changed (either end).
    mobike_moves => "mobike_moves",
    /// UPDATE_SA_ADDRESSES we sent / received.
    mobike_updates_sent => "mobike_updates_sent",
    mobike_updates_received => "mobike_updates_received",
    /// Updates refused (NAT with NO_NATS_ALLOWED, unacceptable addresses), either way.
    mobike_refused => "mobike_refused",
    /// Return routability checks that failed (the SAs stayed).
    mobike_rr_failed => "mobike_rr_failed",
    /// An update was due but no address pair was usable.
    mobike_no_path => "mobike_no_path",
    /// Answers to updates overtaken by an address change (ignored, a new one sent).
    mobike_stale_responses => "mobike_stale_responses",
    /// Our address in use went away: outbound moved to the pair being tried before
    /// the answer came.
    mobike_early_switches => "mobike_early_switches",
}
}
