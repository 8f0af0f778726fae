//! One FHIR write as it travels in the replicated log: a [`Change`], as a log entry's payload.
//!
//! A change carries the whole new resource (or a tombstone), never a patch, so a region can
//! serve any version from its own log with no other state, and an index over the log can
//! always be rebuilt from the log alone.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::outcome::FhirError;
use crate::validate::{check_id, check_resource, check_type};

/// A new version of one resource: its content, or its deletion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The resource type, `Patient` say.
    pub kind: String,
    /// The resource's logical id (`Patient/{id}`).
    pub id: String,
    /// The resource's version after this change: 1 for the first, then +1 per change.
    pub version: u64,
    /// When the primary prepared it, RFC 3339 UTC with milliseconds; also `meta.lastUpdated`.
    pub last_updated: String,
    /// The same instant in Unix milliseconds, for `Last-Modified` without parsing dates.
    pub last_updated_ms: u64,
    /// A tombstone: the resource is deleted as of this version.
    pub deleted: bool,
    /// The resource as stored (with `id` and `meta` set); None exactly when `deleted`.
    pub resource: Option<Value>,
}

impl Change {
    /// The log entry payload (JSON text).
    pub fn to_payload(&self) -> String {
        // Built by hand rather than with `serde_json::to_string`, which returns a Result:
        // rendering a `Value` cannot fail, so no error path is needed. The keys are the
        // field names, so `from_payload` (derived) reads it back; a test checks that.
        let mut map = Map::new();
        map.insert("kind".into(), Value::String(self.kind.clone()));
        map.insert("id".into(), Value::String(self.id.clone()));
        map.insert("version".into(), Value::from(self.version));
        map.insert(
            "last_updated".into(),
            Value::String(self.last_updated.clone()),
        );
        map.insert("last_updated_ms".into(), Value::from(self.last_updated_ms));
        map.insert("deleted".into(), Value::Bool(self.deleted));
        map.insert(
            "resource".into(),
            self.resource.clone().unwrap_or(Value::Null),
        );
        Value::Object(map).to_string()
    }

    /// Reads a payload back. The log only holds what the primary wrote, so a payload that is
    /// not a consistent change is the server's fault: 500.
    pub fn from_payload(payload: &str) -> Result<Change, FhirError> {
        let change: Change = serde_json::from_str(payload)
            .map_err(|e| FhirError::internal(format!("a log entry is not a FHIR change: {e}")))?;
        change.check().map_err(|e| {
            FhirError::internal(format!(
                "a log entry holds an inconsistent change to {}/{}: {}",
                change.kind, change.id, e.diagnostics
            ))
        })?;
        Ok(change)
    }

    /// The invariants [`crate::index::prepare`] establishes.
    fn check(&self) -> Result<(), FhirError> {
        check_type(&self.kind)?;
        check_id(&self.id)?;
        if self.version == 0 {
            return Err(FhirError::invalid("versions start at 1"));
        }
        if self.last_updated != rfc3339_millis(self.last_updated_ms) {
            return Err(FhirError::invalid(
                "last_updated and last_updated_ms disagree",
            ));
        }
        match (&self.resource, self.deleted) {
            (None, true) => Ok(()),
            (Some(Value::Object(resource)), false) => {
                check_resource(&self.kind, Some(&self.id), resource)
            }
            (Some(_), false) => Err(FhirError::invalid("the resource is not an object")),
            (Some(_), true) => Err(FhirError::invalid("a tombstone carries a resource")),
            (None, false) => Err(FhirError::invalid("the change carries no resource")),
        }
    }

    /// The weak ETag of this version, `W/"3"`, as FHIR servers send it.
    pub fn etag(&self) -> String {
        etag(self.version)
    }
}

/// The weak ETag of a version: `W/"3"`.
pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

const MS_PER_DAY: u64 = 86_400_000;

/// `unix_ms` as an FHIR instant: RFC 3339, UTC, milliseconds (`2026-11-26T08:00:00.123Z`).
pub fn rfc3339_millis(unix_ms: u64) -> String {
    let (year, month, day) = civil_from_days(unix_ms / MS_PER_DAY);
    let (h, m, s, ms) = time_of_day(unix_ms);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

/// `unix_ms` as an HTTP date (IMF-fixdate, `Thu, 26 Nov 2026 08:00:00 GMT`), for
/// `Last-Modified`. HTTP dates have whole seconds: the milliseconds are dropped.
pub fn http_date(unix_ms: u64) -> String {
    const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_ms / MS_PER_DAY;
    let (year, month, day) = civil_from_days(days);
    let (h, m, s, _) = time_of_day(unix_ms);
    // 1970-01-01 was a Thursday. Both indexes are in range by construction (`% 7`, and
    // `month` is 1..=12), but `get` keeps a slip from becoming a panic.
    let weekday = WEEKDAYS.get((days % 7 + 4) as usize % 7).unwrap_or(&"???");
    let month = month
        .checked_sub(1)
        .and_then(|i| MONTHS.get(i as usize))
        .unwrap_or(&"???");
    format!("{weekday}, {day:02} {month} {year:04} {h:02}:{m:02}:{s:02} GMT")
}

fn time_of_day(unix_ms: u64) -> (u64, u64, u64, u64) {
    let ms = unix_ms % MS_PER_DAY;
    (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

/// The proleptic Gregorian (year, month 1..=12, day 1..=31) of a day count since 1970-01-01.
///
/// Howard Hinnant's `civil_from_days`, restricted to days on or after the epoch (unsigned,
/// so no negative division): shift the epoch to 0000-03-01 so that the leap day ends the
/// year, then split into 400-year eras of 146097 days, years of the era, and months of
/// 153 days per 5.
fn civil_from_days(days: u64) -> (u64, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1st
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

impl Change {
    /// The write that applies this (quarantined) change again as the current version of its
    /// resource: its content as an unconditional update, or its deletion.
    pub fn reapply_request(self) -> crate::index::WriteRequest {
        use crate::index::WriteRequest;
        match self.resource {
            Some(Value::Object(resource)) if !self.deleted => WriteRequest::Update {
                kind: self.kind,
                id: self.id,
                resource,
                if_match: None,
            },
            _ => WriteRequest::Delete {
                kind: self.kind,
                id: self.id,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patient(version: u64) -> Change {
        Change {
            kind: "Patient".into(),
            id: "p1".into(),
            version,
            last_updated: rfc3339_millis(1_000),
            last_updated_ms: 1_000,
            deleted: false,
            resource: Some(json!({
                "resourceType": "Patient",
                "id": "p1",
                "meta": { "versionId": version.to_string() },
            })),
        }
    }

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        // A leap day of a year divisible by 400: 11016 days after the epoch, a Tuesday.
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(http_date(951_782_400_000), "Tue, 29 Feb 2000 00:00:00 GMT");
        // 1795680000000 ms = 20783 days + 8 h. 2026-01-01 is day 56 * 365 + 14 leap days
        // = 20454, so day 329 of 2026 (not leap): 304 days end October, so November 26th;
        // (20783 + 4) % 7 = 4, a Thursday.
        assert_eq!(
            rfc3339_millis(1_795_680_000_123),
            "2026-11-26T08:00:00.123Z"
        );
        assert_eq!(
            http_date(1_795_680_000_123),
            "Thu, 26 Nov 2026 08:00:00 GMT"
        );
        // The last millisecond of a year, and of a day.
        assert_eq!(rfc3339_millis(946_684_799_999), "1999-12-31T23:59:59.999Z");
        assert_eq!(http_date(946_684_799_999), "Fri, 31 Dec 1999 23:59:59 GMT");
    }

    #[test]
    fn civil_from_days_agrees_with_counting_days() {
        let leap =
            |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
        let (mut year, mut month, mut day) = (1970u64, 1u32, 1u32);
        // Through 2500: the 2100, 2200, 2300 non-leap and 2400 leap centuries included.
        for days in 0..194_000u64 {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            let length = match month {
                2 if leap(year) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            day += 1;
            if day > length {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }

    #[test]
    fn a_change_round_trips_through_a_payload() {
        let tombstone = Change {
            deleted: true,
            resource: None,
            ..patient(2)
        };
        for change in [patient(1), tombstone] {
            let payload = change.to_payload();
            assert_eq!(Change::from_payload(&payload), Ok(change.clone()));
            // The hand-built payload is what serde would write.
            let derived = serde_json::to_value(&change).expect("serializable");
            let built: Value = serde_json::from_str(&payload).expect("JSON");
            assert_eq!(built, derived);
        }
    }

    #[test]
    fn bad_payloads_are_server_errors() {
        let bad = |change: Change| change.to_payload();
        let payloads = [
            "".to_string(),
            "w1".to_string(),
            "{}".to_string(),
            r#"{"resourceType":"Patient"}"#.to_string(),
            bad(Change {
                version: 0,
                ..patient(1)
            }),
            bad(Change {
                kind: "Foo".into(),
                ..patient(1)
            }),
            bad(Change {
                id: "a b".into(),
                ..patient(1)
            }),
            bad(Change {
                deleted: true,
                ..patient(1)
            }),
            bad(Change {
                last_updated_ms: 1_001,
                ..patient(1)
            }),
            bad(Change {
                resource: None,
                ..patient(1)
            }),
            bad(Change {
                resource: Some(json!([])),
                ..patient(1)
            }),
            bad(Change {
                id: "p2".into(),
                ..patient(1)
            }),
        ];
        for payload in payloads {
            let error = Change::from_payload(&payload).expect_err(&payload);
            assert_eq!((error.status, error.code), (500, "exception"), "{payload}");
        }
    }

    #[test]
    fn etags_are_weak() {
        assert_eq!(patient(3).etag(), "W/\"3\"");
        assert_eq!(crate::validate::parse_if_match(&etag(7)), Ok(7));
    }
}
