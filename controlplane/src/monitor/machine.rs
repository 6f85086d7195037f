//! The per-connection monitor state machine, sans-IO: [`Machine::handle_timeout`]
//! says when to send a probe and which outstanding ones are lost,
//! [`Machine::handle_reply`] takes the replies, and both return the state
//! changes and actions; the caller does the I/O and logs.
//!
//! A probe is lost when no reply arrived within one interval (a late reply is
//! ignored). States:
//!
//! A reply also settles the older probes still outstanding: the path works
//! now, so they are not counted as lost in a row.
//!
//! | state        | on reply                                   | on loss                                 |
//! |--------------|--------------------------------------------|-----------------------------------------|
//! | `unknown`    | → `up`                                     | stays (the tunnel may not be up yet)    |
//! | `up`         | stays                                      | → `degraded` (→ `down` if threshold 1)  |
//! | `degraded`   | → `up`                                     | `threshold` in a row → `down` + action  |
//! | `down`       | → `recovering` (→ `up` if threshold 1)     | wait-recover: re-negotiate again, backing off (below) |
//! | `recovering` | `threshold` in a row → `up` (+ fail-back)  | → `down` (no new action)                |
//!
//! Returning needs as many replies in a row as failing needs losses, so a
//! flapping path does not move the traffic back and forth at every probe.
//!
//! wait-recover backs off while the tunnel stays down: it re-negotiates when
//! it goes down, then after `threshold` more lost probes, then 2×, 4×, …
//! `threshold`, at most [`MAX_BACKOFF`] × `threshold` apart (interval 2 s,
//! threshold 3: at 6 s, 12 s, 24 s, 48 s, …, then every 192 s), so a peer
//! that is gone for hours is not sent an IKE_SA_INIT every few seconds.
//! Back in `up`, the next outage starts again at `threshold`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{Monitor, MonitorAction};

/// wait-recover's longest gap between re-negotiations, in `threshold`s of lost probes.
pub const MAX_BACKOFF: u32 = 32;

/// What the machine needs from `[connection.monitor]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub interval: Duration,
    /// Lost probes in a row that mean "down" (and replies in a row that mean "up" again).
    pub threshold: u32,
    pub action: MonitorAction,
}

impl From<&Monitor> for Settings {
    fn from(m: &Monitor) -> Self {
        Settings { interval: m.interval, threshold: m.threshold.max(1), action: m.action }
    }
}

/// Where a monitored tunnel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MonitorState {
    /// No reply seen yet.
    Unknown,
    Up,
    /// Some probes lost, fewer than the threshold.
    Degraded,
    /// `threshold` probes lost in a row: the action was taken.
    Down,
    /// Replies again after `down`, fewer than the threshold in a row.
    Recovering,
}

impl MonitorState {
    pub fn name(self) -> &'static str {
        match self {
            MonitorState::Unknown => "unknown",
            MonitorState::Up => "up",
            MonitorState::Degraded => "degraded",
            MonitorState::Down => "down",
            MonitorState::Recovering => "recovering",
        }
    }
}

impl std::fmt::Display for MonitorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the caller must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Act {
    /// wait-recover: delete and re-create the connection's IKE SA.
    Renegotiate,
    /// fail-over: move the connection's outbound policies to the backup.
    FailOver,
    /// fail-over, primary healthy again: move them back.
    FailBack,
}

/// One state change, for the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: MonitorState,
    pub to: MonitorState,
    /// Probes lost in a row when it happened.
    pub lost_in_row: u32,
    /// Replies in a row when it happened.
    pub replies_in_row: u32,
}

/// One output of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Send echo request `seq` now.
    Probe { seq: u16 },
    Changed(Transition),
    Act(Act),
}

/// The monitor of one connection.
#[derive(Debug, Clone)]
pub struct Machine {
    settings: Settings,
    state: MonitorState,
    next_probe: Instant,
    /// Outstanding probes: (seq, sent at), oldest first.
    pending: VecDeque<(u16, Instant)>,
    seq: u16,
    lost_in_row: u32,
    replies_in_row: u32,
    failed_over: bool,
    /// wait-recover while down: lost probes since the last re-negotiation, and
    /// how many it waits for before the next one.
    since_renegotiation: u32,
    renegotiation_gap: u32,
    sent: u64,
    received: u64,
    last_rtt: Option<Duration>,
}

impl Machine {
    /// A machine whose first probe is due at `now`.
    pub fn new(settings: Settings, now: Instant) -> Self {
        Machine {
            settings: Settings { threshold: settings.threshold.max(1), ..settings },
            state: MonitorState::Unknown,
            next_probe: now,
            pending: VecDeque::new(),
            seq: 0,
            lost_in_row: 0,
            replies_in_row: 0,
            failed_over: false,
            since_renegotiation: 0,
            renegotiation_gap: 0,
            sent: 0,
            received: 0,
            last_rtt: None,
        }
    }

    pub fn state(&self) -> MonitorState {
        self.state
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether the connection's traffic is on its backup now.
    pub fn failed_over(&self) -> bool {
        self.failed_over
    }

    /// Probes sent and replies received since start.
    pub fn counts(&self) -> (u64, u64) {
        (self.sent, self.received)
    }

    pub fn lost_in_row(&self) -> u32 {
        self.lost_in_row
    }

    pub fn last_rtt(&self) -> Option<Duration> {
        self.last_rtt
    }

    /// When [`Self::handle_timeout`] has work next.
    pub fn poll_timeout(&self) -> Instant {
        let expiry = self.pending.front().map(|&(_, at)| at + self.settings.interval);
        expiry.map_or(self.next_probe, |e| e.min(self.next_probe))
    }

    /// Expire lost probes, then send the next one if it is due.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        self.expire(now, &mut out);
        if now >= self.next_probe {
            self.seq = self.seq.wrapping_add(1);
            self.pending.push_back((self.seq, now));
            self.sent += 1;
            out.push(Output::Probe { seq: self.seq });
            // Keep the cadence; after a stall (a slow thread), restart it from now.
            self.next_probe += self.settings.interval;
            if self.next_probe <= now {
                self.next_probe = now + self.settings.interval;
            }
        }
        out
    }

    /// An echo reply with `seq` arrived at `now` (unknown ones, and ones that
    /// came more than an interval after their probe, are ignored). Call it
    /// for the replies received so far before [`Self::handle_timeout`], so a
    /// caller that was held up does not expire probes whose reply is waiting.
    pub fn handle_reply(&mut self, seq: u16, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        let Some(i) = self.pending.iter().position(|&(s, _)| s == seq) else { return out };
        // `now` is when the reply arrived; handled late (a busy caller), it
        // still counts if it arrived within the interval, and not otherwise.
        if self.pending.get(i).is_some_and(|&(_, sent)| now > sent + self.settings.interval) {
            return out;
        }
        // A reply to a newer probe shows the path works now: older unanswered
        // probes (e.g. sent before the SA existed) no longer count as lost.
        self.pending.drain(..i);
        let Some((_, sent)) = self.pending.pop_front() else { return out };
        self.received += 1;
        self.last_rtt = Some(now.saturating_duration_since(sent));
        self.replies_in_row = self.replies_in_row.saturating_add(1);
        self.lost_in_row = 0;
        let t = self.settings.threshold;
        match self.state {
            MonitorState::Unknown | MonitorState::Degraded => self.go(MonitorState::Up, &mut out),
            MonitorState::Up => {}
            MonitorState::Down | MonitorState::Recovering if self.replies_in_row >= t => {
                self.go(MonitorState::Up, &mut out);
                if self.failed_over {
                    self.failed_over = false;
                    out.push(Output::Act(Act::FailBack));
                }
            }
            MonitorState::Down => self.go(MonitorState::Recovering, &mut out),
            MonitorState::Recovering => {}
        }
        out
    }

    /// Probes unanswered for an interval are lost.
    fn expire(&mut self, now: Instant, out: &mut Vec<Output>) {
        while let Some(&(_, at)) = self.pending.front() {
            if at + self.settings.interval > now {
                break;
            }
            self.pending.pop_front();
            self.lost(out);
        }
    }

    fn lost(&mut self, out: &mut Vec<Output>) {
        self.lost_in_row = self.lost_in_row.saturating_add(1);
        self.replies_in_row = 0;
        let t = self.settings.threshold;
        match self.state {
            MonitorState::Unknown => {}
            MonitorState::Up | MonitorState::Degraded if self.lost_in_row >= t => {
                self.go(MonitorState::Down, out);
                self.act(out);
            }
            MonitorState::Up => self.go(MonitorState::Degraded, out),
            MonitorState::Degraded => {}
            MonitorState::Recovering => self.go(MonitorState::Down, out),
            MonitorState::Down if self.settings.action == MonitorAction::WaitRecover => {
                // Still dead: re-negotiate again, each time waiting twice as long.
                self.since_renegotiation = self.since_renegotiation.saturating_add(1);
                if self.since_renegotiation >= self.renegotiation_gap {
                    out.push(Output::Act(Act::Renegotiate));
                    self.since_renegotiation = 0;
                    self.renegotiation_gap = self.renegotiation_gap.saturating_mul(2).min(t.saturating_mul(MAX_BACKOFF));
                }
            }
            MonitorState::Down => {}
        }
    }

    fn act(&mut self, out: &mut Vec<Output>) {
        match self.settings.action {
            MonitorAction::WaitRecover => {
                out.push(Output::Act(Act::Renegotiate));
                self.since_renegotiation = 0;
                self.renegotiation_gap = self.settings.threshold;
            }
            MonitorAction::FailOver if !self.failed_over => {
                self.failed_over = true;
                out.push(Output::Act(Act::FailOver));
            }
            MonitorAction::FailOver => {}
        }
    }

    fn go(&mut self, to: MonitorState, out: &mut Vec<Output>) {
        let from = std::mem::replace(&mut self.state, to);
        out.push(Output::Changed(Transition { from, to, lost_in_row: self.lost_in_row, replies_in_row: self.replies_in_row }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: Duration = Duration::from_millis(200);

    fn machine(action: MonitorAction, threshold: u32) -> (Machine, Instant) {
        let t0 = Instant::now();
        (Machine::new(Settings { interval: I, threshold, action }, t0), t0)
    }

    /// Runs the machine over `steps` probes on a virtual clock: `true` = the
    /// probe is answered 10 ms after it was sent. Returns the state after each
    /// probe's fate is known, and every state change and action.
    fn run(m: &mut Machine, t0: Instant, steps: &[bool]) -> (Vec<MonitorState>, Vec<Output>) {
        let mut states = Vec::new();
        let mut events = Vec::new();
        for (i, &answered) in steps.iter().enumerate() {
            events.extend(step(m, t0 + I * i as u32, answered));
            states.push(m.state());
        }
        (states, events)
    }

    /// One interval from `now`: the probe due, its reply if `answered`, and
    /// its loss one interval later if not.
    fn step(m: &mut Machine, now: Instant, answered: bool) -> Vec<Output> {
        let out = m.handle_timeout(now);
        let seq = out.iter().find_map(|o| match o {
            Output::Probe { seq } => Some(*seq),
            _ => None,
        });
        let mut events: Vec<Output> = out.into_iter().filter(|o| !matches!(o, Output::Probe { .. })).collect();
        let seq = seq.expect("a probe is due every interval");
        if answered {
            events.extend(m.handle_reply(seq, now + Duration::from_millis(10)));
        }
        m.expire(now + I, &mut events);
        events
    }

    fn acts(events: &[Output]) -> Vec<Act> {
        events.iter().filter_map(|o| if let Output::Act(a) = o { Some(*a) } else { None }).collect()
    }

    use MonitorState::*;

    #[test]
    fn fail_over_after_threshold_losses_and_back_after_threshold_replies() {
        let (mut m, t0) = machine(MonitorAction::FailOver, 3);
        let (states, events) = run(&mut m, t0, &[true, true, false, false, false, false, true, true, true, true]);
        assert_eq!(states, [Up, Up, Degraded, Degraded, Down, Down, Recovering, Recovering, Up, Up]);
        assert_eq!(acts(&events), [Act::FailOver, Act::FailBack]);
        assert!(!m.failed_over());
        assert_eq!(m.counts(), (10, 6));
        assert_eq!(m.last_rtt(), Some(Duration::from_millis(10)));
    }

    #[test]
    fn a_single_loss_only_degrades() {
        let (mut m, t0) = machine(MonitorAction::FailOver, 3);
        let (states, events) = run(&mut m, t0, &[true, false, false, true, false, true]);
        assert_eq!(states, [Up, Degraded, Degraded, Up, Degraded, Up]);
        assert!(acts(&events).is_empty());
    }

    #[test]
    fn nothing_happens_before_the_first_reply() {
        let (mut m, t0) = machine(MonitorAction::WaitRecover, 2);
        let (states, events) = run(&mut m, t0, &[false, false, false, false, true]);
        assert_eq!(states, [Unknown, Unknown, Unknown, Unknown, Up]);
        assert!(acts(&events).is_empty());
    }

    #[test]
    fn wait_recover_renegotiates_and_retries_while_down() {
        let (mut m, t0) = machine(MonitorAction::WaitRecover, 2);
        let (states, events) = run(&mut m, t0, &[true, false, false, false, false, true, false, true, true]);
        assert_eq!(states, [Up, Degraded, Down, Down, Down, Recovering, Down, Recovering, Up]);
        // At down (2 lost), again after 2 more; a loss while recovering does not act.
        assert_eq!(acts(&events), [Act::Renegotiate, Act::Renegotiate]);
        assert!(!m.failed_over(), "wait-recover never fails over");
    }

    #[test]
    fn wait_recover_backs_off_while_down() {
        // Which of `losses` lost probes in a row (1-based) made it re-negotiate.
        fn renegotiations(m: &mut Machine, t0: Instant, losses: u32) -> Vec<u32> {
            (1..=losses).filter(|k| acts(&step(m, t0 + I * *k, false)).contains(&Act::Renegotiate)).collect()
        }
        for t in [1u32, 3] {
            let (mut m, t0) = machine(MonitorAction::WaitRecover, t);
            assert!(acts(&step(&mut m, t0, true)).is_empty());
            // At down (t), then gaps t, 2t, 4t, 8t, 16t, then MAX_BACKOFF·t (32t) each.
            let want: Vec<u32> = [1, 2, 4, 8, 16, 32, 64, 96, 128, 160, 192].iter().map(|k| k * t).collect();
            assert_eq!(renegotiations(&mut m, t0, 200 * t), want, "threshold {t}");
        }
        // Up again (threshold 1), then down: the back-off starts over at the threshold.
        let (mut m, t0) = machine(MonitorAction::WaitRecover, 1);
        step(&mut m, t0, true);
        assert_eq!(renegotiations(&mut m, t0, 8), [1, 2, 4, 8]);
        step(&mut m, t0 + I * 9, true);
        assert_eq!(m.state(), MonitorState::Up);
        assert_eq!(renegotiations(&mut m, t0 + I * 9, 3), [1, 2]);
    }

    #[test]
    fn threshold_one_goes_straight_down_and_up() {
        let (mut m, t0) = machine(MonitorAction::FailOver, 1);
        let (states, events) = run(&mut m, t0, &[true, false, true]);
        assert_eq!(states, [Up, Down, Up]);
        assert_eq!(acts(&events), [Act::FailOver, Act::FailBack]);
    }

    #[test]
    fn late_and_unknown_replies_are_ignored() {
        let (mut m, t0) = machine(MonitorAction::FailOver, 3);
        let out = m.handle_timeout(t0);
        assert_eq!(out, [Output::Probe { seq: 1 }]);
        assert!(m.handle_reply(99, t0).is_empty(), "never sent");
        // Expired after one interval: the reply that comes later does not count.
        let out = m.handle_timeout(t0 + I);
        assert_eq!(out, [Output::Probe { seq: 2 }], "lost while unknown: no event");
        assert!(m.handle_reply(1, t0 + I).is_empty());
        assert_eq!(m.counts(), (2, 0));
        // Probe 2's reply arrived one interval and a millisecond after it left:
        // late, even though it is still outstanding when handled.
        assert!(m.handle_reply(2, t0 + 2 * I + Duration::from_millis(1)).is_empty());
        assert_eq!(m.counts(), (2, 0));
        assert_eq!(m.poll_timeout(), t0 + 2 * I);
    }

    #[test]
    fn every_change_is_reported_with_its_counts() {
        let (mut m, t0) = machine(MonitorAction::FailOver, 2);
        let (_, events) = run(&mut m, t0, &[true, false, false]);
        let changes: Vec<_> = events.iter().filter_map(|o| if let Output::Changed(t) = o { Some(*t) } else { None }).collect();
        assert_eq!(
            changes,
            [
                Transition { from: Unknown, to: Up, lost_in_row: 0, replies_in_row: 1 },
                Transition { from: Up, to: Degraded, lost_in_row: 1, replies_in_row: 0 },
                Transition { from: Degraded, to: Down, lost_in_row: 2, replies_in_row: 0 },
            ]
        );
    }

    #[test]
    fn a_newer_reply_settles_older_probes() {
        let (mut m, t0) = machine(MonitorAction::FailOver, 2);
        let ms = Duration::from_millis;
        m.handle_timeout(t0);
        m.handle_reply(1, t0 + ms(5));
        // Probe 2 leaves 30 ms late (a slow tick) and is not answered; probe 3
        // leaves on time, before probe 2 expires, and is answered.
        assert_eq!(m.handle_timeout(t0 + I + ms(30)), [Output::Probe { seq: 2 }]);
        assert_eq!(m.handle_timeout(t0 + 2 * I), [Output::Probe { seq: 3 }]);
        assert!(m.handle_reply(3, t0 + 2 * I + ms(5)).is_empty());
        // Probe 2's deadline passes: it was settled by probe 3's reply.
        assert!(m.handle_timeout(t0 + 2 * I + ms(40)).is_empty());
        assert_eq!((m.state(), m.lost_in_row()), (Up, 0));
        assert_eq!(m.counts(), (3, 2));
    }

    #[test]
    fn a_stalled_caller_does_not_burst_probes() {
        let (mut m, t0) = machine(MonitorAction::FailOver, 3);
        m.handle_timeout(t0);
        let out = m.handle_timeout(t0 + 10 * I);
        assert_eq!(out.iter().filter(|o| matches!(o, Output::Probe { .. })).count(), 1);
        assert_eq!(m.poll_timeout(), t0 + 11 * I);
    }
}
