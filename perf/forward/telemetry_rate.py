#!/usr/bin/python3
"""Packet rate of a DPDK port over a window, read from the process's telemetry socket.

usage: telemetry_rate.py RUNTIME_DIR PORT WARMUP_S WINDOW_S
Waits for RUNTIME_DIR/dpdk_telemetry.v2, sleeps WARMUP_S, reads /ethdev/stats,PORT twice
WINDOW_S apart and prints "<opackets per second> <ipackets per second of port 0>".
"""
import json
import os
import socket
import sys
import time


def query(path, cmd):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    s.recv(16384)  # greeting: version, pid, max_output_len
    s.send(cmd.encode())
    reply = json.loads(s.recv(1 << 20).decode())
    s.close()
    return reply


def stats(path, port):
    return query(path, f"/ethdev/stats,{port}")["/ethdev/stats"]


def main():
    rundir, port, warmup, window = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    sock = os.path.join(rundir, "dpdk_telemetry.v2")
    for _ in range(300):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    else:
        sys.exit(f"no telemetry socket at {sock}")
    time.sleep(warmup)
    t0, a0, i0 = time.monotonic(), stats(sock, port), stats(sock, 0)
    time.sleep(window)
    t1, a1, i1 = time.monotonic(), stats(sock, port), stats(sock, 0)
    dt = t1 - t0
    print(f"{(a1['opackets'] - a0['opackets']) / dt:.0f} {(i1['ipackets'] - i0['ipackets']) / dt:.0f}")


if __name__ == "__main__":
    main()
