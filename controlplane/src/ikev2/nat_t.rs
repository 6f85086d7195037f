//! UDP port 4500 framing helpers for the I/O layer (RFC 3948 §2): IKE
//! messages carry a 4-byte zero non-ESP marker, ESP starts with its non-zero
//! SPI, and a single 0xFF byte is a NAT keepalive.

/// Prepended to IKE messages on port 4500.
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// A NAT-keepalive datagram (RFC 3948 §2.3).
pub const NAT_KEEPALIVE: [u8; 1] = [0xff];

/// What a UDP 4500 payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Udp4500<'a> {
    /// An IKE message, marker removed.
    Ike(&'a [u8]),
    /// An ESP packet (SPI first).
    Esp(&'a [u8]),
    Keepalive,
    /// Too short to be anything (1-3 bytes other than a keepalive).
    Invalid,
}

/// Classifies a UDP 4500 payload (RFC 3948 §2.2).
pub fn classify_udp4500(payload: &[u8]) -> Udp4500<'_> {
    match payload {
        [0xff] => Udp4500::Keepalive,
        [0, 0, 0, 0, rest @ ..] => Udp4500::Ike(rest),
        p if p.len() >= 8 => Udp4500::Esp(p),
        _ => Udp4500::Invalid,
    }
}

/// The datagram payload for an IKE message sent from or to port 4500.
pub fn frame_ike(from_port: u16, to_port: u16, ike: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(ike.len() + 4);
    if from_port == 4500 || to_port == 4500 {
        v.extend_from_slice(&NON_ESP_MARKER);
    }
    v.extend_from_slice(ike);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify() {
        assert_eq!(classify_udp4500(&[0xff]), Udp4500::Keepalive);
        assert_eq!(classify_udp4500(&[0, 0, 0, 0, 1, 2]), Udp4500::Ike(&[1, 2]));
        assert_eq!(classify_udp4500(&[0, 0, 1, 0, 0, 0, 0, 1]), Udp4500::Esp(&[0, 0, 1, 0, 0, 0, 0, 1]));
        assert_eq!(classify_udp4500(&[1, 2]), Udp4500::Invalid);
        assert_eq!(frame_ike(4500, 4500, &[9]), vec![0, 0, 0, 0, 9]);
        assert_eq!(frame_ike(500, 500, &[9]), vec![9]);
    }
}
