//! Pcap files for gateway tests (libpcap classic format).
#![allow(dead_code)]

pub fn pcap_file(packets: &[Vec<u8>]) -> Vec<u8> {
    // libpcap classic format: magic, v2.4, tz, sigfigs, snaplen, LINKTYPE_ETHERNET.
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0u8; 8]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    for (i, p) in packets.iter().enumerate() {
        f.extend_from_slice(&(i as u32).to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(p);
    }
    f
}

/// Packet bytes of every record (either byte order, µs or ns timestamps).
pub fn pcap_records(f: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if f.len() < 24 {
        return out;
    }
    let be = matches!(&f[..4], [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d]);
    let rd = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if be { u32::from_be_bytes(a) } else { u32::from_le_bytes(a) }
    };
    let mut off = 24;
    while off + 16 <= f.len() {
        let caplen = rd(&f[off + 8..off + 12]) as usize;
        if off + 16 + caplen > f.len() {
            break;
        }
        out.push(f[off + 16..off + 16 + caplen].to_vec());
        off += 16 + caplen;
    }
    out
}
