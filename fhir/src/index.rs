//! Where each version of each resource sits in a region's log, and the FHIR interactions
//! on top of it: write preparation at the primary, and reads at any region.
//!
//! The log is the only durable state; the index is derived from it and can always be
//! rebuilt ([`Index::rebuild`]) or caught up ([`Index::extend`]) after appends. A write is
//! prepared against the index and must be appended before the next one is prepared (the
//! caller does both under one lock), because versions and If-Match are judged against the
//! index's view of the current version.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::change::{rfc3339_millis, Change};
use crate::outcome::FhirError;
use crate::validate::{check_id, check_resource, check_type};
use drcheck_protocol::entry::LogEntry;

/// One version of a resource: what it is and where the log holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The version number (`meta.versionId`): 1 for the first, then +1 per change.
    pub version: u64,
    /// The position of its log entry.
    pub log_index: u64,
    /// A tombstone: the resource is deleted as of this version.
    pub deleted: bool,
    /// When the primary prepared it, RFC 3339 UTC with milliseconds (`meta.lastUpdated`).
    pub last_updated: String,
}

/// Every version of every resource in a log prefix `[0, indexed)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Index {
    /// kind → id → versions, oldest first with strictly increasing version numbers.
    /// Nested maps (not one keyed by a pair) so lookups can borrow `&str`s.
    resources: BTreeMap<String, BTreeMap<String, Vec<Version>>>,
    indexed: u64,
    skipped: u64,
}

impl Index {
    /// The index of a whole log.
    pub fn rebuild(log: &[LogEntry]) -> Index {
        let mut index = Index::default();
        index.extend(log);
        index
    }

    /// Indexes the entries from [`Index::indexed`] to the end of `log`.
    ///
    /// An entry is skipped (and counted in [`Index::skipped`]) if its payload is not a
    /// [`Change`], or if its version does not exceed the resource's current one: such a
    /// change was prepared against another history (a quarantined write re-appended as it
    /// was, say) and would make versions ambiguous. Re-applying a write must go through
    /// [`prepare`] again.
    ///
    /// The index assumes `log` extends the log it indexed. After a region truncates its log
    /// (on rejoin), rebuild instead; reads detect a stale index and fail with 500.
    pub fn extend(&mut self, log: &[LogEntry]) {
        let start = usize::try_from(self.indexed).unwrap_or(usize::MAX);
        let Some(new) = log.get(start..) else {
            return;
        };
        for entry in new {
            let log_index = self.indexed;
            self.indexed += 1;
            let added = match Change::from_payload(&entry.payload) {
                Ok(change) => self.add(log_index, &change),
                Err(_) => false,
            };
            if !added {
                self.skipped += 1;
            }
        }
    }

    /// Indexes `change`, which the region just appended as entry `log_index` (the next one):
    /// the change it built, not its payload parsed back (a stale change is counted in
    /// [`Index::skipped`], as [`Index::extend`] counts it). `false`, and nothing recorded, if
    /// the index does not stand just before that entry; the caller then catches up with
    /// [`Index::extend`].
    pub fn record(&mut self, log_index: u64, change: &Change) -> bool {
        if log_index != self.indexed {
            return false;
        }
        self.indexed += 1;
        let added = self.add(log_index, change);
        if !added {
            self.skipped += 1;
        }
        true
    }

    /// Records `change` at `log_index`, unless it is stale; says whether it did.
    fn add(&mut self, log_index: u64, change: &Change) -> bool {
        // Only the version's metadata is kept: the resource itself stays in the log.
        let versions = self
            .resources
            .entry(change.kind.clone())
            .or_default()
            .entry(change.id.clone())
            .or_default();
        if versions.last().is_some_and(|v| v.version >= change.version) {
            return false;
        }
        versions.push(Version {
            version: change.version,
            log_index,
            deleted: change.deleted,
            last_updated: change.last_updated.clone(),
        });
        true
    }

    /// How many log entries the index covers: where the next [`Index::extend`] starts.
    pub fn indexed(&self) -> u64 {
        self.indexed
    }

    /// How many of the indexed entries were not indexable changes.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The latest version of a resource, deleted or not.
    pub fn current(&self, kind: &str, id: &str) -> Option<&Version> {
        self.history(kind, id).last()
    }

    /// A given version of a resource.
    pub fn version(&self, kind: &str, id: &str, version: u64) -> Option<&Version> {
        let versions = self.history(kind, id);
        let at = versions
            .binary_search_by_key(&version, |v| v.version)
            .ok()?;
        versions.get(at)
    }

    /// Every version of a resource, oldest first; empty if it never existed.
    pub fn history(&self, kind: &str, id: &str) -> &[Version] {
        self.resources
            .get(kind)
            .and_then(|ids| ids.get(id))
            .map_or(&[], Vec::as_slice)
    }

    /// How many resources the log holds, deleted ones included.
    pub fn len(&self) -> usize {
        self.resources.values().map(BTreeMap::len).sum()
    }

    /// Does the log hold no resource at all?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A FHIR write as a client asked for it, already validated at the edge. It travels from the
/// region that took the request to the primary, which prepares it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WriteRequest {
    /// `POST /{kind}`: the server picks the id.
    Create {
        /// The resource type.
        kind: String,
        /// The resource as the client sent it.
        resource: Map<String, Value>,
    },
    /// `PUT /{kind}/{id}`, optionally conditional on the current version (`If-Match`).
    Update {
        /// The resource type.
        kind: String,
        /// The resource's id, chosen by the client.
        id: String,
        /// The resource as the client sent it.
        resource: Map<String, Value>,
        /// The version `If-Match` requires to be current, if the header was sent.
        if_match: Option<u64>,
    },
    /// `DELETE /{kind}/{id}`.
    Delete {
        /// The resource type.
        kind: String,
        /// The resource's id.
        id: String,
    },
}

/// Turns a write request into the change to append, judged against `index`, which must
/// cover the whole log. `new_id` is the id a create gets; `unix_ms` is the primary's time.
///
/// Ok(None) means there is nothing to write: deleting a deleted resource succeeds
/// (FHIR deletes are idempotent) without a new version.
pub fn prepare(
    index: &Index,
    request: WriteRequest,
    new_id: &str,
    unix_ms: u64,
) -> Result<Option<Change>, FhirError> {
    match request {
        WriteRequest::Create { kind, resource } => {
            check_type(&kind)?;
            check_resource(&kind, None, &resource)?;
            // The id is the server's own: a bad or reused one is a server bug, not a 4xx.
            check_id(new_id).map_err(|e| {
                FhirError::internal(format!("the server chose a bad id: {}", e.diagnostics))
            })?;
            if index.current(&kind, new_id).is_some() {
                return Err(FhirError::internal(format!(
                    "the server chose the id of an existing {kind}/{new_id}"
                )));
            }
            let id = new_id.to_string();
            Ok(Some(stored(kind, id, 1, unix_ms, resource)))
        }
        WriteRequest::Update {
            kind,
            id,
            resource,
            if_match,
        } => {
            check_type(&kind)?;
            check_id(&id)?;
            check_resource(&kind, Some(&id), &resource)?;
            let version = match (index.current(&kind, &id), if_match) {
                (None, None) => 1, // update as create: the client chose the id
                (None, Some(_)) => {
                    return Err(FhirError::precondition_failed(format!(
                        "If-Match on a resource that does not exist: {kind}/{id}"
                    )))
                }
                (Some(current), Some(_)) if current.deleted => {
                    return Err(FhirError::conflict(format!(
                        "If-Match on a deleted resource: {kind}/{id}"
                    )))
                }
                (Some(current), Some(expected)) if expected != current.version => {
                    return Err(FhirError::precondition_failed(format!(
                        "{kind}/{id} is at version {}, not {expected}",
                        current.version
                    )))
                }
                // Includes an update of a deleted resource, which brings it back.
                (Some(current), _) => next(current)?,
            };
            Ok(Some(stored(kind, id, version, unix_ms, resource)))
        }
        WriteRequest::Delete { kind, id } => {
            check_type(&kind)?;
            check_id(&id)?;
            let current = index
                .current(&kind, &id)
                .ok_or_else(|| not_found(&kind, &id))?;
            if current.deleted {
                return Ok(None);
            }
            Ok(Some(Change {
                version: next(current)?,
                kind,
                id,
                last_updated: rfc3339_millis(unix_ms),
                last_updated_ms: unix_ms,
                deleted: true,
                resource: None,
            }))
        }
    }
}

/// The version after `current`. The log's versions are data, so even overflow is an error.
fn next(current: &Version) -> Result<u64, FhirError> {
    current
        .version
        .checked_add(1)
        .ok_or_else(|| FhirError::internal("version overflow"))
}

/// The change that stores `resource` as `version`: the server sets `id`, `meta.versionId`
/// and `meta.lastUpdated`; the rest of `meta` (profiles, tags, ...) is the client's.
fn stored(
    kind: String,
    id: String,
    version: u64,
    unix_ms: u64,
    mut resource: Map<String, Value>,
) -> Change {
    let last_updated = rfc3339_millis(unix_ms);
    resource.insert("id".into(), Value::String(id.clone()));
    // `check_resource` has made sure a `meta` is an object.
    let mut meta = match resource.remove("meta") {
        Some(Value::Object(meta)) => meta,
        _ => Map::new(),
    };
    meta.insert("versionId".into(), Value::String(version.to_string()));
    meta.insert("lastUpdated".into(), Value::String(last_updated.clone()));
    resource.insert("meta".into(), Value::Object(meta));
    Change {
        kind,
        id,
        version,
        last_updated,
        last_updated_ms: unix_ms,
        deleted: false,
        resource: Some(Value::Object(resource)),
    }
}

/// `GET /{kind}/{id}`: the current version; 404 if it never existed, 410 if deleted.
pub fn read(index: &Index, log: &[LogEntry], kind: &str, id: &str) -> Result<Change, FhirError> {
    let current = existing(index, kind, id)?
        .last()
        .ok_or_else(|| not_found(kind, id))?;
    if current.deleted {
        return Err(FhirError::gone(format!(
            "{kind}/{id} was deleted (version {})",
            current.version
        )));
    }
    load(log, kind, id, current)
}

/// `GET /{kind}/{id}/_history/{version}`: 404 if there is no such version, 410 if that
/// version is a deletion.
pub fn vread(
    index: &Index,
    log: &[LogEntry],
    kind: &str,
    id: &str,
    version: u64,
) -> Result<Change, FhirError> {
    existing(index, kind, id)?;
    let found = index
        .version(kind, id, version)
        .ok_or_else(|| FhirError::not_found(format!("{kind}/{id} has no version {version}")))?;
    if found.deleted {
        return Err(FhirError::gone(format!(
            "version {version} of {kind}/{id} is its deletion"
        )));
    }
    load(log, kind, id, found)
}

/// `GET /{kind}/{id}/_history`: every version, deletions included, newest first (the order
/// of a FHIR history bundle); 404 if the resource never existed.
pub fn history(
    index: &Index,
    log: &[LogEntry],
    kind: &str,
    id: &str,
) -> Result<Vec<Change>, FhirError> {
    existing(index, kind, id)?
        .iter()
        .rev()
        .map(|v| load(log, kind, id, v))
        .collect()
}

/// The versions of a resource that exists or existed, or the error a read returns.
fn existing<'a>(index: &'a Index, kind: &str, id: &str) -> Result<&'a [Version], FhirError> {
    check_type(kind)?;
    check_id(id)?;
    match index.history(kind, id) {
        [] => Err(not_found(kind, id)),
        versions => Ok(versions),
    }
}

fn not_found(kind: &str, id: &str) -> FhirError {
    FhirError::not_found(format!("{kind}/{id} does not exist"))
}

/// The change at `v`'s log entry, checked to be the one the index recorded: an index that
/// is stale against a truncated or replaced log must fail loudly, not serve another write.
fn load(log: &[LogEntry], kind: &str, id: &str, v: &Version) -> Result<Change, FhirError> {
    let entry = usize::try_from(v.log_index)
        .ok()
        .and_then(|i| log.get(i))
        .ok_or_else(|| {
            FhirError::internal(format!("the index is ahead of the log at {}", v.log_index))
        })?;
    let change = Change::from_payload(&entry.payload)?;
    if change.kind != kind || change.id != id || change.version != v.version {
        return Err(FhirError::internal(format!(
            "the index is stale: log entry {} is not version {} of {kind}/{id}",
            v.log_index, v.version
        )));
    }
    Ok(change)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// A log and its index, written the way a primary writes: prepare, append, extend.
    #[derive(Default)]
    struct Primary {
        log: Vec<LogEntry>,
        index: Index,
        clock: u64,
    }

    impl Primary {
        fn write(&mut self, request: WriteRequest) -> Result<Option<Change>, FhirError> {
            self.clock += 1000;
            let new_id = format!("n{}", self.log.len());
            let change = prepare(&self.index, request, &new_id, self.clock)?;
            if let Some(change) = &change {
                self.append(change.to_payload());
            }
            Ok(change)
        }

        fn append(&mut self, payload: String) {
            self.log.push(LogEntry {
                epoch: 1,
                write: self.log.len() as u64 + 1,
                acked_at: self.clock,
                reapply_of: None,
                payload,
            });
            self.index.extend(&self.log);
        }

        fn read(&self, id: &str) -> Result<Change, FhirError> {
            read(&self.index, &self.log, "Patient", id)
        }
    }

    fn body(id: Option<&str>, name: &str) -> Map<String, Value> {
        let mut value = json!({ "resourceType": "Patient", "name": [{ "family": name }] });
        if let Some(id) = id {
            value["id"] = json!(id);
        }
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    fn create(name: &str) -> WriteRequest {
        WriteRequest::Create {
            kind: "Patient".into(),
            resource: body(None, name),
        }
    }

    fn update(id: &str, name: &str, if_match: Option<u64>) -> WriteRequest {
        WriteRequest::Update {
            kind: "Patient".into(),
            id: id.into(),
            resource: body(Some(id), name),
            if_match,
        }
    }

    fn delete(id: &str) -> WriteRequest {
        WriteRequest::Delete {
            kind: "Patient".into(),
            id: id.into(),
        }
    }

    fn family(change: &Change) -> &str {
        change.resource.as_ref().expect("a resource")["name"][0]["family"]
            .as_str()
            .expect("a family name")
    }

    fn status<T: std::fmt::Debug>(result: Result<T, FhirError>) -> u16 {
        result.expect_err("expected an error").status
    }

    #[test]
    fn a_resources_life() {
        let mut p = Primary::default();
        let created = p.write(create("Ann")).expect("create").expect("a change");
        let id = created.id.clone();
        assert_eq!((id.as_str(), created.version), ("n0", 1));

        let updated = p.write(update(&id, "Bea", Some(1))).expect("update");
        assert_eq!(updated.map(|c| c.version), Some(2));
        // A client still holding version 1 must not overwrite version 2.
        assert_eq!(status(p.write(update(&id, "Cat", Some(1)))), 412);
        assert_eq!(family(&p.read(&id).expect("read")), "Bea");

        let tombstone = p.write(delete(&id)).expect("delete").expect("a change");
        assert_eq!((tombstone.version, tombstone.deleted), (3, true));
        assert_eq!(tombstone.resource, None);
        let gone = p.read(&id).expect_err("deleted");
        assert_eq!((gone.status, gone.code), (410, "deleted"));
        // Deleting again writes nothing and succeeds.
        assert_eq!(p.write(delete(&id)), Ok(None));
        assert_eq!(p.log.len(), 3);

        // Old versions stay readable; the deletion itself is gone.
        let v1 = vread(&p.index, &p.log, "Patient", &id, 1).expect("vread 1");
        assert_eq!(family(&v1), "Ann");
        assert_eq!(status(vread(&p.index, &p.log, "Patient", &id, 3)), 410);
        assert_eq!(status(vread(&p.index, &p.log, "Patient", &id, 9)), 404);

        // Conditional updates need a live resource; a plain update resurrects it.
        assert_eq!(status(p.write(update(&id, "Dee", Some(3)))), 409);
        let back = p.write(update(&id, "Dee", None)).expect("resurrect");
        assert_eq!(back.map(|c| c.version), Some(4));
        assert_eq!(family(&p.read(&id).expect("read")), "Dee");

        let versions: Vec<(u64, bool)> = history(&p.index, &p.log, "Patient", &id)
            .expect("history")
            .iter()
            .map(|c| (c.version, c.deleted))
            .collect();
        assert_eq!(versions, [(4, false), (3, true), (2, false), (1, false)]);
        assert_eq!(p.index.len(), 1);
    }

    #[test]
    fn the_server_sets_id_and_meta_and_keeps_the_rest_of_meta() {
        let mut p = Primary {
            clock: 1_795_680_000_000 - 1000,
            ..Primary::default()
        };
        let mut resource = body(Some("client-chosen"), "Ann");
        resource.insert(
            "meta".into(),
            json!({ "versionId": "99", "profile": ["http://example.org/p"] }),
        );
        let request = WriteRequest::Create {
            kind: "Patient".into(),
            resource,
        };
        let change = p.write(request).expect("create").expect("a change");
        let stored = change.resource.expect("a resource");
        assert_eq!(stored["id"], "n0");
        assert_eq!(stored["meta"]["versionId"], "1");
        assert_eq!(stored["meta"]["lastUpdated"], "2026-11-26T08:00:00.000Z");
        assert_eq!(stored["meta"]["profile"][0], "http://example.org/p");
        assert_eq!(change.last_updated, "2026-11-26T08:00:00.000Z");
        assert_eq!(p.index.current("Patient", "n0").map(|v| v.version), Some(1));
        assert!(p.index.current("Patient", "client-chosen").is_none());
    }

    #[test]
    fn writes_to_missing_resources() {
        let mut p = Primary::default();
        assert_eq!(status(p.write(delete("x"))), 404);
        let error = p
            .write(update("x", "Ann", Some(1)))
            .expect_err("precondition failed");
        assert_eq!((error.status, error.code), (412, "conflict"));
        assert!(p.log.is_empty());
        // Update as create: the client picks the id.
        let created = p.write(update("x", "Ann", None)).expect("update as create");
        assert_eq!(created.map(|c| c.version), Some(1));
        assert_eq!(status(p.read("y")), 404);
        assert_eq!(status(history(&p.index, &p.log, "Patient", "y")), 404);
        assert_eq!(status(read(&p.index, &p.log, "Foo", "x")), 404);
        assert_eq!(status(read(&p.index, &p.log, "Patient", "a b")), 400);
    }

    #[test]
    fn prepare_rejects_what_the_edge_should_have() {
        let index = Index::default();
        let mut wrong_type = body(None, "Ann");
        wrong_type.insert("resourceType".into(), json!("Observation"));
        let requests = [
            (
                WriteRequest::Create {
                    kind: "Foo".into(),
                    resource: body(None, "Ann"),
                },
                404,
            ),
            (
                WriteRequest::Create {
                    kind: "Patient".into(),
                    resource: wrong_type,
                },
                400,
            ),
            (update("a b", "Ann", None), 400),
            (
                WriteRequest::Update {
                    kind: "Patient".into(),
                    id: "p1".into(),
                    resource: body(Some("p2"), "Ann"),
                    if_match: None,
                },
                400,
            ),
        ];
        for (request, expected) in requests {
            assert_eq!(status(prepare(&index, request, "n1", 0)), expected);
        }
        // A bad or reused server id is the server's fault.
        assert_eq!(status(prepare(&index, create("Ann"), "a b", 0)), 500);
        let mut p = Primary::default();
        p.write(update("n5", "Ann", None))
            .expect("update as create");
        assert_eq!(status(prepare(&p.index, create("Bea"), "n5", 0)), 500);
    }

    #[test]
    fn foreign_and_stale_entries_are_skipped() {
        let mut p = Primary::default();
        p.append("not a change".into());
        let first = p
            .write(update("x", "Ann", None))
            .expect("write")
            .expect("a change");
        p.write(update("x", "Bea", None)).expect("write");
        // A change prepared against another history, appended as it was.
        p.append(first.to_payload());
        assert_eq!((p.index.indexed(), p.index.skipped()), (4, 2));
        assert_eq!(p.index.history("Patient", "x").len(), 2);
        assert_eq!(family(&p.read("x").expect("read")), "Bea");
        assert_eq!(p.index, Index::rebuild(&p.log));
    }

    #[test]
    fn a_stale_index_fails_reads_loudly() {
        let mut p = Primary::default();
        p.write(update("x", "Ann", None)).expect("write");
        p.write(update("y", "Bea", None)).expect("write");
        // The log is truncated (a rejoin) and another write takes index 1.
        p.log.truncate(1);
        let mut other = Primary {
            log: p.log.clone(),
            index: Index::rebuild(&p.log),
            clock: p.clock,
        };
        other.write(update("z", "Cat", None)).expect("write");
        assert_eq!(status(read(&p.index, &other.log, "Patient", "y")), 500);
        p.log.clear();
        assert_eq!(status(p.read("x")), 500);
        // Extending past a shorter log changes nothing; rebuilding is the fix.
        let before = p.index.clone();
        p.index.extend(&other.log);
        assert_eq!(p.index, before);
        assert_eq!(
            family(&read(&Index::rebuild(&other.log), &other.log, "Patient", "z").expect("z")),
            "Cat"
        );
    }

    #[test]
    fn write_requests_survive_serialization() {
        for request in [create("Ann"), update("x", "Ann", Some(3)), delete("x")] {
            let text = serde_json::to_string(&request).expect("serializable");
            let back: WriteRequest = serde_json::from_str(&text).expect("deserializable");
            assert_eq!(back, request);
        }
    }

    /// A client action in the property test; ids are picked from a small pool so that
    /// requests collide.
    #[derive(Clone, Debug)]
    enum Op {
        Create,
        Update {
            target: usize,
            if_match: Option<u64>,
        },
        Delete {
            target: usize,
        },
        /// A payload that is not a change.
        Foreign,
        /// Catch up a second index that is extended only now and then.
        CatchUp,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => Just(Op::Create),
            4 => (any::<usize>(), proptest::option::of(0u64..5))
                .prop_map(|(target, if_match)| Op::Update { target, if_match }),
            2 => any::<usize>().prop_map(|target| Op::Delete { target }),
            1 => Just(Op::Foreign),
            1 => Just(Op::CatchUp),
        ]
    }

    proptest! {
        /// Every write gets the outcome a simple model of FHIR versioning predicts, and an
        /// index extended entry by entry, one extended in batches and one rebuilt from the
        /// log all agree.
        #[test]
        fn incremental_and_rebuilt_indexes_agree(ops in proptest::collection::vec(op(), 0..60)) {
            let mut p = Primary::default();
            let mut batched = Index::default();
            // id → (current version, deleted)
            let mut model: BTreeMap<String, (u64, bool)> = BTreeMap::new();
            let mut ids: Vec<String> = vec!["a".into(), "b".into()];
            for op in ops {
                let (id, request) = match op {
                    Op::Create => (format!("n{}", p.log.len()), create("Ann")),
                    Op::Update { target, if_match } => {
                        let id = ids[target % ids.len()].clone();
                        (id.clone(), update(&id, "Bea", if_match))
                    }
                    Op::Delete { target } => {
                        let id = ids[target % ids.len()].clone();
                        (id.clone(), delete(&id))
                    }
                    Op::Foreign => {
                        p.append("{\"op\":\"unrelated\"}".into());
                        continue;
                    }
                    Op::CatchUp => {
                        batched.extend(&p.log);
                        continue;
                    }
                };
                let current = model.get(&id).copied();
                let expected: Result<Option<(u64, bool)>, u16> = match (&request, current) {
                    (WriteRequest::Create { .. }, _) => Ok(Some((1, false))),
                    (WriteRequest::Update { if_match: Some(_), .. }, None) => Err(412),
                    (WriteRequest::Update { if_match: Some(_), .. }, Some((_, true))) => Err(409),
                    (WriteRequest::Update { if_match: Some(m), .. }, Some((v, false))) if *m != v => Err(412),
                    (WriteRequest::Update { .. }, None) => Ok(Some((1, false))),
                    (WriteRequest::Update { .. }, Some((v, _))) => Ok(Some((v + 1, false))),
                    (WriteRequest::Delete { .. }, None) => Err(404),
                    (WriteRequest::Delete { .. }, Some((_, true))) => Ok(None),
                    (WriteRequest::Delete { .. }, Some((v, false))) => Ok(Some((v + 1, true))),
                };
                let got = p.write(request);
                let got = got
                    .as_ref()
                    .map(|c| c.as_ref().map(|c| (c.version, c.deleted)))
                    .map_err(|e| e.status);
                prop_assert_eq!(got, expected);
                if let Ok(Some(next)) = expected {
                    if !ids.contains(&id) {
                        ids.push(id.clone());
                    }
                    model.insert(id.clone(), next);
                }
                // Reads agree with the model too.
                let read = p.read(&id).map(|c| c.version).map_err(|e| e.status);
                let expected_read = match model.get(&id) {
                    None => Err(404),
                    Some((_, true)) => Err(410),
                    Some((v, false)) => Ok(*v),
                };
                prop_assert_eq!(read, expected_read);
            }
            batched.extend(&p.log);
            let rebuilt = Index::rebuild(&p.log);
            prop_assert_eq!(&rebuilt, &p.index);
            prop_assert_eq!(&rebuilt, &batched);
            prop_assert_eq!(rebuilt.indexed(), p.log.len() as u64);
            prop_assert_eq!(rebuilt.len(), model.len());
            for (id, (version, _)) in &model {
                let versions = history(&p.index, &p.log, "Patient", id)
                    .expect("a written resource has a history")
                    .iter()
                    .map(|c| c.version)
                    .collect::<Vec<_>>();
                prop_assert_eq!(versions, (1..=*version).rev().collect::<Vec<_>>());
            }
        }
    }
}
