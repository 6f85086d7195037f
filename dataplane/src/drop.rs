//! Why the dataplane dropped a packet: one counter per reason.
//!
//! The list is stable: counters are indexed by [`DropReason::index`], names appear
//! in `show stats` and in metrics, so new reasons are appended, never reordered.

macro_rules! drop_reasons {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal,)*) => {
        /// A reason to drop a packet.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $($(#[doc = $doc])* $variant,)*
        }

        impl DropReason {
            /// Every reason, in counter-index order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];

            /// Stable snake_case name for stats output and metrics.
            pub const fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                }
            }
        }
    };
}

drop_reasons! {
    /// Shorter than a header or a length field says.
    Truncated = "truncated",
    /// Outer header invalid (version, lengths, IPv4 header checksum).
    MalformedOuter = "malformed_outer",
    /// Outer packet is a fragment; ESP reassembly is not done here.
    Fragment = "fragment",
    /// No inbound SA for the SPI, and none had it recently (see `sa_deleted`):
    /// reported to the control plane per (peer, SPI), RFC 7296 §3.10.1.
    NoSa = "no_sa",
    /// SPI does not belong to the SA the packet was given to.
    BadSpi = "bad_spi",
    /// Sequence number already seen (RFC 4303 §3.4.3).
    Replayed = "replayed",
    /// Sequence number left of the replay window.
    ReplayTooOld = "replay_too_old",
    /// ICV did not verify.
    AuthFailed = "auth_failed",
    /// ESP padding is not 1, 2, 3... or longer than the payload.
    BadPadding = "bad_padding",
    /// ESP Next Header is not IPv4/IPv6 in tunnel mode.
    BadNextHeader = "bad_next_header",
    /// An ESP dummy packet (Next Header 59, RFC 4303 §2.6): dropped by design.
    DummyPacket = "dummy_packet",
    /// Inner (plaintext) IP header invalid.
    BadInnerHeader = "bad_inner_header",
    /// Outer CE with a Not-ECT inner packet (RFC 6040 §4.2).
    EcnCeNotEct = "ecn_ce_not_ect",
    /// Inner packet does not match the SA's traffic selectors.
    PolicyMismatch = "policy_mismatch",
    /// Outbound sequence numbers used up without ESN: the SA must be rekeyed.
    SeqExhausted = "seq_exhausted",
    /// Not enough headroom/tailroom in the buffer for the outer header or trailer.
    NoBufferRoom = "no_buffer_room",
    /// Encapsulated packet would exceed the IP length field or the MTU.
    TooBig = "too_big",
    /// No outbound policy (SPD entry) matches the plaintext packet.
    NoPolicy = "no_policy",
    /// No route to the outer destination.
    NoRoute = "no_route",
    /// No neighbour (ARP/ND) entry for the next hop.
    NoNeighbor = "no_neighbor",
    /// Not ESP, not IKE, not for the gateway.
    NotForUs = "not_for_us",
    /// Punt ring to the control plane was full.
    PuntRingFull = "punt_ring_full",
    /// Transmit queue full.
    TxFull = "tx_full",
    /// NAT-keepalive (RFC 3948 §2.3): consumed, nothing to forward.
    NatKeepalive = "nat_keepalive",
    /// TTL / hop limit would reach 0 when forwarding (RFC 1812 §5.3.1).
    TtlExpired = "ttl_expired",
    /// A DISCARD policy matched the plaintext packet (RFC 4301 §4.4.1).
    PolicyDiscard = "policy_discard",
    /// Not IPv4, IPv6 or ARP, or an ARP/ICMP message the gateway does not act on.
    Unsupported = "unsupported",
    /// ESP for an inbound SA removed recently (deleted, or the old SA of a
    /// rekey after its grace time): the peer is still using it, or the packet
    /// was in flight. Not answered with INVALID_SPI (that is for `no_sa`).
    SaDeleted = "sa_deleted",
    /// The ring to the worker that owns the inbound SA was full (several workers).
    HandoffRingFull = "handoff_ring_full",
    /// A trap policy matched (RFC 4301 §4.4.1 ACQUIRE-like): no SA yet,
    /// negotiating; the control plane was told (rate-limited) to initiate.
    Held = "held",
    /// Handed to this worker as the owner of an inbound SA that was replaced
    /// before it got there (same SPI, new runtime state owned by another
    /// worker): one worker keeps each replay window. Also plaintext handed to
    /// the worker that encrypts for its outbound SA when, by the time it got
    /// there, no policy protects it any more.
    HandoffStale = "handoff_stale",
    /// ESP that authenticated on a worker while another worker claimed the
    /// inbound SA first (the first-receiver rule, at an SA's first packets):
    /// dropped, since one worker keeps each replay window. Workers claim an SA
    /// only with a packet that authenticated, so forged ESP cannot pick its owner.
    ClaimLost = "claim_lost",
}

impl DropReason {
    /// Number of reasons (length of a per-reason counter array).
    pub const COUNT: usize = Self::ALL.len();

    /// Index into a per-reason counter array.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_dense_and_names_unique() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        // The first entries are pinned: counters are exported by index.
        assert_eq!(DropReason::Truncated.index(), 0);
        assert_eq!(DropReason::AuthFailed.name(), "auth_failed");
    }
}
