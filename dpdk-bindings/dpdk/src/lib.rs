//! Safe Rust API over DPDK: EAL, mempools, mbufs, ports, queues, rings, lcores.
