//! A region that serves FHIR: the protocol's region machine plus an index of the resource
//! versions its log holds. A FHIR write is checked against the current versions and appended
//! in one step of the region's task, so `If-Match` and version numbers cannot race.

use crate::change::Change;
use crate::index::{self, Index, WriteRequest};
use crate::outcome::FhirError;
use drcheck_properties::Role;
use drcheck_protocol::entry::{Epoch, WriteId};
use drcheck_protocol::event::{Event, Refusal};
use drcheck_protocol::message::Envelope;
use drcheck_protocol::region::{Ack, RegionInput, RegionMachine, RegionOutput};
use drcheck_protocol::time::{Millis, MINUTE};
use drcheck_protocol::Effects;

/// What a FHIR region is asked to handle: the region machine's own inputs, and FHIR.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "fhir", content = "value", rename_all = "snake_case")]
pub enum FhirInput {
    /// An input of the protocol's region machine (tick, message, snapshot, …).
    Protocol(RegionInput),
    /// A FHIR write, checked against the current versions, then appended.
    Write {
        /// The write's id (also, in hex, the id a create gets).
        write: WriteId,
        /// The validated request.
        request: WriteRequest,
        /// The wall time of the write, in Unix milliseconds (`meta.lastUpdated`).
        unix_ms: u64,
        /// The quarantined write an operator re-applies with this one.
        reapply_of: Option<WriteId>,
    },
    /// The current version, one version, or the history of a resource.
    Read {
        /// The resource type.
        kind: String,
        /// The resource's id.
        id: String,
        /// The version to read (`vread`); `None` for the current one.
        version: Option<u64>,
        /// Read every version, oldest first (`version` is then ignored).
        history: bool,
    },
    /// What the status API shows.
    Summary,
    /// A page of the quarantine: from its `from`th write, as many as fit in `max_bytes` of
    /// payload (at least one), so that no answer grows with the quarantine.
    Quarantine {
        /// The first write's position in the quarantine (0 first).
        from: usize,
        /// Most payload bytes in the page, beyond its first write.
        max_bytes: usize,
    },
}

impl From<Envelope> for FhirInput {
    fn from(envelope: Envelope) -> Self {
        FhirInput::Protocol(RegionInput::Message(envelope))
    }
}

impl drcheck_protocol::Inbound for FhirInput {
    fn tick() -> Self {
        FhirInput::Protocol(RegionInput::Tick)
    }
}

/// A FHIR write's result: acknowledged (with the change it made), nothing to do (`None`: a
/// delete of a resource already deleted), or failed.
pub type FhirWriteResult = Result<Option<(Ack, Change)>, Failure>;

/// A FHIR region's answer, one kind per kind of input.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "output", content = "value", rename_all = "snake_case")]
pub enum FhirOutput {
    /// The region machine's answer to a [`FhirInput::Protocol`] input.
    Protocol(RegionOutput),
    /// To a write.
    Written(FhirWriteResult),
    /// To a read: the version(s) asked for (one, or the whole history), or why not.
    Read(Result<Vec<Change>, Failure>),
    /// To a summary request.
    Summary(Box<RegionSummary>),
    /// To a quarantine request.
    Quarantine(QuarantinePage),
}

/// A page of a region's quarantine.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuarantinePage {
    /// The writes, in quarantine order.
    pub items: Vec<QuarantinedWrite>,
    /// Where the next page starts (`None`: this was the last).
    pub next: Option<usize>,
    /// How many writes the quarantine holds.
    pub total: usize,
}

/// A request that failed, as the endpoint will tell the client.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    /// The HTTP status code.
    pub status: u16,
    /// The `OperationOutcome.issue.code` (see [`FhirError::code`]).
    pub code: String,
    /// Human-readable detail, for `OperationOutcome.issue.diagnostics`.
    pub diagnostics: String,
    /// Seconds to wait before retrying (throttled, unavailable).
    pub retry_after: Option<u64>,
    /// The protocol's refusal behind it, if the region refused the request (not the FHIR
    /// content): the endpoint refreshes its routing on one, the deployment reports it.
    #[serde(default)]
    pub refusal: Option<Refusal>,
}

/// A region as the status API shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RegionSummary {
    /// The region's number.
    pub region: u8,
    /// The role it believes it has.
    pub role: Role,
    /// Its epoch.
    pub epoch: Epoch,
    /// How many entries its log holds.
    pub log_len: u64,
    /// The id of its log's last write.
    pub last_write: Option<WriteId>,
    /// Protocol time until its lease expires, in ms on its own clock (0: no lease).
    pub lease_left_ms: Millis,
    /// Would it acknowledge a write now (role, lease and throttle)?
    pub accepts_writes: bool,
    /// As primary: the secondaries it counts as in sync.
    pub in_sync: Vec<u8>,
    /// As primary: age of its oldest write no in-sync secondary confirmed, or of its oldest
    /// unconfirmed write when none is in sync: what would be lost if it died now.
    pub loss_window_ms: Option<Millis>,
    /// How many writes its lost-writes quarantine holds (their list comes by pages:
    /// [`FhirInput::Quarantine`]).
    pub quarantined: usize,
    /// How many resources its log holds, deleted ones included.
    pub resources: usize,
    /// What the region's process refused at its network edge and the largest frames it
    /// sent and received: filled by the process that runs the machine (empty in-process).
    #[serde(default)]
    pub edge: EdgeReport,
}

/// What a process's network edge refused or could not send, by reason, and the largest frames
/// that went through (see `drcheck-impl`'s `auth::EdgeStats`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EdgeReport {
    /// Frames or connections refused on arrival, by reason (`bad_mac`, `out_of_sequence`,
    /// `not_from_control`, …).
    pub refused: std::collections::BTreeMap<String, u64>,
    /// Frames that could not be sent as they were, by reason (`frame_split`, …).
    pub errors: std::collections::BTreeMap<String, u64>,
    /// The longest frame sent, in bytes.
    pub largest_sent: u64,
    /// The longest frame received, in bytes.
    pub largest_received: u64,
}

/// A write in a region's lost-writes quarantine, as the status API shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuarantinedWrite {
    /// The write's id.
    pub write: WriteId,
    /// The epoch it was acknowledged in.
    pub epoch: Epoch,
    /// An operator re-applied it (as a new write).
    pub reapplied: bool,
    /// Its log entry's payload: the FHIR [`Change`] that was lost.
    pub payload: String,
}

/// A region that serves FHIR: the protocol's region machine and the index of its log.
pub struct FhirRegion {
    machine: RegionMachine,
    index: Index,
    /// Wall milliseconds per protocol minute (to turn protocol time into Retry-After).
    minute_ms: u64,
}

impl From<FhirError> for Failure {
    fn from(e: FhirError) -> Failure {
        Failure {
            status: e.status,
            code: e.code.to_string(),
            diagnostics: e.diagnostics,
            retry_after: None,
            refusal: None,
        }
    }
}

impl FhirRegion {
    /// Serves FHIR from `machine`, its index rebuilt from the machine's log; `minute_ms`:
    /// wall milliseconds per protocol minute.
    pub fn new(machine: RegionMachine, minute_ms: u64) -> FhirRegion {
        let index = Index::rebuild(machine.log());
        FhirRegion {
            machine,
            index,
            minute_ms,
        }
    }

    /// Brings the index up to the log (rebuilt if the log is shorter than what it indexed).
    fn sync(&mut self) {
        let len = self.machine.log().len() as u64;
        if self.index.indexed() > len {
            self.rebuild();
        } else if self.index.indexed() < len {
            self.index.extend(self.machine.log());
        }
    }

    /// Indexes the whole log again (after a rejoin moved or replaced part of it).
    fn rebuild(&mut self) {
        self.index = Index::rebuild(self.machine.log());
    }

    /// Protocol time as whole wall seconds, at least 1.
    fn wall_seconds(&self, protocol: Millis) -> u64 {
        (protocol.saturating_mul(self.minute_ms) / MINUTE)
            .div_ceil(1000)
            .max(1)
    }

    fn failure(&self, refusal: &Refusal) -> Failure {
        let minute = self.wall_seconds(MINUTE);
        let (status, code, retry_after) = match refusal {
            Refusal::Throttled { retry_after } => {
                (429, "throttled", self.wall_seconds(*retry_after))
            }
            _ => (503, "transient", minute),
        };
        Failure {
            status,
            code: code.to_string(),
            diagnostics: format!("region {}: {refusal}", self.machine.id()),
            retry_after: Some(retry_after),
            refusal: Some(refusal.clone()),
        }
    }

    /// `write`: the write's id and the quarantined write it re-applies, if any.
    fn write(
        &mut self,
        now: Millis,
        (write, reapply_of): (WriteId, Option<WriteId>),
        request: WriteRequest,
        unix_ms: u64,
        fx: &mut Effects,
    ) -> FhirWriteResult {
        if let Some(refusal) = self.machine.refusal(now) {
            fx.events.push(Event::WriteRefused {
                region: self.machine.id(),
                write,
                reason: refusal.clone(),
            });
            return Err(self.failure(&refusal));
        }
        self.sync();
        let new_id = format!("{write:x}");
        let Some(change) = index::prepare(&self.index, request, &new_id, unix_ms)? else {
            return Ok(None);
        };
        match self
            .machine
            .write(now, write, change.to_payload(), reapply_of, fx)
        {
            Ok(ack) => {
                if !self.index.record(ack.index, &change) {
                    self.sync();
                }
                Ok(Some((ack, change)))
            }
            Err(refusal) => Err(self.failure(&refusal)),
        }
    }

    fn read(
        &mut self,
        now: Millis,
        kind: &str,
        id: &str,
        version: Option<u64>,
        history: bool,
    ) -> Result<Vec<Change>, Failure> {
        // Reads are served by the data primary under its lease, so they see every
        // acknowledged write (the throttle only holds back writes).
        match self.machine.refusal(now) {
            None | Some(Refusal::Throttled { .. }) => {}
            Some(refusal) => return Err(self.failure(&refusal)),
        }
        self.sync();
        let log = self.machine.log();
        Ok(match (history, version) {
            (true, _) => index::history(&self.index, log, kind, id)?,
            (false, Some(v)) => vec![index::vread(&self.index, log, kind, id, v)?],
            (false, None) => vec![index::read(&self.index, log, kind, id)?],
        })
    }

    /// What the status API shows of this region at `now` (its own clock).
    pub fn summary(&self, now: Millis) -> RegionSummary {
        let log = self.machine.log();
        RegionSummary {
            region: self.machine.id(),
            role: self.machine.role(),
            epoch: self.machine.epoch(),
            log_len: log.len() as u64,
            last_write: log.last().map(|e| e.write),
            lease_left_ms: self.machine.lease_left(now),
            accepts_writes: self.machine.refusal(now).is_none(),
            in_sync: self.machine.in_sync_regions(),
            loss_window_ms: self.machine.exposure(now),
            quarantined: self.machine.quarantine().len(),
            edge: EdgeReport::default(),
            resources: self.index.len(),
        }
    }

    /// A page of the quarantine: from its `from`th write, at most `max_bytes` of payload
    /// beyond the first.
    pub fn quarantine_page(&self, from: usize, max_bytes: usize) -> QuarantinePage {
        let all = self.machine.quarantine();
        let mut bytes = 0usize;
        let items: Vec<QuarantinedWrite> = all
            .iter()
            .skip(from)
            .enumerate()
            .take_while(|(i, q)| {
                bytes = bytes.saturating_add(q.entry.payload.len());
                *i == 0 || bytes <= max_bytes
            })
            .map(|(_, q)| QuarantinedWrite {
                write: q.entry.write,
                epoch: q.entry.epoch,
                reapplied: q.reapplied,
                payload: q.entry.payload.clone(),
            })
            .collect();
        let end = from.saturating_add(items.len());
        QuarantinePage {
            items,
            next: (end < all.len()).then_some(end),
            total: all.len(),
        }
    }

    /// The region this is.
    pub fn id(&self) -> u8 {
        self.machine.id()
    }

    /// Handles one input at `now` (this region's clock).
    pub fn handle(&mut self, now: Millis, input: FhirInput, fx: &mut Effects) -> FhirOutput {
        match input {
            FhirInput::Write {
                write,
                request,
                unix_ms,
                reapply_of,
            } => FhirOutput::Written(self.write(now, (write, reapply_of), request, unix_ms, fx)),
            FhirInput::Read {
                kind,
                id,
                version,
                history,
            } => FhirOutput::Read(self.read(now, &kind, &id, version, history)),
            FhirInput::Summary => FhirOutput::Summary(Box::new(self.summary(now))),
            FhirInput::Quarantine { from, max_bytes } => {
                FhirOutput::Quarantine(self.quarantine_page(from, max_bytes))
            }
            FhirInput::Protocol(input) => {
                let output = self.machine.handle(now, input, fx);
                let rejoined = fx
                    .events
                    .iter()
                    .any(|e| matches!(e, Event::Rejoined { .. }));
                if rejoined {
                    self.rebuild();
                } else {
                    self.sync();
                }
                FhirOutput::Protocol(output)
            }
        }
    }

    /// The answer to `input` when persisting its effects failed (the region stops).
    pub fn store_failed(input: &FhirInput) -> FhirOutput {
        match input {
            FhirInput::Protocol(input) => FhirOutput::Protocol(RegionMachine::store_failed(input)),
            _ => FhirOutput::Written(Err(Failure {
                status: 503,
                code: "transient".to_string(),
                diagnostics: "the region's store failed; it stopped".to_string(),
                retry_after: Some(1),
                refusal: Some(Refusal::StoreFailed),
            })),
        }
    }
}
