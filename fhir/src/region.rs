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
    Protocol(RegionInput),
    /// A FHIR write, checked against the current versions, then appended.
    Write {
        write: WriteId,
        request: WriteRequest,
        unix_ms: u64,
        /// The quarantined write an operator re-applies with this one.
        reapply_of: Option<WriteId>,
    },
    /// The current version, one version, or the history of a resource.
    Read {
        kind: String,
        id: String,
        version: Option<u64>,
        history: bool,
    },
    /// What the status API shows.
    Summary,
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
/// conditional write that found its match), or failed.
pub type FhirWriteResult = Result<Option<(Ack, Change)>, Failure>;

/// A FHIR region's answer, one kind per kind of input.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "output", content = "value", rename_all = "snake_case")]
pub enum FhirOutput {
    Protocol(RegionOutput),
    Written(FhirWriteResult),
    Read(Result<Vec<Change>, Failure>),
    Summary(Box<RegionSummary>),
}

/// A request that failed, as the endpoint will tell the client.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    pub status: u16,
    pub code: String,
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
    pub region: u8,
    pub role: Role,
    pub epoch: Epoch,
    pub log_len: u64,
    pub last_write: Option<WriteId>,
    pub lease_left_ms: Millis,
    pub accepts_writes: bool,
    pub in_sync: Vec<u8>,
    /// As primary: age of its oldest write no in-sync secondary confirmed, or of its oldest
    /// unconfirmed write when none is in sync: what would be lost if it died now.
    pub loss_window_ms: Option<Millis>,
    pub quarantine: Vec<QuarantinedWrite>,
    pub resources: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuarantinedWrite {
    pub write: WriteId,
    pub epoch: Epoch,
    pub reapplied: bool,
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
    pub fn new(machine: RegionMachine, minute_ms: u64) -> FhirRegion {
        let index = Index::rebuild(machine.log());
        FhirRegion {
            machine,
            index,
            minute_ms,
        }
    }

    /// Brings the index up to the log (rebuilt when the log was truncated on rejoin).
    fn sync(&mut self, rebuild: bool) {
        let len = self.machine.log().len() as u64;
        if rebuild || self.index.indexed() > len {
            self.index = Index::rebuild(self.machine.log());
        } else if self.index.indexed() < len {
            self.index.extend(self.machine.log());
        }
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
        self.sync(false);
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
                    self.sync(false);
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
        self.sync(false);
        let log = self.machine.log();
        Ok(match (history, version) {
            (true, _) => index::history(&self.index, log, kind, id)?,
            (false, Some(v)) => vec![index::vread(&self.index, log, kind, id, v)?],
            (false, None) => vec![index::read(&self.index, log, kind, id)?],
        })
    }

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
            quarantine: self
                .machine
                .quarantine()
                .iter()
                .map(|q| QuarantinedWrite {
                    write: q.entry.write,
                    epoch: q.entry.epoch,
                    reapplied: q.reapplied,
                    payload: q.entry.payload.clone(),
                })
                .collect(),
            resources: self.index.len(),
        }
    }
}

impl FhirRegion {
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
            FhirInput::Protocol(input) => {
                let output = self.machine.handle(now, input, fx);
                let rejoined = fx
                    .events
                    .iter()
                    .any(|e| matches!(e, Event::Rejoined { .. }));
                self.sync(rejoined);
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
