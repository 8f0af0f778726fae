//! Clients: FHIR creates through the endpoint's routing or inside one region, through the
//! same `FhirRegion` step `drcheck serve` runs.

use drcheck_properties::Status;

use super::{DeployError, Deployment, WriteOutcome};
use crate::operator::{self};
use drcheck_fhir::region::{FhirInput, FhirOutput, FhirWriteResult};
use drcheck_fhir::WriteRequest;
use drcheck_protocol::entry::WriteId;
use drcheck_protocol::event::Refusal;

impl Deployment {
    pub(super) fn next_write_id(&mut self) -> WriteId {
        let id = self.next_write;
        self.next_write += 1;
        id
    }

    /// A write through the global endpoint: to the compute region, which forwards it to the
    /// data primary.
    pub async fn write(&mut self, resource: String) -> Result<WriteOutcome, DeployError> {
        let request = create_request(&resource)?;
        let written = self.write_routed(request, None).await?;
        acknowledged(written)
    }

    pub(super) async fn write_routed(
        &mut self,
        request: WriteRequest,
        reapply_of: Option<WriteId>,
    ) -> Result<FhirWriteResult, DeployError> {
        let routing = self.control_state().await?.routing;
        let status = |r: u8| self.status(r).unwrap_or(Status::Down);
        if operator::route(&routing, status, self.links.is_partitioned()).is_err() {
            return Ok(Err(unavailable()));
        }
        self.write_to(routing.primary, request, reapply_of).await
    }

    /// A client inside region `r` creates `resource` (it reaches `r` even while `r` is cut
    /// off).
    pub async fn write_at(&mut self, r: u8, resource: String) -> Result<WriteOutcome, DeployError> {
        self.slot(r)?;
        let request = create_request(&resource)?;
        let written = self.write_to(r, request, None).await?;
        acknowledged(written)
    }

    /// A FHIR write at region `r`: the same `FhirRegion` step `drcheck serve` runs.
    pub(super) async fn write_to(
        &mut self,
        r: u8,
        request: WriteRequest,
        reapply_of: Option<WriteId>,
    ) -> Result<FhirWriteResult, DeployError> {
        let write = self.next_write_id();
        let input = FhirInput::Write {
            write,
            request,
            unix_ms: crate::time::unix_ms(),
            reapply_of,
        };
        let written = match self.ask_region(r, input).await {
            Some(FhirOutput::Written(written)) => written,
            _ => Err(unavailable()),
        };
        self.settle().await?;
        Ok(written)
    }
}

/// A client's create of `resource` (FHIR JSON), validated as the endpoint validates it.
pub(super) fn create_request(resource: &str) -> Result<WriteRequest, DeployError> {
    let Ok(serde_json::Value::Object(body)) = serde_json::from_str(resource) else {
        return Err(DeployError::Fhir(format!("not a JSON object: {resource}")));
    };
    let kind = body
        .get("resourceType")
        .and_then(|k| k.as_str())
        .map(str::to_string)
        .ok_or_else(|| DeployError::Fhir(format!("no resourceType in {resource}")))?;
    drcheck_fhir::validate::check_type(&kind).map_err(|e| DeployError::Fhir(e.to_string()))?;
    drcheck_fhir::validate::check_resource(&kind, None, &body)
        .map_err(|e| DeployError::Fhir(e.to_string()))?;
    Ok(WriteRequest::Create {
        kind,
        resource: body,
    })
}

/// The answer when no writable primary is reachable (or it stopped mid-request).
pub(super) fn unavailable() -> drcheck_fhir::region::Failure {
    drcheck_fhir::region::Failure {
        status: 503,
        code: "transient".to_string(),
        diagnostics: Refusal::Unavailable.to_string(),
        retry_after: Some(1),
        refusal: Some(Refusal::Unavailable),
    }
}

/// A FHIR write's result as the protocol sees it: acknowledged, or refused by the protocol.
/// A failure of the content (the deployment's callers write valid resources) is an error.
pub(super) fn acknowledged(written: FhirWriteResult) -> Result<WriteOutcome, DeployError> {
    match written {
        Ok(Some((ack, _))) => Ok(Ok(ack)),
        Ok(None) => Err(DeployError::Fhir("the write changed nothing".into())),
        Err(failure) => match failure.refusal {
            Some(refusal) => Ok(Err(refusal)),
            None => Err(DeployError::Fhir(failure.diagnostics)),
        },
    }
}
