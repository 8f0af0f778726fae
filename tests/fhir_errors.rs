//! Bad input to a running deployment's endpoint: each error has its status, an
//! OperationOutcome body, and changes nothing (the primary's log and the resource stay as
//! they were).

mod support;

use std::time::Duration;

use serde_json::json;
use support::serve::{outcome_code, Serve, MINUTE_MS};

/// The primary's log length and the test resource's current body.
fn observable(serve: &Serve, id: &str) -> (u64, String) {
    let status = serve.status();
    let primary = status["routing"]["primary"].as_u64().unwrap() as usize;
    let len = status["regions"][primary]["log_len"].as_u64().unwrap();
    (len, serve.get(&format!("/Patient/{id}")).text())
}

#[test]
fn every_bad_request_gets_its_status_and_an_operation_outcome_and_changes_nothing() {
    let serve = Serve::start("errors");
    let created = serve.create(
        "Patient",
        r#"{"resourceType":"Patient","name":[{"family":"Kept"}]}"#,
    );
    assert_eq!(created.status, 201);
    let id = created.json().unwrap()["id"].as_str().unwrap().to_string();
    let updated = serve.update(
        "Patient",
        &id,
        &format!(r#"{{"resourceType":"Patient","id":"{id}"}}"#),
        Some("W/\"1\""),
    );
    assert_eq!(updated.status, 200, "{}", updated.text());
    let gone = serve.create("Patient", r#"{"resourceType":"Patient"}"#);
    let gone_id = gone.json().unwrap()["id"].as_str().unwrap().to_string();
    assert_eq!(
        serve
            .request("DELETE", &format!("/Patient/{gone_id}"), &[], b"")
            .status,
        204
    );
    let before = observable(&serve, &id);

    let fhir = [("Content-Type", "application/fhir+json")];
    let big = format!(
        r#"{{"resourceType":"Patient","text":"{}"}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let path = format!("/Patient/{id}");
    let cases: Vec<(&str, u16, &str, drcheck_impl::service::http::Response)> = vec![
        (
            "malformed JSON",
            400,
            "invalid",
            serve.request(
                "POST",
                "/Patient",
                &fhir,
                b"{\"resourceType\": \"Patient\",",
            ),
        ),
        (
            "not an object",
            400,
            "invalid",
            serve.request("POST", "/Patient", &fhir, b"[1, 2]"),
        ),
        (
            "no resourceType",
            400,
            "invalid",
            serve.request("POST", "/Patient", &fhir, b"{\"name\": []}"),
        ),
        (
            "mismatched resourceType",
            400,
            "invalid",
            serve.request(
                "POST",
                "/Patient",
                &fhir,
                br#"{"resourceType":"Observation"}"#,
            ),
        ),
        (
            "unknown type",
            404,
            "not-found",
            serve.request(
                "POST",
                "/Patientt",
                &fhir,
                br#"{"resourceType":"Patientt"}"#,
            ),
        ),
        ("unknown type read", 404, "not-found", serve.get("/Foo/1")),
        (
            "body id differs from URL",
            400,
            "invalid",
            serve.request(
                "PUT",
                &path,
                &fhir,
                br#"{"resourceType":"Patient","id":"other"}"#,
            ),
        ),
        (
            "bad id syntax",
            400,
            "invalid",
            serve.get("/Patient/bad$id"),
        ),
        (
            "wrong media type",
            415,
            "not-supported",
            serve.request(
                "POST",
                "/Patient",
                &[("Content-Type", "text/plain")],
                br#"{"resourceType":"Patient"}"#,
            ),
        ),
        (
            "no media type",
            415,
            "not-supported",
            serve.request("POST", "/Patient", &[], br#"{"resourceType":"Patient"}"#),
        ),
        (
            "body over the limit",
            413,
            "too-long",
            serve.request("POST", "/Patient", &fhir, big.as_bytes()),
        ),
        (
            "stale If-Match",
            412,
            "conflict",
            serve.update(
                "Patient",
                &id,
                &format!(r#"{{"resourceType":"Patient","id":"{id}"}}"#),
                Some("W/\"1\""),
            ),
        ),
        (
            "If-Match on nothing",
            412,
            "conflict",
            serve.update(
                "Patient",
                "never-made",
                r#"{"resourceType":"Patient","id":"never-made"}"#,
                Some("W/\"1\""),
            ),
        ),
        (
            "If-Match on a deleted resource",
            409,
            "conflict",
            serve.update(
                "Patient",
                &gone_id,
                &format!(r#"{{"resourceType":"Patient","id":"{gone_id}"}}"#),
                Some("W/\"2\""),
            ),
        ),
        (
            "bad If-Match",
            400,
            "invalid",
            serve.update(
                "Patient",
                &id,
                &format!(r#"{{"resourceType":"Patient","id":"{id}"}}"#),
                Some("soon"),
            ),
        ),
        (
            "read of a deleted resource",
            410,
            "deleted",
            serve.get(&format!("/Patient/{gone_id}")),
        ),
        (
            "read of a missing resource",
            404,
            "not-found",
            serve.get("/Patient/missing"),
        ),
        (
            "missing version",
            404,
            "not-found",
            serve.get(&format!("/Patient/{id}/_history/9")),
        ),
        (
            "method not allowed",
            405,
            "not-supported",
            serve.request("PATCH", &path, &fhir, b"{}"),
        ),
        (
            "operator without token",
            401,
            "security",
            serve.request(
                "POST",
                "/_dr/failback",
                &[("Content-Type", "application/json")],
                br#"{"target":0}"#,
            ),
        ),
        (
            "operator with a wrong token",
            401,
            "security",
            serve.request(
                "POST",
                "/_dr/force-failover",
                &[("Authorization", "Bearer nope")],
                br#"{"target":1}"#,
            ),
        ),
        (
            "operator request refused",
            409,
            "business-rule",
            serve.operator("POST", "/_dr/failback", &json!({ "target": 1 })),
        ),
        (
            "operator body malformed",
            400,
            "invalid",
            serve.operator("POST", "/_dr/failback", &json!({ "region": 1 })),
        ),
    ];
    for (what, status, code, response) in &cases {
        assert_eq!(response.status, *status, "{what}: {}", response.text());
        match *status {
            401 => assert_eq!(
                response.header("WWW-Authenticate"),
                Some("Bearer"),
                "{what}"
            ),
            405 => assert!(response.header("Allow").is_some(), "{what}"),
            _ => {}
        }
        assert_eq!(outcome_code(response), *code, "{what}");
        assert_eq!(observable(&serve, &id), before, "{what} changed something");
    }

    // Throttled: the regions are cut apart, the oldest unreplicated write ages past the
    // throttle (5 protocol minutes), and new writes get 429 with Retry-After.
    let cut = serve.operator("POST", "/_dr/fault", &json!({ "fault": "partition" }));
    assert_eq!(cut.status, 200, "{}", cut.text());
    assert_eq!(
        serve
            .create("Patient", r#"{"resourceType":"Patient"}"#)
            .status,
        201
    );
    std::thread::sleep(Duration::from_millis(6 * MINUTE_MS));
    let before = observable(&serve, &id);
    let throttled = serve.create("Patient", r#"{"resourceType":"Patient"}"#);
    assert_eq!(throttled.status, 429, "{}", throttled.text());
    assert_eq!(outcome_code(&throttled), "throttled");
    assert!(throttled
        .header("Retry-After")
        .is_some_and(|s| s.parse::<u64>().is_ok()));
    assert_eq!(
        observable(&serve, &id),
        before,
        "a throttled write changed something"
    );
    let healed = serve.operator("POST", "/_dr/fault", &json!({ "fault": "heal" }));
    assert_eq!(healed.status, 200);
    serve.eventually(
        Duration::from_millis(10 * MINUTE_MS),
        "the throttle lifts",
        || {
            serve
                .create("Patient", r#"{"resourceType":"Patient"}"#)
                .status
                == 201
        },
    );

    // No writable primary during a failover: 503 with Retry-After, nothing written.
    let crashed = serve.operator(
        "POST",
        "/_dr/fault",
        &json!({ "fault": "crash", "region": 0 }),
    );
    assert_eq!(crashed.status, 200, "{}", crashed.text());
    let unavailable = serve.create("Patient", r#"{"resourceType":"Patient"}"#);
    assert_eq!(unavailable.status, 503, "{}", unavailable.text());
    assert_eq!(outcome_code(&unavailable), "transient");
    assert!(unavailable.header("Retry-After").is_some());
    let read = serve.get(&format!("/Patient/{id}"));
    assert_eq!(
        read.status,
        503,
        "reads wait for a primary too: {}",
        read.text()
    );

    assert!(serve.stop().success());
}

#[test]
fn metadata_tells_what_is_supported() {
    let serve = Serve::start("metadata");
    let response = serve.get("/metadata");
    assert_eq!(response.status, 200);
    let statement = response.json().unwrap();
    assert_eq!(statement["resourceType"], "CapabilityStatement");
    assert_eq!(statement["fhirVersion"], "4.0.1");
    let resources = statement["rest"][0]["resource"].as_array().unwrap();
    let patient = resources
        .iter()
        .find(|r| r["type"] == "Patient")
        .expect("Patient listed");
    let codes: Vec<&str> = patient["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "read",
            "vread",
            "update",
            "delete",
            "history-instance",
            "create"
        ]
    );
    assert_eq!(patient["conditionalCreate"], false);
    assert!(patient.get("searchParam").is_none(), "no search is claimed");

    // History: newest first, one entry per version, the deletion included.
    let created = serve.create(
        "Patient",
        r#"{"resourceType":"Patient","name":[{"family":"A"}]}"#,
    );
    let id = created.json().unwrap()["id"].as_str().unwrap().to_string();
    let body = format!(r#"{{"resourceType":"Patient","id":"{id}","name":[{{"family":"B"}}]}}"#);
    assert_eq!(serve.update("Patient", &id, &body, None).status, 200);
    assert_eq!(
        serve
            .request("DELETE", &format!("/Patient/{id}"), &[], b"")
            .status,
        204
    );
    let history = serve
        .get(&format!("/Patient/{id}/_history"))
        .json()
        .unwrap();
    assert_eq!(history["type"], "history");
    let methods: Vec<&str> = history["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["request"]["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["DELETE", "PUT", "POST"]);
    let v1 = serve
        .get(&format!("/Patient/{id}/_history/1"))
        .json()
        .unwrap();
    assert_eq!(v1["name"][0]["family"], "A");
    assert!(serve.stop().success());
}
