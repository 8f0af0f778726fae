//! The operator's side of a deployment, written once for the in-process
//! [`crate::deployment::Deployment`] and the networked endpoint: who is the operator, whether
//! the endpoint can reach a writable primary, and how a quarantined write is re-applied, over
//! [`Cluster`], the one interface both implement.

use drcheck_fhir::region::{Failure, FhirWriteResult};
use drcheck_fhir::{Change, WriteRequest};
use drcheck_properties::Status;
use drcheck_protocol::control::Routing;
use drcheck_protocol::entry::{Epoch, WriteId};
use drcheck_protocol::refusal::OperatorRefusal;
use drcheck_protocol::region::Ack;
use serde::{Deserialize, Serialize};

/// Compares two secrets in time that depends only on their lengths.
pub fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Why the endpoint cannot reach a writable data primary by the routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unreachable {
    /// The compute region (held) is down.
    #[error("compute region {0} is down")]
    ComputeDown(u8),
    /// The data primary (held) is down.
    #[error("data primary {0} is down")]
    PrimaryDown(u8),
    /// The compute region or the data primary is isolated.
    #[error("the compute region {compute} or the data primary {primary} is cut off")]
    CutOff {
        /// The compute region.
        compute: u8,
        /// The data primary.
        primary: u8,
    },
    /// Compute and data primary are different regions and the link between regions is cut.
    #[error("compute region {compute} cannot reach data primary {primary}")]
    Partitioned {
        /// The compute region.
        compute: u8,
        /// The data primary.
        primary: u8,
    },
}

/// Can the endpoint reach the data primary through the compute region? `status` tells each
/// region's status, `partitioned` whether the inter-region link is cut.
pub fn route(
    routing: &Routing,
    status: impl Fn(u8) -> Status,
    partitioned: bool,
) -> Result<(), Unreachable> {
    let (compute, primary) = (routing.compute, routing.primary);
    match (status(compute), status(primary)) {
        (Status::Down, _) => Err(Unreachable::ComputeDown(compute)),
        (_, Status::Down) => Err(Unreachable::PrimaryDown(primary)),
        (Status::Isolated, _) | (_, Status::Isolated) => {
            Err(Unreachable::CutOff { compute, primary })
        }
        _ if compute != primary && partitioned => {
            Err(Unreachable::Partitioned { compute, primary })
        }
        _ => Ok(()),
    }
}

/// One quarantined write, as the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineItem {
    /// The region whose quarantine holds it.
    pub region: u8,
    /// The write's id.
    pub write: WriteId,
    /// The epoch it was acknowledged in.
    pub epoch: Epoch,
    /// An operator re-applied it already (as a new write).
    pub reapplied: bool,
    /// The log entry's payload: the FHIR change that was lost.
    pub payload: String,
}

/// The write that re-applies quarantined write `write`, found in `items` (every quarantine
/// the caller can read), or why it cannot be re-applied. `up`: is a region running?
pub fn reapply_request(
    items: &[QuarantineItem],
    write: WriteId,
    up: impl Fn(u8) -> bool,
) -> Result<WriteRequest, OperatorRefusal> {
    let held: Vec<&QuarantineItem> = items.iter().filter(|q| q.write == write).collect();
    let Some(item) = held.first() else {
        return Err(OperatorRefusal::NotQuarantined { write });
    };
    if held.iter().any(|q| q.reapplied) {
        return Err(OperatorRefusal::AlreadyReapplied { write });
    }
    if !held.iter().any(|q| up(q.region)) {
        return Err(OperatorRefusal::HolderDown {
            region: item.region,
            write,
        });
    }
    let change = Change::from_payload(&item.payload).map_err(|e| OperatorRefusal::Unreadable {
        write,
        reason: e.to_string(),
    })?;
    Ok(change.reapply_request())
}

/// A deployment as the operator's logic sees it, whether its regions run in this process
/// ([`crate::deployment::Deployment`]) or as processes behind the endpoint.
// Used only through generics inside this crate, so callers see the concrete futures (and
// whether they are `Send`).
#[allow(async_fn_in_trait)]
pub trait Cluster {
    /// What goes wrong on the way (the deployment's error; the endpoint's finished answer).
    type Error;

    /// Every quarantined write it can read.
    async fn quarantine(&mut self) -> Result<Vec<QuarantineItem>, Self::Error>;

    /// Is region `r` running?
    fn running(&self, r: u8) -> bool;

    /// A FHIR write at the data primary, by the routing.
    async fn write(
        &mut self,
        request: WriteRequest,
        reapply_of: Option<WriteId>,
    ) -> Result<FhirWriteResult, Self::Error>;

    /// Every region marks quarantined write `write` as re-applied.
    async fn mark_reapplied(&mut self, write: WriteId) -> Result<(), Self::Error>;
}

/// Why a re-apply wrote nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReapplyFailed {
    /// Refused before writing (not quarantined, re-applied already, holder down, unreadable).
    Refused(OperatorRefusal),
    /// The data primary did not take the write.
    Write(Failure),
}

/// Re-applies quarantined write `write` as a new write at the data primary and marks it in
/// every quarantine: what the primary acknowledged (`None`: the change had nothing left to
/// do), or why nothing was written.
pub async fn reapply<C: Cluster>(
    cluster: &mut C,
    write: WriteId,
) -> Result<Result<Option<(Ack, Change)>, ReapplyFailed>, C::Error> {
    let items = cluster.quarantine().await?;
    let request = match reapply_request(&items, write, |r| cluster.running(r)) {
        Ok(request) => request,
        Err(refusal) => return Ok(Err(ReapplyFailed::Refused(refusal))),
    };
    match cluster.write(request, Some(write)).await? {
        Ok(written) => {
            // Every region that quarantined it (with three regions, two may have).
            cluster.mark_reapplied(write).await?;
            Ok(Ok(written))
        }
        Err(failure) => Ok(Err(ReapplyFailed::Write(failure))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drcheck_properties::Status::{Down, Isolated, Up};

    fn routing(compute: u8, primary: u8) -> Routing {
        Routing {
            epoch: 1,
            primary,
            compute,
            home: 0,
        }
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("token", "token"));
        assert!(!same_secret("token", "tokem"));
        assert!(!same_secret("tok", "token"));
        assert!(!same_secret("", "token"));
    }

    #[test]
    fn the_route_needs_both_regions_up_and_linked() {
        let all = |s: Status| move |_| s;
        assert_eq!(route(&routing(0, 0), all(Up), true), Ok(()));
        assert_eq!(route(&routing(0, 1), all(Up), false), Ok(()));
        assert_eq!(
            route(&routing(0, 1), all(Up), true),
            Err(Unreachable::Partitioned {
                compute: 0,
                primary: 1
            })
        );
        assert_eq!(
            route(&routing(0, 1), |r| if r == 0 { Down } else { Up }, false),
            Err(Unreachable::ComputeDown(0))
        );
        assert_eq!(
            route(&routing(0, 1), |r| if r == 1 { Down } else { Up }, false),
            Err(Unreachable::PrimaryDown(1))
        );
        assert_eq!(
            route(&routing(1, 1), all(Isolated), false),
            Err(Unreachable::CutOff {
                compute: 1,
                primary: 1
            })
        );
    }

    fn item(region: u8, reapplied: bool, payload: &str) -> QuarantineItem {
        QuarantineItem {
            region,
            write: 7,
            epoch: 1,
            reapplied,
            payload: payload.to_string(),
        }
    }

    #[test]
    fn a_reapply_is_refused_with_its_reason() {
        let up = |_| true;
        assert_eq!(
            reapply_request(&[], 7, up),
            Err(OperatorRefusal::NotQuarantined { write: 7 })
        );
        assert_eq!(
            reapply_request(&[item(0, false, "{}"), item(1, true, "{}")], 7, up),
            Err(OperatorRefusal::AlreadyReapplied { write: 7 })
        );
        assert_eq!(
            reapply_request(&[item(1, false, "{}")], 7, |r| r != 1),
            Err(OperatorRefusal::HolderDown {
                region: 1,
                write: 7
            })
        );
        assert!(matches!(
            reapply_request(&[item(0, false, "not json")], 7, up),
            Err(OperatorRefusal::Unreadable { write: 7, .. })
        ));
    }
}
