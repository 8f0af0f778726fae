//! What a process admits from an authenticated sender: a well-formed message from a member
//! of the deployment may still make no sense from *that* member. The TCP edge has already
//! made sure who sent it (`crate::auth`) and that its envelope names that sender; the
//! [`Guard`] then refuses, before the machine sees it, what that sender never sends:
//!
//! - a command only the control plane gives (`grant`, `new_epoch`, `promote`, `rejoin`,
//!   `fence`, `unfence`, `out_of_sync`) from a region, and region-to-region traffic
//!   (`append`, `confirm`, `join_request`, `join_accept`, `merge`) from the control plane;
//! - a report meant for the control plane (`heartbeat`, `promoted`, …) sent to a region, or a
//!   command meant for a region sent to the control plane;
//! - a `promote` into an epoch more than two past the newest this region has heard of (the
//!   control plane promotes only a secondary of its current epoch, or of the one before while
//!   the new primary has not taken office, into the next one);
//! - a `promote` or `grant` whose lease runs past what the control plane ever grants (its
//!   clock now plus the lease, the clock skew and the message delay);
//! - an `append` or `join_accept` of an epoch from a region that is not that epoch's primary,
//!   as far as this region knows it: the control plane names each epoch's primary in its
//!   `rejoin` (and epoch 1's is the first primary, and a region promoted into an epoch is its
//!   primary). What it learns is kept in `primaries.json` in its directory, so that a restart
//!   does not forget it.
//!
//! The protocol machine checks the rest itself (a grant or fence of another epoch, an append
//! of another epoch, a join accept it did not ask for); the guard adds what only the edge can
//! see (the authenticated sender) and what the machine accepts from the control plane on
//! trust. Every refusal is logged and counted ([`EdgeStats`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::auth::EdgeStats;
use crate::time::{Millis, Timing};
use drcheck_properties::FIRST_PRIMARY;
use drcheck_protocol::entry::Epoch;
use drcheck_protocol::message::{Envelope, Message, NodeId};

/// A deployment's first epoch, whose primary is [`FIRST_PRIMARY`].
const FIRST_EPOCH: Epoch = drcheck_properties::FIRST_EPOCH as Epoch;

/// Who may send a message of this kind, and to whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    /// Control plane → region.
    Command,
    /// Region → region.
    Peer,
    /// Region → control plane.
    Report,
}

fn flow(msg: &Message) -> Flow {
    match msg {
        Message::Grant { .. }
        | Message::NewEpoch { .. }
        | Message::Promote { .. }
        | Message::Rejoin { .. }
        | Message::Fence { .. }
        | Message::Unfence { .. }
        | Message::OutOfSync { .. } => Flow::Command,
        Message::Append { .. }
        | Message::Confirm { .. }
        | Message::JoinRequest { .. }
        | Message::JoinAccept { .. }
        | Message::Merge { .. } => Flow::Peer,
        Message::Heartbeat(_)
        | Message::Promoted { .. }
        | Message::Rejoined { .. }
        | Message::Fenced { .. }
        | Message::Drained { .. }
        | Message::InSync { .. } => Flow::Report,
    }
}

/// Admits or refuses what arrives at one process (a region or the control plane).
#[derive(Debug)]
pub struct Guard {
    me: NodeId,
    timing: Timing,
    /// The newest epoch this region has heard of from the control plane (or holds).
    newest: Epoch,
    /// Each epoch's primary, as far as this region knows.
    primaries: BTreeMap<Epoch, u8>,
    /// Where `primaries` is kept (`None`: not kept, in tests).
    file: Option<PathBuf>,
    stats: EdgeStats,
}

impl Guard {
    /// The control plane's guard.
    pub fn control(timing: Timing, stats: EdgeStats) -> Guard {
        Guard {
            me: NodeId::Control,
            timing,
            newest: FIRST_EPOCH,
            primaries: BTreeMap::new(),
            file: None,
            stats,
        }
    }

    /// Region `r`'s guard, holding `epoch` durably, keeping what it learns in `file`.
    pub fn region(
        r: u8,
        timing: Timing,
        epoch: Epoch,
        file: Option<PathBuf>,
        stats: EdgeStats,
    ) -> Guard {
        let mut primaries: BTreeMap<Epoch, u8> = file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        primaries.entry(FIRST_EPOCH).or_insert(FIRST_PRIMARY);
        let newest = primaries
            .keys()
            .copied()
            .max()
            .unwrap_or(FIRST_EPOCH)
            .max(epoch);
        Guard {
            me: NodeId::Region(r),
            timing,
            newest,
            primaries,
            file,
            stats,
        }
    }

    /// The counts of what this process's edges refused.
    pub fn stats(&self) -> &EdgeStats {
        &self.stats
    }

    fn learn_primary(&mut self, epoch: Epoch, primary: u8) {
        if self.primaries.insert(epoch, primary) == Some(primary) {
            return;
        }
        // Keep only the recent epochs: older ones no longer take appends.
        while self.primaries.len() > 64 {
            self.primaries.pop_first();
        }
        if let Some(file) = &self.file {
            let text = serde_json::to_string(&self.primaries).unwrap_or_default();
            let partial = file.with_extension("json.partial");
            let written =
                std::fs::write(&partial, text).and_then(|()| std::fs::rename(&partial, file));
            if let Err(e) = written {
                tracing::error!(node = %self.me, "cannot keep {}: {e}", file.display());
            }
        }
    }

    /// Is `envelope` (authenticated as from `envelope.from`) admitted, with the control
    /// plane's clock at `now`? A refusal is logged and counted.
    pub fn admit(&mut self, envelope: &Envelope, now: Millis) -> bool {
        match self.judge(envelope, now) {
            Ok(()) => true,
            Err((reason, why)) => {
                let detail = format!("a {} from {}: {why}", envelope.msg.kind(), envelope.from);
                self.stats.refuse(self.me, reason, detail);
                false
            }
        }
    }

    fn judge(&mut self, envelope: &Envelope, now: Millis) -> Result<(), (&'static str, String)> {
        let (from, msg) = (envelope.from, &envelope.msg);
        let flow = flow(msg);
        let me = match self.me {
            NodeId::Control => {
                return match (flow, from) {
                    (Flow::Report, NodeId::Region(_)) => Ok(()),
                    _ => Err((
                        "not_for_control",
                        "only regions report to the control plane".into(),
                    )),
                };
            }
            NodeId::Region(me) => me,
        };
        match (flow, from) {
            (Flow::Command, NodeId::Control) => {}
            (Flow::Command, NodeId::Region(_)) => {
                return Err((
                    "not_from_control",
                    "only the control plane gives this".into(),
                ))
            }
            (Flow::Peer, NodeId::Region(_)) => {}
            (Flow::Peer, NodeId::Control) => {
                return Err((
                    "not_from_region",
                    "the control plane never sends this".into(),
                ))
            }
            (Flow::Report, _) => {
                return Err((
                    "not_for_a_region",
                    "this is a report to the control plane".into(),
                ))
            }
        }
        // The longest lease the control plane grants, as its clock may read by the time the
        // grant arrives here.
        let longest = now
            .saturating_add(self.timing.lease)
            .saturating_add(self.timing.skew)
            .saturating_add(self.timing.delay);
        match *msg {
            Message::Promote { epoch, expiry } => {
                if epoch > self.newest.saturating_add(2) {
                    return Err((
                        "epoch_jump",
                        format!(
                            "epoch {epoch}, past any the control plane could promote into \
                             (the newest heard of is {})",
                            self.newest
                        ),
                    ));
                }
                if expiry > longest {
                    return Err(("lease_too_long", format!("a lease to {expiry} ms at {now}")));
                }
                self.newest = self.newest.max(epoch);
                self.learn_primary(epoch, me);
            }
            Message::Grant { epoch, expiry, .. } => {
                if expiry > longest {
                    return Err(("lease_too_long", format!("a lease to {expiry} ms at {now}")));
                }
                self.newest = self.newest.max(epoch);
            }
            Message::Rejoin { epoch, primary } => {
                self.newest = self.newest.max(epoch);
                if primary != me {
                    self.learn_primary(epoch, primary);
                }
            }
            Message::NewEpoch { epoch }
            | Message::Fence { epoch, .. }
            | Message::Unfence { epoch, .. }
            | Message::OutOfSync { epoch, .. } => self.newest = self.newest.max(epoch),
            Message::Append { epoch, .. } | Message::JoinAccept { epoch, .. } => {
                let NodeId::Region(sender) = from else {
                    return Ok(());
                };
                if let Some(&primary) = self.primaries.get(&epoch) {
                    if primary != sender {
                        return Err((
                            "not_from_primary",
                            format!("epoch {epoch}'s primary is region {primary}"),
                        ));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(from: NodeId, msg: Message) -> Envelope {
        Envelope {
            from,
            to: NodeId::Region(1),
            msg,
        }
    }

    fn guard() -> Guard {
        let timing = crate::time::default_timing();
        Guard::region(1, timing, 1, None, EdgeStats::default())
    }

    #[test]
    fn commands_only_from_the_control_plane_and_appends_only_from_the_primary() {
        let mut g = guard();
        let now = 1_000;
        let promote = |epoch, expiry| Message::Promote { epoch, expiry };
        assert!(!g.admit(&env(NodeId::Region(0), promote(2, now)), now));
        assert!(!g.admit(&env(NodeId::Region(0), Message::NewEpoch { epoch: 2 }), now));
        assert!(!g.admit(&env(NodeId::Control, promote(50, now)), now));
        assert!(!g.admit(&env(NodeId::Control, promote(2, u64::MAX / 4)), now));
        let append = |epoch| Message::Append {
            epoch,
            start: 0,
            entries: vec![],
            prev: None,
        };
        assert!(g.admit(&env(NodeId::Region(0), append(1)), now));
        assert!(!g.admit(&env(NodeId::Region(2), append(1)), now));
        assert!(!g.admit(&env(NodeId::Control, append(1)), now));
        assert!(g.admit(
            &env(
                NodeId::Control,
                Message::Rejoin {
                    epoch: 3,
                    primary: 2
                }
            ),
            now
        ));
        assert!(g.admit(&env(NodeId::Region(2), append(3)), now));
        assert!(!g.admit(&env(NodeId::Region(0), append(3)), now));
        assert!(g.admit(&env(NodeId::Control, promote(4, now + 5 * 60_000)), now));
        // Epochs at the end of their range do not overflow the checks.
        let last = Epoch::MAX;
        assert!(g.admit(
            &env(NodeId::Control, Message::NewEpoch { epoch: last }),
            now
        ));
        assert!(g.admit(&env(NodeId::Control, promote(last, now)), u64::MAX));
        let counts = g.stats().counts();
        assert_eq!(counts.refused["not_from_control"], 2);
        assert_eq!(counts.refused["epoch_jump"], 1);
        assert_eq!(counts.refused["lease_too_long"], 1);
        assert_eq!(counts.refused["not_from_primary"], 2);
        assert_eq!(counts.refused["not_from_region"], 1);
    }
}
