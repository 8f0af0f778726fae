//! A region: data primary, secondary, fenced primary or stale region waiting to rejoin.
//!
//! The primary acknowledges a write only under a valid lease and the bounded-staleness
//! throttle, after it is durable; it ships entries to the other regions, which append them in
//! order and confirm. A region's clock may lag the control plane's: `now` here is the
//! region's own clock, and a lease is valid while it is before the expiry the control plane
//! granted on its clock.

use drcheck_properties::Role;

use crate::durable::{Durable, StoreOp};
use crate::effects::Effects;
use crate::entry::{common_prefix, epoch_runs, Epoch, LogEntry, Quarantined, WriteId};
use crate::event::{Event, Refusal};
use crate::message::{Envelope, Heartbeat, Message, NodeId};
use crate::mutant::{Mutant, Mutants};
use crate::time::{Millis, Timing};

/// Most entries one `Append` carries (a lagging secondary catches up over several).
const MAX_BATCH: usize = 512;

/// Most payload bytes one `Append` carries, beyond its first entry (which goes whatever its
/// size). Encoded as JSON, a payload (itself JSON text) grows by its escaped quotes and
/// backslashes, at most twice its size: a batch stays well under the 16 MiB a TCP frame may
/// carry, however large its resources (the endpoint takes bodies of at most 1 MiB).
pub const MAX_BATCH_BYTES: usize = 6 * 1024 * 1024;

/// The entries of `log` from `from` that one `Append` carries: at most [`MAX_BATCH`] of
/// them and [`MAX_BATCH_BYTES`] of payload, and at least one if there is one.
fn batch(log: &[LogEntry], from: usize) -> Vec<LogEntry> {
    batch_within(log, from, MAX_BATCH, MAX_BATCH_BYTES, true)
}

/// The entries of `log` from `from`: at most `count` (and [`MAX_BATCH`]) of them and
/// `bytes` (and [`MAX_BATCH_BYTES`]) of payload; with `one_anyway`, the first goes whatever
/// its size.
fn batch_within(
    log: &[LogEntry],
    from: usize,
    count: usize,
    bytes: usize,
    one_anyway: bool,
) -> Vec<LogEntry> {
    let budget = bytes.min(MAX_BATCH_BYTES);
    let mut used = 0usize;
    log[from.min(log.len())..]
        .iter()
        .take(count.min(MAX_BATCH))
        .enumerate()
        .take_while(|(i, e)| {
            used = used.saturating_add(e.payload.len());
            (*i == 0 && one_anyway) || used <= budget
        })
        .map(|(_, e)| e.clone())
        .collect()
}

/// How far a primary ships to one region ahead of its confirmations (pipelining): at most
/// `entries` entries and `bytes` of payload shipped and not yet confirmed. When nothing is in
/// flight, one entry goes whatever its size. The next batch goes as soon as a write or a
/// confirmation leaves room, without waiting for the previous one's confirmation; a lost
/// batch is shipped again from the last confirmed index on the next tick, as before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Most entries in flight.
    pub entries: u64,
    /// Most payload bytes in flight.
    pub bytes: usize,
}

impl Default for Window {
    /// Four full batches: a lagging secondary catches up at the link's and the disks' pace,
    /// while what waits in a sender's queue for one region stays bounded (24 MiB of payload).
    fn default() -> Self {
        Window {
            entries: 4 * MAX_BATCH as u64,
            bytes: 4 * MAX_BATCH_BYTES,
        }
    }
}

/// Merges the messages a node sends in one go without changing what any receiver ends up
/// knowing: an `Append` with entries that continues the previous message to the same region
/// (an `Append` of the same epoch whose entries end where it starts, its `prev` their last)
/// joins it, within [`MAX_BATCH`] entries and [`MAX_BATCH_BYTES`] (a keep-alive, an empty
/// `Append`, always goes on its own); and of back-to-back `Confirm`s of
/// one epoch to the same region only the last goes. A receiver treats the joined `Append`
/// as the two in a row (it answers the pair with one `Confirm`); confirmations are
/// cumulative (the last says where the log ends now), and a dropped one is a lost message,
/// which the protocol tolerates anyway. Everything else keeps its order. This is how a
/// primary's writes handled together (group commit) travel as one batch, and a secondary's
/// appends committed together are confirmed once.
pub fn coalesce(sends: Vec<Envelope>) -> Vec<Envelope> {
    let mut out: Vec<Envelope> = Vec::with_capacity(sends.len());
    // Per receiver, the position in `out` of the last message to it.
    let mut last: Vec<(NodeId, usize)> = Vec::new();
    for env in sends {
        let previous = last.iter().find(|(to, _)| *to == env.to).map(|&(_, i)| i);
        if let Some(i) = previous {
            if join(&mut out[i], &env) {
                continue;
            }
        }
        out.push(env);
        let at = out.len() - 1;
        match last.iter_mut().find(|(to, _)| *to == out[at].to) {
            Some(slot) => slot.1 = at,
            None => last.push((out[at].to, at)),
        }
    }
    out
}

/// Folds `next` into `into` (the previous message from the same sender to the same
/// receiver), if [`coalesce`] may; `true` if it did.
fn join(into: &mut Envelope, next: &Envelope) -> bool {
    if into.from != next.from {
        return false;
    }
    match (&mut into.msg, &next.msg) {
        (
            Message::Append {
                epoch,
                start,
                entries,
                prev,
            },
            Message::Append {
                epoch: e2,
                start: s2,
                entries: more,
                prev: p2,
            },
        ) => {
            let ends = *start + entries.len() as u64;
            let last = entries.last().map(|e| (e.epoch, e.write)).or(*prev);
            let bytes = entries
                .iter()
                .chain(more)
                .map(|e| e.payload.len())
                .fold(0usize, usize::saturating_add);
            let fits = entries.len() + more.len() <= MAX_BATCH && bytes <= MAX_BATCH_BYTES;
            // A keep-alive stays a message of its own: it is how a secondary hears its primary
            // on every beat, lagging or not, apart from any catch-up (the refinement maps it
            // so: it arrives within the tick that sent it, a batch only with a Replicate).
            let keepalive = more.is_empty();
            if e2 == epoch && *s2 == ends && *p2 == last && fits && !keepalive {
                entries.extend(more.iter().cloned());
                true
            } else {
                false
            }
        }
        (
            Message::Confirm { epoch, log_len },
            Message::Confirm {
                epoch: e2,
                log_len: l2,
            },
        ) if epoch == e2 => {
            *log_len = *l2;
            true
        }
        _ => false,
    }
}

/// The region a message came from (`u8::MAX` for the control plane).
fn region_of(node: NodeId) -> u8 {
    match node {
        NodeId::Region(r) => r,
        NodeId::Control => u8::MAX,
    }
}

/// A write the region acknowledged: durable in its log at `index`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ack {
    /// The write's id.
    pub write: WriteId,
    /// The epoch of the primary that acknowledged it.
    pub epoch: Epoch,
    /// Its position in the primary's log (0 first).
    pub index: u64,
}

/// What the region looks like from outside, for the abstract view and operators.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RegionSnapshot {
    /// The role it believes it has.
    pub role: Role,
    /// Its epoch.
    pub epoch: Epoch,
    /// Its durable log, index 0 first.
    pub log: Vec<LogEntry>,
    /// Its durable lost-writes quarantine.
    pub quarantine: Vec<Quarantined>,
    /// Protocol time (ms) until this region's clock reaches its lease expiry (0: no lease).
    pub lease_left: Millis,
    /// Would it acknowledge a write now (role, lease and throttle)?
    pub accepts_writes: bool,
    /// As primary: the secondaries it counts as in sync.
    pub in_sync: Vec<u8>,
}

/// What a region machine is asked to handle.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "input", content = "value", rename_all = "snake_case")]
pub enum RegionInput {
    /// Time passed: look at the clock.
    Tick,
    /// A protocol message arrived.
    Message(Envelope),
    /// A client write, or an operator's re-apply of quarantined write `reapply_of`.
    Write {
        /// The write's id (the endpoint's, unique in the deployment).
        write: WriteId,
        /// The client's payload, opaque to the protocol.
        payload: String,
        /// The quarantined write this one re-applies, if any.
        reapply_of: Option<WriteId>,
    },
    /// Mark a quarantined write as re-applied.
    MarkReapplied {
        /// The quarantined write's id.
        write: WriteId,
    },
    /// Report the region's state ([`RegionOutput::Snapshot`]).
    Snapshot,
    /// Retransmit to this region now rather than at the next tick (controlled stepping).
    ShipNow {
        /// The region to ship to.
        to: u8,
    },
}

impl From<Envelope> for RegionInput {
    fn from(envelope: Envelope) -> Self {
        RegionInput::Message(envelope)
    }
}

impl crate::Inbound for RegionInput {
    fn tick() -> Self {
        RegionInput::Tick
    }
}

/// A region machine's answer, one kind per kind of input.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "output", content = "value", rename_all = "snake_case")]
pub enum RegionOutput {
    /// To a tick, a message or `ShipNow`.
    Done,
    /// To a write: acknowledged (durable once the effects are persisted), or refused.
    Written(Result<Ack, Refusal>),
    /// The quarantined write was held (and is now marked).
    Marked(bool),
    /// To a snapshot request.
    Snapshot(Box<RegionSnapshot>),
}

/// One region's protocol state machine: its durable state and the volatile lease and
/// replication progress.
#[derive(Debug)]
pub struct RegionMachine {
    id: u8,
    regions: u8,
    timing: Timing,
    durable: Durable,
    /// Lease expiry on the control plane's clock.
    lease: Option<Millis>,
    /// As primary: per region, how much of the log it confirmed (`None`: not heard yet).
    confirmed: Vec<Option<u64>>,
    /// As primary: per region, the index of the next entry to ship without waiting for a
    /// confirmation (pipelining, within `window`); unconfirmed entries are shipped again
    /// every tick.
    next: Vec<Option<u64>>,
    /// How far shipping runs ahead of confirmations.
    window: Window,
    in_sync: Vec<bool>,
    /// As fenced primary: the switchover's target.
    fence_target: Option<u8>,
    /// When the control plane issued the latest fence this region obeyed.
    fence_issued: Option<Millis>,
    /// The newest epoch this region has heard of (a rejoin must be for at least that one).
    newest_epoch: Epoch,
    /// A rejoin asked for: its epoch and the primary asked for its log.
    joining: Option<(Epoch, u8)>,
    last_heartbeat: Millis,
    /// As secondary: when the primary of its epoch was last heard.
    primary_heard: Option<Millis>,
    mutants: Mutants,
}

impl RegionMachine {
    /// A region starting from its durable state (fresh or after a restart): no lease, no
    /// replication progress.
    pub fn new(id: u8, regions: u8, timing: Timing, durable: Durable, now: Millis) -> Self {
        let n = usize::from(regions);
        let newest_epoch = durable.epoch;
        RegionMachine {
            id,
            regions,
            timing,
            durable,
            lease: None,
            confirmed: vec![None; n],
            next: vec![None; n],
            window: Window::default(),
            in_sync: vec![false; n],
            fence_target: None,
            fence_issued: None,
            newest_epoch,
            joining: None,
            last_heartbeat: now,
            primary_heard: None,
            mutants: Mutants::default(),
        }
    }

    /// Switches on implementation mutants (a no-op without the `mutants` feature).
    pub fn with_mutants(mut self, mutants: Mutants) -> Self {
        self.mutants = mutants;
        self
    }

    /// Ships within `window` instead of the default one.
    pub fn with_window(mut self, window: Window) -> Self {
        self.window = window;
        self
    }

    /// The initial primary of a new deployment: a lease until `lease_expiry` and every other
    /// (empty) region in sync.
    pub fn initial_primary(mut self, lease_expiry: Millis) -> Self {
        self.lease = Some(lease_expiry);
        for r in 0..self.regions {
            if r != self.id {
                self.confirmed[usize::from(r)] = Some(0);
                self.next[usize::from(r)] = Some(0);
                self.in_sync[usize::from(r)] = true;
            }
        }
        self
    }

    /// Handles one input at `now` (this region's clock).
    pub fn handle(&mut self, now: Millis, input: RegionInput, fx: &mut Effects) -> RegionOutput {
        match input {
            RegionInput::Tick => self.tick(now, fx),
            RegionInput::Message(env) => self.receive(now, env.from, env.msg, fx),
            RegionInput::Write {
                write,
                payload,
                reapply_of,
            } => return RegionOutput::Written(self.write(now, write, payload, reapply_of, fx)),
            RegionInput::MarkReapplied { write } => {
                return RegionOutput::Marked(self.mark_reapplied(write, fx))
            }
            RegionInput::Snapshot => return RegionOutput::Snapshot(Box::new(self.snapshot(now))),
            RegionInput::ShipNow { to } => self.ship_now(to, fx),
        }
        RegionOutput::Done
    }

    /// The answer to `input` when persisting its effects failed (the region stops).
    pub fn store_failed(input: &RegionInput) -> RegionOutput {
        match input {
            RegionInput::MarkReapplied { .. } => RegionOutput::Marked(false),
            _ => RegionOutput::Written(Err(Refusal::StoreFailed)),
        }
    }

    /// This region's number.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// The role it believes it has (durable).
    pub fn role(&self) -> Role {
        self.durable.role
    }

    /// Its epoch (durable).
    pub fn epoch(&self) -> Epoch {
        self.durable.epoch
    }

    /// Its durable log, index 0 first.
    pub fn log(&self) -> &[LogEntry] {
        &self.durable.log
    }

    fn me(&self) -> NodeId {
        NodeId::Region(self.id)
    }

    fn has_lease(&self, now: Millis) -> bool {
        self.lease.is_some_and(|expiry| now < expiry)
    }

    fn set_role(&mut self, epoch: Epoch, role: Role, fx: &mut Effects) {
        let op = StoreOp::SetRole { epoch, role };
        self.durable.apply(&op);
        fx.store.push(op);
    }

    /// Length of the log every in-sync secondary has confirmed.
    fn confirmed_by_in_sync(&self) -> u64 {
        (0..usize::from(self.regions))
            .filter(|&r| self.in_sync[r])
            .map(|r| self.confirmed[r].unwrap_or(0))
            .min()
            .unwrap_or(self.durable.log.len() as u64)
    }

    /// How long until the throttle lifts, if it is on now.
    fn throttled_for(&self, now: Millis) -> Option<Millis> {
        if self.mutants.has(Mutant::NoThrottle) {
            return None;
        }
        let oldest = usize::try_from(self.confirmed_by_in_sync()).ok()?;
        let entry = self.durable.log.get(oldest)?;
        let age = now.saturating_sub(entry.acked_at);
        // Older than the threshold, as DESIGN words it (not "at least as old").
        (age > self.timing.throttle).then_some(self.timing.heartbeat.max(1))
    }

    /// Why this region would refuse a write now, if it would.
    pub fn refusal(&self, now: Millis) -> Option<Refusal> {
        match self.durable.role {
            Role::Primary => {}
            Role::Fenced => return Some(Refusal::Fenced),
            Role::Secondary | Role::Stale => return Some(Refusal::NotPrimary),
        }
        if !self.has_lease(now) {
            return Some(Refusal::NoLease);
        }
        self.throttled_for(now)
            .map(|retry_after| Refusal::Throttled { retry_after })
    }

    /// As primary: how old the oldest write the most caught-up secondary lacks is; what a
    /// failover would lose if this region died now.
    pub fn exposure(&self, now: Millis) -> Option<Millis> {
        if !self.ships() {
            return None;
        }
        let best = (0..usize::from(self.regions))
            .filter(|&r| r != usize::from(self.id))
            .map(|r| self.confirmed[r].unwrap_or(0))
            .max()
            .unwrap_or(0);
        let oldest = self.durable.log.get(usize::try_from(best).ok()?)?;
        Some(now.saturating_sub(oldest.acked_at))
    }

    /// Its durable lost-writes quarantine.
    pub fn quarantine(&self) -> &[Quarantined] {
        &self.durable.quarantine
    }

    /// Protocol time (ms) from `now`, on this region's clock, until its lease expires (0: no
    /// lease).
    pub fn lease_left(&self, now: Millis) -> Millis {
        self.lease.map_or(0, |e| e.saturating_sub(now))
    }

    /// As primary: the secondaries it counts as in sync.
    pub fn in_sync_regions(&self) -> Vec<u8> {
        (0..self.regions)
            .filter(|&r| self.in_sync[usize::from(r)])
            .collect()
    }

    /// A client write (or an operator's re-apply of a quarantined write).
    pub fn write(
        &mut self,
        now: Millis,
        write: WriteId,
        payload: String,
        reapply_of: Option<WriteId>,
        fx: &mut Effects,
    ) -> Result<Ack, Refusal> {
        if let Some(reason) = self.refusal(now) {
            fx.event(Event::WriteRefused {
                region: self.id,
                write,
                reason: reason.clone(),
            });
            return Err(reason);
        }
        let index = self.durable.log.len() as u64;
        let entry = LogEntry {
            epoch: self.durable.epoch,
            write,
            acked_at: now,
            reapply_of,
            payload,
        };
        let previous = self.durable.log.last().map(|e| e.write);
        let op = StoreOp::Append(vec![entry.clone()]);
        self.durable.apply(&op);
        fx.store.push(op);
        fx.event(Event::WriteAccepted {
            region: self.id,
            write,
            epoch: self.durable.epoch,
            index,
            previous,
            reapply_of,
            in_sync: (0..self.regions)
                .filter(|&r| self.in_sync[usize::from(r)])
                .collect(),
        });
        // Ship at once to every secondary sent everything before, if the window has room; the
        // others catch up as confirmations free room, or on ticks.
        for r in 0..self.regions {
            let sent_all = self.next[usize::from(r)] == Some(index);
            if r != self.id && sent_all && self.room(r, entry.payload.len()) {
                self.next[usize::from(r)] = Some(index + 1);
                fx.send(
                    self.me(),
                    NodeId::Region(r),
                    Message::Append {
                        epoch: self.durable.epoch,
                        start: index,
                        entries: vec![entry.clone()],
                        prev: self.prev_of(index),
                    },
                );
            }
        }
        Ok(Ack {
            write,
            epoch: self.durable.epoch,
            index,
        })
    }

    /// Marks a quarantined write as re-applied (the operator re-applied it elsewhere).
    pub fn mark_reapplied(&mut self, write: WriteId, fx: &mut Effects) -> bool {
        let held = self
            .durable
            .quarantine
            .iter()
            .any(|q| q.entry.write == write && !q.reapplied);
        if held {
            let op = StoreOp::MarkReapplied { write };
            self.durable.apply(&op);
            fx.store.push(op);
        }
        held
    }

    /// `old_prefix_len`: leading entries acknowledged at least RPO − H − D ago.
    fn old_prefix(&self, now: Millis) -> u64 {
        let threshold = if self.mutants.has(Mutant::RpoGuardNoMargin) {
            self.timing.rpo
        } else {
            self.timing.old_prefix_age()
        };
        self.durable
            .log
            .iter()
            .take_while(|e| now.saturating_sub(e.acked_at) >= threshold)
            .count() as u64
    }

    /// For each in-sync secondary missing part of the log: when the oldest entry it has not
    /// confirmed was acknowledged.
    fn unconfirmed_since(&self) -> Vec<(u8, Millis)> {
        if !self.ships() {
            return Vec::new();
        }
        (0..self.regions)
            .filter(|&r| self.in_sync[usize::from(r)])
            .filter_map(|r| {
                let confirmed = self.confirmed[usize::from(r)].unwrap_or(0);
                let oldest = self.durable.log.get(usize::try_from(confirmed).ok()?)?;
                Some((r, oldest.acked_at))
            })
            .collect()
    }

    fn ships(&self) -> bool {
        self.durable.role.ships()
    }

    /// Time passes: the lease may run out, a heartbeat may be due, entries are (re)shipped.
    pub fn tick(&mut self, now: Millis, fx: &mut Effects) {
        if let Some(expiry) = self.lease {
            if now >= expiry {
                self.lease = None;
                fx.event(Event::LeaseExpired {
                    region: self.id,
                    epoch: self.durable.epoch,
                });
            }
        }
        let beat = self.timing.heartbeat;
        let since = now.saturating_sub(self.last_heartbeat);
        let heartbeat_due = since >= beat;
        if heartbeat_due {
            // On the beat: the next heartbeat is due an interval after this one was due, not
            // after this tick, as in the model (one every interval). A running process ticks
            // a little late at times; counting from the tick pushed every later heartbeat
            // back, a quarter minute each time. After a stall of two intervals or more, the
            // beat starts again from now rather than in a burst.
            self.last_heartbeat = if since < beat.saturating_mul(2) {
                self.last_heartbeat.saturating_add(beat)
            } else {
                now
            };
            self.send_heartbeat(now, fx);
        }
        if self.ships() {
            // The keep-alive goes with the heartbeat: the secondaries hear their primary on
            // the same beat as the control plane hears each region.
            self.ship(heartbeat_due, fx);
        }
    }

    fn send_heartbeat(&self, now: Millis, fx: &mut Effects) {
        let log = &self.durable.log;
        let contact = self
            .primary_heard
            .is_some_and(|t| now.saturating_sub(t) <= self.timing.contact_window());
        let heartbeat = Heartbeat {
            epoch: self.durable.epoch,
            role: self.durable.role,
            log_len: log.len() as u64,
            last: log.last().map(|e| (e.epoch, e.write)),
            runs: epoch_runs(log),
            old_prefix: self.old_prefix(now),
            primary_contact: self.ships() || contact,
            sent_at: now,
            in_sync: (0..self.regions)
                .filter(|&r| self.in_sync[usize::from(r)])
                .collect(),
            unconfirmed_since: self.unconfirmed_since(),
            fence: (self.durable.role == Role::Fenced)
                .then_some(self.fence_issued)
                .flatten(),
        };
        fx.event(Event::HeartbeatSent {
            region: self.id,
            epoch: self.durable.epoch,
            log_len: log.len() as u64,
        });
        fx.send(self.me(), NodeId::Control, Message::Heartbeat(heartbeat));
    }

    /// Ships unconfirmed entries to every region that confirmed less than the whole log, and
    /// an empty keep-alive (which asks for a confirmation) every heartbeat interval.
    fn ship(&mut self, keepalive: bool, fx: &mut Effects) {
        for r in 0..self.regions {
            if r != self.id {
                self.ship_to(r, keepalive, fx);
            }
        }
    }

    /// Ships to region `to` what it has not confirmed, and (with `keepalive`) an empty append
    /// that asks where its log ends: a secondary hears its primary on every beat, lagging or
    /// not (it reports that contact to the control plane).
    fn ship_to(&mut self, to: u8, keepalive: bool, fx: &mut Effects) {
        let len = self.durable.log.len() as u64;
        let start = match self.confirmed[usize::from(to)] {
            Some(c) if c < len => c,
            _ if keepalive => len,
            _ => return,
        };
        let from = usize::try_from(start).unwrap_or(usize::MAX);
        let entries = batch(&self.durable.log, from);
        let sent = start + entries.len() as u64;
        let next = &mut self.next[usize::from(to)];
        if next.is_none_or(|n| n < sent) {
            *next = Some(sent);
        }
        let behind = start < len;
        fx.send(
            self.me(),
            NodeId::Region(to),
            Message::Append {
                epoch: self.durable.epoch,
                start,
                entries,
                prev: self.prev_of(start),
            },
        );
        if keepalive && behind {
            fx.send(
                self.me(),
                NodeId::Region(to),
                Message::Append {
                    epoch: self.durable.epoch,
                    start: len,
                    entries: Vec::new(),
                    prev: self.prev_of(len),
                },
            );
        }
    }

    /// What is shipped to region `to` and not confirmed: entries and payload bytes.
    fn in_flight(&self, to: u8) -> (u64, usize) {
        let i = usize::from(to);
        let Some(next) = self.next.get(i).copied().flatten() else {
            return (0, 0);
        };
        let from = self.confirmed[i].map_or(next, |c| c.min(next));
        let at = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let bytes = self
            .durable
            .log
            .iter()
            .take(at(next))
            .skip(at(from))
            .map(|e| e.payload.len())
            .fold(0usize, usize::saturating_add);
        (next - from, bytes)
    }

    /// May one more entry of `bytes` go to region `to` now (the window has room for it, or
    /// nothing is in flight)?
    fn room(&self, to: u8, bytes: usize) -> bool {
        let (entries, in_flight) = self.in_flight(to);
        entries == 0
            || (entries < self.window.entries
                && in_flight.saturating_add(bytes) <= self.window.bytes)
    }

    /// Pipelining: ships to region `to`, from the first entry not shipped yet, batch after
    /// batch, as much as the window has room for.
    fn ship_more(&mut self, to: u8, fx: &mut Effects) {
        let i = usize::from(to);
        let len = self.durable.log.len() as u64;
        let Some(mut next) = self.next.get(i).copied().flatten() else {
            return;
        };
        let (mut entries_out, mut bytes_out) = self.in_flight(to);
        while next < len && entries_out < self.window.entries {
            let from = usize::try_from(next).unwrap_or(usize::MAX);
            let count = usize::try_from(self.window.entries - entries_out).unwrap_or(usize::MAX);
            let bytes = self.window.bytes.saturating_sub(bytes_out);
            let entries = batch_within(&self.durable.log, from, count, bytes, entries_out == 0);
            if entries.is_empty() {
                break;
            }
            let n = entries.len() as u64;
            bytes_out = entries
                .iter()
                .map(|e| e.payload.len())
                .fold(bytes_out, usize::saturating_add);
            fx.send(
                self.me(),
                NodeId::Region(to),
                Message::Append {
                    epoch: self.durable.epoch,
                    start: next,
                    entries,
                    prev: self.prev_of(next),
                },
            );
            next += n;
            entries_out += n;
        }
        self.next[i] = Some(next);
    }

    /// The (epoch, write) of the entry before index `start`, which an `Append` from `start`
    /// carries so that the secondary can check the batch extends its log.
    fn prev_of(&self, start: u64) -> Option<(Epoch, WriteId)> {
        let i = usize::try_from(start.checked_sub(1)?).ok()?;
        self.durable.log.get(i).map(|e| (e.epoch, e.write))
    }

    /// Ships to `to` now rather than at the next tick (a region's retransmission, taken when
    /// a caller steps the deployment by hand).
    pub fn ship_now(&mut self, to: u8, fx: &mut Effects) {
        if self.ships() && to != self.id && to < self.regions {
            self.ship_to(to, true, fx);
        }
    }

    /// A protocol message arrives.
    pub fn receive(&mut self, now: Millis, from: NodeId, msg: Message, fx: &mut Effects) {
        let epoch = self.durable.epoch;
        match msg {
            Message::Grant {
                epoch: e,
                expiry,
                issued,
            } => {
                let before_fence = self.fence_issued.is_some_and(|f| issued < f);
                if from == NodeId::Control
                    && e == epoch
                    && self.durable.role == Role::Primary
                    && !before_fence
                {
                    self.lease = Some(self.lease.map_or(expiry, |l| l.max(expiry)));
                    fx.event(Event::LeaseGranted {
                        region: self.id,
                        epoch,
                        expiry,
                    });
                }
            }
            Message::NewEpoch { epoch: e } => {
                self.newest_epoch = self.newest_epoch.max(e);
                if e > epoch && self.durable.role != Role::Stale {
                    self.become_stale(e, fx);
                }
            }
            Message::Promote { epoch: e, expiry } => {
                self.newest_epoch = self.newest_epoch.max(e);
                if from == NodeId::Control && e > epoch && self.durable.role == Role::Secondary {
                    self.promote(e, expiry, fx);
                }
            }
            Message::Rejoin { epoch: e, primary } => {
                // Only a rejoin into the newest epoch heard of: a late one for an older
                // epoch would truncate against a log that has moved on.
                let current = e > epoch && e >= self.newest_epoch;
                if from == NodeId::Control
                    && current
                    && primary != self.id
                    && primary < self.regions
                {
                    self.newest_epoch = e;
                    self.joining = Some((e, primary));
                    fx.send(
                        self.me(),
                        NodeId::Region(primary),
                        Message::JoinRequest { epoch: e },
                    );
                }
            }
            Message::JoinRequest { epoch: e } => {
                if e == epoch && self.ships() {
                    let runs = epoch_runs(&self.durable.log);
                    fx.send(self.me(), from, Message::JoinAccept { epoch: e, runs });
                }
            }
            Message::JoinAccept { epoch: e, runs } => {
                if self.joining == Some((e, region_of(from))) && e > epoch && e >= self.newest_epoch
                {
                    self.joining = None;
                    self.rejoin(e, (&runs, Some(region_of(from))), fx);
                    self.primary_heard = Some(now);
                }
            }
            Message::Fence {
                epoch: e,
                target,
                issued,
            } => {
                let valid = target < self.regions && target != self.id;
                if from == NodeId::Control
                    && valid
                    && e == epoch
                    && self.durable.role == Role::Primary
                {
                    self.lease = None;
                    self.fence_target = Some(target);
                    self.fence_issued = Some(issued);
                    self.set_role(epoch, Role::Fenced, fx);
                    let log_len = self.durable.log.len() as u64;
                    fx.event(Event::Fenced {
                        region: self.id,
                        epoch,
                        log_len,
                    });
                    fx.send(
                        self.me(),
                        NodeId::Control,
                        Message::Fenced {
                            epoch,
                            log_len,
                            fence: issued,
                        },
                    );
                    self.report_drained(fx);
                }
            }
            Message::Unfence { epoch: e, fence } => {
                let this_fence = self.fence_issued.is_none_or(|f| f == fence);
                if from == NodeId::Control
                    && e == epoch
                    && self.durable.role == Role::Fenced
                    && this_fence
                {
                    self.fence_target = None;
                    self.set_role(epoch, Role::Primary, fx);
                    fx.event(Event::Unfenced {
                        region: self.id,
                        epoch,
                    });
                }
            }
            Message::OutOfSync { epoch: e, region } => {
                let r = usize::from(region);
                let control = from == NodeId::Control;
                let known = r < self.in_sync.len();
                if control && known && e == epoch && self.ships() && self.in_sync[r] {
                    self.in_sync[r] = false;
                    fx.event(Event::OutOfSync {
                        primary: self.id,
                        region,
                    });
                }
            }
            Message::Append {
                epoch: e,
                start,
                entries,
                prev,
            } => {
                if let NodeId::Region(p) = from {
                    if e == epoch && self.durable.role == Role::Secondary {
                        self.primary_heard = Some(now);
                        self.append(p, start, prev, entries, fx);
                    }
                }
            }
            Message::Confirm { epoch: e, log_len } => {
                if let NodeId::Region(r) = from {
                    if e == epoch && self.ships() {
                        self.confirm(r, log_len, fx);
                    }
                }
            }
            Message::Merge { entries } => {
                // Only the rejoin-merge mutant sends these: its primary takes them back in.
                if self.mutants.has(Mutant::RejoinMerge) && self.durable.role == Role::Primary {
                    let merged: Vec<LogEntry> = entries
                        .into_iter()
                        .map(|e| LogEntry { epoch, ..e })
                        .collect();
                    let writes = merged.iter().map(|e| e.write).collect();
                    let op = StoreOp::Append(merged);
                    self.durable.apply(&op);
                    fx.store.push(op);
                    fx.event(Event::Merged {
                        region: self.id,
                        writes,
                    });
                }
            }
            Message::Heartbeat(_)
            | Message::Fenced { .. }
            | Message::Drained { .. }
            | Message::InSync { .. }
            | Message::Promoted { .. }
            | Message::Rejoined { .. } => {}
        }
    }

    fn become_stale(&mut self, newer: Epoch, fx: &mut Effects) {
        self.lease = None;
        self.fence_target = None;
        self.set_role(self.durable.epoch, Role::Stale, fx);
        fx.event(Event::Stale {
            region: self.id,
            epoch: newer,
        });
    }

    fn promote(&mut self, epoch: Epoch, expiry: Millis, fx: &mut Effects) {
        self.lease = Some(expiry);
        self.confirmed = vec![None; usize::from(self.regions)];
        self.next = vec![None; usize::from(self.regions)];
        self.in_sync = vec![false; usize::from(self.regions)];
        self.primary_heard = None;
        self.set_role(epoch, Role::Primary, fx);
        fx.event(Event::Promoted {
            region: self.id,
            epoch,
        });
        let runs = epoch_runs(&self.durable.log);
        fx.send(
            self.me(),
            NodeId::Control,
            Message::Promoted { epoch, runs },
        );
    }

    fn rejoin(
        &mut self,
        epoch: Epoch,
        (runs, primary): (&[(Epoch, u64)], Option<u8>),
        fx: &mut Effects,
    ) {
        let keep = common_prefix(&self.durable.log, runs);
        let suffix: Vec<LogEntry> = self.durable.log[usize::try_from(keep).unwrap_or(0)..].to_vec();
        let mut quarantined: Vec<WriteId> = suffix.iter().map(|e| e.write).collect();
        let op = if self.mutants.has(Mutant::RejoinNoTruncate) {
            None
        } else if self.mutants.has(Mutant::RejoinNoQuarantine) {
            Some(StoreOp::Truncate { keep })
        } else {
            Some(StoreOp::QuarantineSuffix { keep })
        };
        if !matches!(op, Some(StoreOp::QuarantineSuffix { .. })) {
            quarantined.clear();
        }
        if let Some(op) = op.filter(|_| !suffix.is_empty()) {
            self.durable.apply(&op);
            fx.store.push(op);
        }
        if self.mutants.has(Mutant::RejoinMerge) && !suffix.is_empty() {
            if let Some(primary) = primary {
                let merge = Message::Merge { entries: suffix };
                fx.send(self.me(), NodeId::Region(primary), merge);
            }
        }
        self.lease = None;
        self.fence_target = None;
        // Contact with the primary is claimed only once it is heard (it may be cut off).
        self.primary_heard = None;
        self.set_role(epoch, Role::Secondary, fx);
        fx.event(Event::Rejoined {
            region: self.id,
            epoch,
            kept: keep,
            quarantined,
        });
        let log = &self.durable.log;
        let rejoined = Message::Rejoined {
            epoch,
            log_len: log.len() as u64,
            last: log.last().map(|e| (e.epoch, e.write)),
        };
        fx.send(self.me(), NodeId::Control, rejoined);
    }

    /// As secondary: entries from the primary `p`, starting at index `start`, after the
    /// primary's entry `prev`.
    fn append(
        &mut self,
        p: u8,
        start: u64,
        prev: Option<(Epoch, WriteId)>,
        entries: Vec<LogEntry>,
        fx: &mut Effects,
    ) {
        let len = self.durable.log.len() as u64;
        let mut confirmed = len;
        if start <= len {
            match self.divergence(start, prev, &entries) {
                None => {
                    let skip = usize::try_from(len - start).unwrap_or(usize::MAX);
                    let fresh: Vec<LogEntry> = entries.into_iter().skip(skip).collect();
                    if !fresh.is_empty() {
                        let op = StoreOp::Append(fresh);
                        self.durable.apply(&op);
                        fx.store.push(op);
                        fx.event(Event::Replicated {
                            from: p,
                            to: self.id,
                            epoch: self.durable.epoch,
                            log_len: self.durable.log.len() as u64,
                        });
                    }
                    confirmed = self.durable.log.len() as u64;
                }
                Some(matched) => {
                    // Appending after a divergent entry would build a log the primary never
                    // had, and confirming it would count that entry as replicated. Refuse,
                    // loudly, and confirm only what agrees: the primary ships from there,
                    // and is refused again until this region rejoins.
                    confirmed = matched;
                    fx.event(Event::AppendRefused {
                        region: self.id,
                        from: p,
                        epoch: self.durable.epoch,
                        start,
                        log_len: len,
                        matched,
                    });
                }
            }
        }
        // A gap (an earlier message was lost) is answered with where the log really ends.
        fx.send(
            self.me(),
            NodeId::Region(p),
            Message::Confirm {
                epoch: self.durable.epoch,
                log_len: confirmed,
            },
        );
    }

    /// Does a batch from `start` (with `start` at most the log's length) fail to extend this
    /// log? `Some(n)`: only the first `n` entries are known to agree with the primary's,
    /// because the entry before `start` differs from `prev` (then `n = start - 1`), or the
    /// batch's entry at index `n >= start` differs from the one held there.
    fn divergence(
        &self,
        start: u64,
        prev: Option<(Epoch, WriteId)>,
        entries: &[LogEntry],
    ) -> Option<u64> {
        let log = &self.durable.log;
        let at = usize::try_from(start).unwrap_or(usize::MAX);
        if let (Some((epoch, write)), Some(before)) = (prev, at.checked_sub(1)) {
            let held = log.get(before);
            if held.is_none_or(|e| e.epoch != epoch || e.write != write) {
                return Some(start - 1);
            }
        }
        log.iter()
            .skip(at)
            .zip(entries)
            .position(|(held, sent)| !held.same_as(sent))
            .map(|i| start + i as u64)
    }

    /// As primary (or fenced primary): region `r` holds `log_len` entries of this log.
    fn confirm(&mut self, r: u8, log_len: u64, fx: &mut Effects) {
        let i = usize::from(r);
        if i >= self.confirmed.len() || r == self.id {
            return;
        }
        let len = self.durable.log.len() as u64;
        let confirmed = log_len.min(len);
        self.confirmed[i] = Some(confirmed);
        if self.next[i].is_none_or(|n| n < confirmed) {
            self.next[i] = Some(confirmed);
        }
        if log_len == len && !self.in_sync[i] {
            self.in_sync[i] = true;
            fx.event(Event::InSync {
                primary: self.id,
                region: r,
            });
            let epoch = self.durable.epoch;
            fx.send(
                self.me(),
                NodeId::Control,
                Message::InSync { epoch, region: r },
            );
        }
        self.report_drained(fx);
        // The confirmation freed room in the window: ship what waits.
        self.ship_more(r, fx);
    }

    /// As fenced primary: tells the control plane once the target holds the whole log.
    fn report_drained(&self, fx: &mut Effects) {
        if let (Some(target), Some(fence)) = (self.fence_target, self.fence_issued) {
            let len = self.durable.log.len() as u64;
            if self.confirmed.get(usize::from(target)) == Some(&Some(len)) {
                fx.send(
                    self.me(),
                    NodeId::Control,
                    Message::Drained {
                        epoch: self.durable.epoch,
                        target,
                        fence,
                    },
                );
            }
        }
    }

    /// What the region looks like at `now` (its own clock).
    pub fn snapshot(&self, now: Millis) -> RegionSnapshot {
        RegionSnapshot {
            role: self.durable.role,
            epoch: self.durable.epoch,
            log: self.durable.log.clone(),
            quarantine: self.durable.quarantine.clone(),
            lease_left: self.lease.map_or(0, |e| e.saturating_sub(now)),
            accepts_writes: self.refusal(now).is_none(),
            in_sync: (0..self.regions)
                .filter(|&r| self.in_sync[usize::from(r)])
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MINUTE;
    use drcheck_properties::Role;

    fn entries(sizes: &[usize]) -> Vec<LogEntry> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| LogEntry {
                epoch: 1,
                write: i as u64,
                acked_at: 0,
                reapply_of: None,
                payload: "x".repeat(n),
            })
            .collect()
    }

    /// Heartbeats sent by `machine` ticked at each of `ticks`.
    fn heartbeats_at(machine: &mut RegionMachine, ticks: &[Millis]) -> Vec<Millis> {
        let mut sent = Vec::new();
        for &now in ticks {
            let mut fx = Effects::default();
            machine.tick(now, &mut fx);
            if fx
                .send
                .iter()
                .any(|e| matches!(e.msg, Message::Heartbeat(_)))
            {
                sent.push(now);
            }
        }
        sent
    }

    /// Ticked every quarter minute, each tick a little early or late as a running process
    /// ticks, a region sends one heartbeat a minute, as the model does: none is skipped
    /// because a tick came a millisecond before its minute was up.
    #[test]
    fn heartbeats_keep_the_beat_when_ticks_come_a_little_early_or_late() {
        let timing = crate::time::default_timing();
        let durable = Durable::fresh(drcheck_properties::Role::Secondary);
        let mut machine = RegionMachine::new(1, 2, timing, durable, 0);
        let quarter = MINUTE / 4;
        let jitter = [0, 300, 0, 40, 290, 10, 0, 120];
        let ticks: Vec<Millis> = (1..=240u64)
            .map(|i| i * quarter + jitter[i as usize % jitter.len()])
            .collect();
        let sent = heartbeats_at(&mut machine, &ticks);
        assert_eq!(sent.len(), 60, "{sent:?}");
        // Each in its own minute.
        for (k, at) in sent.iter().enumerate() {
            assert_eq!(at / MINUTE, k as u64 + 1, "{sent:?}");
        }
        // After a stall of three minutes, one heartbeat and the beat again: no burst.
        let resumed: Vec<Millis> = (0..8u64).map(|i| 64 * MINUTE + i * quarter).collect();
        let sent = heartbeats_at(&mut machine, &resumed);
        assert_eq!(sent, [64 * MINUTE, 65 * MINUTE], "{sent:?}");
    }

    #[test]
    fn a_batch_is_bounded_by_bytes_and_by_count_and_carries_at_least_one_entry() {
        let mb = 1024 * 1024;
        // 40 near-limit resources: 6 fit in a batch.
        let log = entries(&[900_000; 40]);
        let first = batch(&log, 0);
        assert_eq!(first.len(), MAX_BATCH_BYTES / 900_000);
        assert!(first.iter().map(|e| e.payload.len()).sum::<usize>() <= MAX_BATCH_BYTES);
        assert_eq!(batch(&log, 38).len(), 2);
        assert!(batch(&log, 40).is_empty());
        // One entry over the budget still goes, alone.
        let log = entries(&[7 * mb, 10]);
        assert_eq!(batch(&log, 0).len(), 1);
        assert_eq!(batch(&log, 1).len(), 1);
        // Small entries: the count bounds.
        let log = entries(&[10; 600]);
        assert_eq!(batch(&log, 0).len(), MAX_BATCH);
    }

    use crate::time::default_timing;

    /// Region 0, primary of two regions under a long lease, shipping within `window`;
    /// region 1 in sync with an empty log.
    fn primary(window: Window) -> RegionMachine {
        RegionMachine::new(0, 2, default_timing(), Durable::fresh(Role::Primary), 0)
            .with_window(window)
            .initial_primary(1_000_000)
    }

    fn write(p: &mut RegionMachine, n: u64, bytes: usize) -> Effects {
        let mut fx = Effects::default();
        p.write(0, n, "x".repeat(bytes), None, &mut fx)
            .expect("the primary acknowledges");
        fx
    }

    fn confirm(p: &mut RegionMachine, log_len: u64) -> Effects {
        let mut fx = Effects::default();
        let msg = Message::Confirm { epoch: 1, log_len };
        p.receive(0, NodeId::Region(1), msg, &mut fx);
        fx
    }

    /// The (start, entries) of every `Append` in `fx`.
    fn appends(fx: &Effects) -> Vec<(u64, usize)> {
        fx.send
            .iter()
            .filter_map(|e| match &e.msg {
                Message::Append { start, entries, .. } => Some((*start, entries.len())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn writes_ship_at_once_while_the_window_has_room_and_confirmations_ship_the_rest() {
        let mut p = primary(Window {
            entries: 2,
            bytes: usize::MAX,
        });
        assert_eq!(appends(&write(&mut p, 1, 10)), [(0, 1)]);
        assert_eq!(appends(&write(&mut p, 2, 10)), [(1, 1)]);
        // Two in flight: the next writes wait.
        assert!(appends(&write(&mut p, 3, 10)).is_empty());
        assert!(appends(&write(&mut p, 4, 10)).is_empty());
        assert!(appends(&write(&mut p, 5, 10)).is_empty());
        assert_eq!(p.in_flight(1), (2, 20));
        // A confirmation of one entry makes room for one; of all sent, for two, in one batch.
        assert_eq!(appends(&confirm(&mut p, 1)), [(2, 1)]);
        assert_eq!(appends(&confirm(&mut p, 3)), [(3, 2)]);
        assert_eq!(p.in_flight(1), (2, 20));
        // The throttle and the in-sync set still read what region 1 confirmed.
        assert_eq!(p.confirmed_by_in_sync(), 3);
        assert_eq!(p.in_sync_regions(), [1]);
        assert!(appends(&confirm(&mut p, 5)).is_empty());
        assert_eq!(p.in_flight(1), (0, 0));
        assert_eq!(appends(&write(&mut p, 6, 10)), [(5, 1)]);
    }

    #[test]
    fn the_window_bounds_the_bytes_in_flight_but_an_entry_alone_goes_whatever_its_size() {
        let mut p = primary(Window {
            entries: 100,
            bytes: 250,
        });
        assert_eq!(appends(&write(&mut p, 1, 100)), [(0, 1)]);
        assert_eq!(appends(&write(&mut p, 2, 100)), [(1, 1)]);
        // 300 bytes would be in flight.
        assert!(appends(&write(&mut p, 3, 100)).is_empty());
        assert!(appends(&write(&mut p, 4, 1000)).is_empty());
        assert_eq!(appends(&confirm(&mut p, 2)), [(2, 1)]);
        // Nothing else fits beside entry 2; alone, the 1000-byte entry 3 goes.
        assert!(appends(&confirm(&mut p, 2)).is_empty());
        assert_eq!(appends(&confirm(&mut p, 3)), [(3, 1)]);
        assert_eq!(p.in_flight(1), (1, 1000));
    }

    #[test]
    fn a_lagging_secondary_gets_batch_after_batch_without_waiting_for_a_tick() {
        // 3,000 writes while the primary has not heard where region 1's log ends (as after a
        // promotion): none ships at once.
        let mut p = primary(Window::default());
        p.confirmed[1] = None;
        p.next[1] = None;
        for n in 0..3000 {
            assert!(appends(&write(&mut p, n, 10)).is_empty());
        }
        // A new primary learns where region 1's log ends from its confirmation.
        // Four full batches go ahead, and each confirmation tops the window up.
        assert_eq!(
            appends(&confirm(&mut p, 0)),
            [
                (0, MAX_BATCH),
                (512, MAX_BATCH),
                (1024, MAX_BATCH),
                (1536, MAX_BATCH)
            ]
        );
        assert_eq!(appends(&confirm(&mut p, 512)), [(2048, MAX_BATCH)]);
        assert_eq!(appends(&confirm(&mut p, 2560)), [(2560, 440)]);
        assert_eq!(p.in_flight(1), (3000 - 2560, 4400));
    }

    fn append(to: u8, start: u64, writes: std::ops::Range<u64>) -> Envelope {
        let entries: Vec<LogEntry> = writes
            .map(|w| LogEntry {
                epoch: 1,
                write: w,
                acked_at: 0,
                reapply_of: None,
                payload: "x".to_string(),
            })
            .collect();
        let prev = start.checked_sub(1).map(|w| (1, w));
        Envelope {
            from: NodeId::Region(0),
            to: NodeId::Region(to),
            msg: Message::Append {
                epoch: 1,
                start,
                entries,
                prev,
            },
        }
    }

    fn confirmation(to: u8, epoch: Epoch, log_len: u64) -> Envelope {
        Envelope {
            from: NodeId::Region(1),
            to: NodeId::Region(to),
            msg: Message::Confirm { epoch, log_len },
        }
    }

    #[test]
    fn appends_that_continue_each_other_travel_as_one_and_confirmations_as_the_last() {
        let heartbeat = Envelope {
            from: NodeId::Region(0),
            to: NodeId::Control,
            msg: Message::InSync {
                epoch: 1,
                region: 1,
            },
        };
        // Write ids are their indexes here, so a batch's prev is (1, start - 1).
        let sends = vec![
            append(1, 3, 3..4),
            heartbeat.clone(),
            append(2, 3, 3..4),
            append(1, 4, 4..5),
            append(2, 4, 4..6),
            append(1, 5, 5..6),
        ];
        let out = coalesce(sends);
        assert_eq!(
            out,
            vec![append(1, 3, 3..6), heartbeat, append(2, 3, 3..6)],
            "joined per region, the rest in order"
        );
        // Not contiguous, or another epoch: apart.
        let gap = vec![append(1, 3, 3..4), append(1, 5, 5..6)];
        assert_eq!(coalesce(gap.clone()), gap);
        let mut other_epoch = append(1, 4, 4..5);
        if let Message::Append { epoch, .. } = &mut other_epoch.msg {
            *epoch = 2;
        }
        let epochs = vec![append(1, 3, 3..4), other_epoch];
        assert_eq!(coalesce(epochs.clone()), epochs);
        // A keep-alive goes on its own (a secondary hears its primary by it on every beat).
        let keepalive = vec![append(1, 3, 3..5), append(1, 5, 5..5)];
        assert_eq!(coalesce(keepalive.clone()), keepalive);
        // No more than a batch.
        let full = vec![append(1, 0, 0..500), append(1, 500, 500..600)];
        assert_eq!(coalesce(full.clone()), full);
        // Confirmations: the last of each run of one epoch.
        let confirms = vec![
            confirmation(0, 1, 4),
            confirmation(0, 1, 6),
            confirmation(0, 2, 6),
            confirmation(0, 2, 7),
        ];
        assert_eq!(
            coalesce(confirms),
            vec![confirmation(0, 1, 6), confirmation(0, 2, 7)]
        );
    }

    #[test]
    fn a_secondary_that_takes_the_joined_append_ends_as_after_the_two() {
        let secondary =
            || RegionMachine::new(1, 2, default_timing(), Durable::fresh(Role::Secondary), 0);
        let (mut one, mut two) = (secondary(), secondary());
        let parts = vec![append(1, 0, 0..2), append(1, 2, 2..5)];
        let mut fx = Effects::default();
        for env in coalesce(parts.clone()) {
            one.receive(0, env.from, env.msg, &mut fx);
        }
        let mut fx2 = Effects::default();
        for env in parts {
            two.receive(0, env.from, env.msg, &mut fx2);
        }
        assert_eq!(one.log(), two.log());
        assert_eq!(one.log().len(), 5);
        assert_eq!(coalesce(fx.send), coalesce(fx2.send));
    }
}
