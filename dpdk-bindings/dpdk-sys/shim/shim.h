/* Header for the C shim: DPDK's `static inline` functions and macros re-exported as real
 * symbols so Rust can call them. Every function keeps DPDK's semantics; see rte_*.h. */
#ifndef DPDK_SHIM_H
#define DPDK_SHIM_H

#include <stdint.h>
#include <stdio.h>
#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_log.h>
#include <rte_cycles.h>
#include <rte_pause.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ethdev.h>
#include <rte_bus_vdev.h>

int dpdk_shim_errno(void);
void dpdk_shim_set_errno(int e);
unsigned dpdk_shim_lcore_id(void);
void dpdk_shim_pause(void);
uint64_t dpdk_shim_get_tsc_cycles(void);

uint16_t dpdk_shim_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t dpdk_shim_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
/* Link state without the bit-field layout of struct rte_eth_link (it differs between LTS). */
int dpdk_shim_eth_link(uint16_t port, uint32_t *speed_mbps, int *up, int *full_duplex);
/* RSS hash functions we ask for (IP + UDP + TCP); masked by the caller with the PMD's capa. */
uint64_t dpdk_shim_rss_hf_default(void);

struct rte_mbuf *dpdk_shim_pktmbuf_alloc(struct rte_mempool *mp);
int dpdk_shim_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n);
void dpdk_shim_pktmbuf_free(struct rte_mbuf *m);
char *dpdk_shim_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *dpdk_shim_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
char *dpdk_shim_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
int dpdk_shim_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
void *dpdk_shim_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t dpdk_shim_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t dpdk_shim_pktmbuf_tailroom(const struct rte_mbuf *m);
uint16_t dpdk_shim_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t dpdk_shim_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t dpdk_shim_pktmbuf_nb_segs(const struct rte_mbuf *m);
uint16_t dpdk_shim_pktmbuf_port(const struct rte_mbuf *m);
uint32_t dpdk_shim_pktmbuf_rss_hash(const struct rte_mbuf *m);
void dpdk_shim_pktmbuf_reset(struct rte_mbuf *m);

unsigned dpdk_shim_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n);
unsigned dpdk_shim_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n);
unsigned dpdk_shim_ring_count(const struct rte_ring *r);

#endif
