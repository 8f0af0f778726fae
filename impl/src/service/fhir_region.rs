//! A region that serves FHIR: the protocol's region machine plus an index of the resource
//! versions its log holds. A FHIR write is checked against the current versions and appended
//! in one step of the region's task, so `If-Match` and version numbers cannot race.

use drcheck_protocol::entry::WriteId;
use drcheck_protocol::event::{Event, Refusal};
use crate::fhir::change::Change;
use crate::fhir::index::{self, Index, WriteRequest};
use crate::fhir::outcome::FhirError;
use crate::node::{FhirWriteResult, Input, Machine, Output};
use drcheck_protocol::region::RegionMachine;
use drcheck_protocol::Effects;
use crate::service::rpc::{Failure, QuarantinedWrite, RegionSummary};
use crate::time::{Millis, MINUTE};

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
                self.sync(false);
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

impl Machine for FhirRegion {
    fn node(&self) -> drcheck_protocol::message::NodeId {
        self.machine.node()
    }

    fn handle(&mut self, now: Millis, input: Input, fx: &mut Effects) -> Output {
        match input {
            Input::FhirWrite {
                write,
                request,
                unix_ms,
                reapply_of,
            } => Output::FhirWritten(self.write(now, (write, reapply_of), request, unix_ms, fx)),
            Input::FhirRead {
                kind,
                id,
                version,
                history,
            } => Output::FhirRead(self.read(now, &kind, &id, version, history)),
            Input::Summary => Output::Summary(Box::new(self.summary(now))),
            other => {
                let output = self.machine.handle(now, other, fx);
                let rejoined = fx
                    .events
                    .iter()
                    .any(|e| matches!(e, Event::Rejoined { .. }));
                self.sync(rejoined);
                output
            }
        }
    }
}
