//! ARP for IPv4 over Ethernet (RFC 826). Other hardware/protocol types are rejected.

use core::net::Ipv4Addr;

use super::ethernet::MacAddr;
use super::{be16, put16, Error, Result};

/// The ARP opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// 1.
    Request,
    /// 2.
    Reply,
    /// Anything else.
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => ArpOperation::Unknown(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(o: ArpOperation) -> u16 {
        match o {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(v) => v,
        }
    }
}

/// ARP packet length for Ethernet + IPv4.
pub const PACKET_LEN: usize = 28;

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// A view without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Validate length and that this is Ethernet (1) / IPv4 (0x0800) with 6/4-byte addresses.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        if be16(b, 0) != 1 || be16(b, 2) != 0x0800 || b[4] != 6 || b[5] != 4 {
            return Err(Error::Malformed);
        }
        Ok(ArpPacket { buffer })
    }

    /// Hardware type (1 = Ethernet).
    pub fn hardware_type(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    /// Protocol type (0x0800 = IPv4).
    pub fn protocol_type(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// Opcode.
    pub fn operation(&self) -> ArpOperation {
        be16(self.buffer.as_ref(), 6).into()
    }

    /// Sender hardware address.
    pub fn sender_hardware_addr(&self) -> MacAddr {
        self.mac_at(8)
    }

    /// Sender protocol address.
    pub fn sender_protocol_addr(&self) -> Ipv4Addr {
        self.ip_at(14)
    }

    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> MacAddr {
        self.mac_at(18)
    }

    /// Target protocol address.
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        self.ip_at(24)
    }

    fn mac_at(&self, at: usize) -> MacAddr {
        MacAddr(super::bytes_at(self.buffer.as_ref(), at))
    }

    fn ip_at(&self, at: usize) -> Ipv4Addr {
        Ipv4Addr::from(super::bytes_at::<4>(self.buffer.as_ref(), at))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Write the fixed Ethernet/IPv4 header fields and the opcode.
    pub fn set_header(&mut self, op: ArpOperation) {
        let b = self.buffer.as_mut();
        put16(b, 0, 1);
        put16(b, 2, 0x0800);
        b[4] = 6;
        b[5] = 4;
        put16(b, 6, op.into());
    }

    /// Set sender hardware + protocol address.
    pub fn set_sender(&mut self, mac: MacAddr, ip: Ipv4Addr) {
        let b = self.buffer.as_mut();
        b[8..14].copy_from_slice(&mac.0);
        b[14..18].copy_from_slice(&ip.octets());
    }

    /// Set target hardware + protocol address.
    pub fn set_target(&mut self, mac: MacAddr, ip: Ipv4Addr) {
        let b = self.buffer.as_mut();
        b[18..24].copy_from_slice(&mac.0);
        b[24..28].copy_from_slice(&ip.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_then_parse() {
        let mut buf = [0u8; PACKET_LEN];
        let mut a = ArpPacket::new_unchecked(&mut buf[..]);
        a.set_header(ArpOperation::Request);
        a.set_sender(MacAddr([2, 0, 0, 0, 0, 1]), Ipv4Addr::new(198, 51, 100, 1));
        a.set_target(MacAddr::default(), Ipv4Addr::new(198, 51, 100, 2));
        // Wire layout from RFC 826: htype 1, ptype 0x0800, hlen 6, plen 4, op 1.
        assert_eq!(&buf[..8], &[0, 1, 8, 0, 6, 4, 0, 1]);
        let a = ArpPacket::new_checked(&buf[..]).expect("valid");
        assert_eq!(a.operation(), ArpOperation::Request);
        assert_eq!(a.sender_protocol_addr(), Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(a.target_protocol_addr(), Ipv4Addr::new(198, 51, 100, 2));
        assert_eq!(a.sender_hardware_addr(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!((a.hardware_type(), a.protocol_type()), (1, 0x0800));
        assert_eq!(ArpPacket::new_checked(&buf[..27]).err(), Some(Error::Truncated));
        buf[5] = 16;
        assert_eq!(ArpPacket::new_checked(&buf[..]).err(), Some(Error::Malformed));
    }
}
