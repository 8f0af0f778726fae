//! End to end with real processes on loopback: `drcheck serve`, FHIR through the one
//! endpoint, the primary region's process killed with SIGKILL, automatic failover within the
//! (scaled) RTO, the lost writes exactly the quarantined ones, compute failing back by itself,
//! data failing back on the operator's request with nothing lost.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::serve::{Serve, MINUTE_MS};

fn minutes(n: u64) -> Duration {
    Duration::from_millis(n * MINUTE_MS)
}

/// The latest acknowledged version of each resource, by id, with its family name.
type Acked = BTreeMap<String, (u64, String)>;

fn patient(family: &str, id: Option<&str>) -> String {
    let mut body = json!({ "resourceType": "Patient", "name": [{ "family": family }] });
    if let Some(id) = id {
        body["id"] = json!(id);
    }
    body.to_string()
}

fn record(acked: &mut Acked, response: &drcheck_impl::service::http::Response, family: &str) {
    let body = response.json().expect("resource JSON");
    let id = body["id"].as_str().expect("id").to_string();
    let version: u64 = body["meta"]["versionId"]
        .as_str()
        .expect("versionId")
        .parse()
        .expect("number");
    assert_eq!(
        response.header("ETag"),
        Some(format!("W/\"{version}\"").as_str())
    );
    assert!(response.header("Last-Modified").is_some());
    acked.insert(id, (version, family.to_string()));
}

fn region_field(status: &Value, r: usize, field: &str) -> Value {
    status["regions"][r][field].clone()
}

#[test]
fn a_killed_primary_fails_over_and_everything_comes_back_home() {
    let serve = Serve::start("e2e");
    let mut acked = Acked::new();

    // Create and update through the endpoint.
    for n in 0..4 {
        let family = format!("Family{n}");
        let created = serve.create("Patient", &patient(&family, None));
        assert_eq!(created.status, 201, "{}", created.text());
        assert!(created
            .header("Location")
            .is_some_and(|l| l.ends_with("/_history/1")));
        record(&mut acked, &created, &family);
    }
    for (id, (version, _)) in acked.clone() {
        let family = format!("Updated-{id}");
        let etag = format!("W/\"{version}\"");
        let updated = serve.update("Patient", &id, &patient(&family, Some(&id)), Some(&etag));
        assert_eq!(updated.status, 200, "{}", updated.text());
        record(&mut acked, &updated, &family);
    }
    // Let replication settle, then cut the regions apart: writes now stay in region 0.
    std::thread::sleep(minutes(2));
    let cut = serve.operator("POST", "/_dr/fault", &json!({ "fault": "partition" }));
    assert_eq!(cut.status, 200, "{}", cut.text());
    let mut unreplicated = Vec::new();
    for n in 0..2 {
        let family = format!("Unreplicated{n}");
        let created = serve.create("Patient", &patient(&family, None));
        assert_eq!(created.status, 201, "{}", created.text());
        record(&mut acked, &created, &family);
        let id = created.json().unwrap()["id"].as_str().unwrap().to_string();
        unreplicated.push(id);
    }

    // kill -9 the primary region's process.
    let status = serve.status();
    assert_eq!(status["routing"]["primary"], 0);
    let pid = region_field(&status, 0, "pid")
        .as_u64()
        .expect("region 0 runs");
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    // The same endpoint takes writes again within the RTO.
    let took = serve.eventually(minutes(60), "writes resume after the failover", || {
        serve
            .create("Patient", &patient("AfterFailover", None))
            .status
            == 201
    });
    assert!(took < minutes(60), "RTO exceeded: {took:?}");
    let status = serve.status();
    assert_eq!(status["routing"]["primary"], 1, "{status}");
    assert_eq!(status["routing"]["epoch"], 2);

    // The lost writes are within the RPO: region 1 lacks exactly the unreplicated ones.
    for id in &unreplicated {
        let read = serve.get(&format!("/Patient/{id}"));
        assert_eq!(
            read.status, 404,
            "lost write {id} is not at the new primary"
        );
        acked.remove(id);
    }
    let again = serve.create("Patient", &patient("AfterFailover2", None));
    assert_eq!(again.status, 201);
    record(&mut acked, &again, "AfterFailover2");

    // Heal, restart the old primary: it rejoins, and its lost writes are its quarantine.
    let heal = serve.operator("POST", "/_dr/fault", &json!({ "fault": "heal" }));
    assert_eq!(heal.status, 200, "{}", heal.text());
    let recovered = serve.verb(&["fault", "recover", "--region", "0"]);
    assert_eq!(recovered.code, 0, "{}", recovered.stderr);
    serve.eventually(minutes(20), "region 0 rejoins as secondary", || {
        let s = serve.status();
        region_field(&s, 0, "role") == "Secondary" && region_field(&s, 0, "epoch") == 2
    });
    let quarantine = serve.operator("GET", "/_dr/quarantine", &json!({}));
    assert_eq!(quarantine.status, 200, "{}", quarantine.text());
    let items = quarantine.json().unwrap()["quarantine"]
        .as_array()
        .unwrap()
        .clone();
    let mut quarantined: Vec<String> = items
        .iter()
        .map(|q| {
            q["resource"]
                .as_str()
                .unwrap()
                .trim_start_matches("Patient/")
                .to_string()
        })
        .collect();
    quarantined.sort();
    let mut expected = unreplicated.clone();
    expected.sort();
    assert_eq!(
        quarantined, expected,
        "the quarantine holds exactly the lost writes"
    );

    // Compute fails back home by itself; data stays in region 1.
    serve.eventually(minutes(10), "compute fails back", || {
        serve.status()["routing"]["compute"] == 0
    });
    std::thread::sleep(minutes(10));
    assert_eq!(
        serve.status()["routing"]["primary"],
        1,
        "data never fails back by itself"
    );

    // Data fails back on the operator's request (the CLI verb), losing nothing.
    serve.eventually(minutes(10), "region 0 caught up", || {
        let s = serve.status();
        region_field(&s, 0, "replication_lag") == 0
    });
    let failback = serve.verb(&["failback", "--target", "0"]);
    assert_eq!(failback.code, 0, "{}", failback.stderr);
    serve.eventually(minutes(10), "data fails back", || {
        let s = serve.status();
        s["routing"]["primary"] == 0 && s["routing"]["epoch"] == 3
    });

    // Every acknowledged write that was not lost reads back at its latest version.
    for (id, (version, family)) in &acked {
        let read = serve.get(&format!("/Patient/{id}"));
        assert_eq!(read.status, 200, "{id}: {}", read.text());
        let body = read.json().unwrap();
        assert_eq!(body["meta"]["versionId"], version.to_string(), "{id}");
        assert_eq!(body["name"][0]["family"], family.as_str(), "{id}");
    }
    // The operator re-applies a lost write: it is readable again, as a new version.
    let lost = items[0]["write"].as_u64().unwrap();
    let reapplied = serve.verb(&["reapply", "--write", &lost.to_string()]);
    assert_eq!(reapplied.code, 0, "{}", reapplied.stderr);
    let id = items[0]["resource"].as_str().unwrap();
    let read = serve.get(&format!("/{id}"));
    assert_eq!(read.status, 200, "{}", read.text());
    assert!(read.json().unwrap()["name"][0]["family"]
        .as_str()
        .unwrap()
        .starts_with("Unreplicated"));

    // The deployment's own traffic (the failover, the rejoin, the failback, the re-apply)
    // passed every link's authentication and its edge's checks: nothing was refused.
    let status = serve.status();
    for r in 0..2 {
        let refused = region_field(&status, r, "refused_frames");
        assert_eq!(refused, serde_json::json!({}), "region {r}: {status}");
    }
    for log in ["region-0.log", "region-1.log", "control.log"] {
        let text = std::fs::read_to_string(serve.data.join(log)).unwrap_or_default();
        assert!(
            !text.contains("\"target\":\"drcheck::edge\""),
            "{log}: {text}"
        );
    }

    let exit = serve.stop();
    assert!(exit.success(), "serve stops cleanly on Ctrl-C: {exit:?}");
}
