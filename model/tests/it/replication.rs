//! Replication ships only an extension: a secondary whose log is not a prefix of the
//! primary's gets nothing (the implementation's secondary refuses such an Append).

use drcheck_model::protocol::region::{replicate, replication_due};
use drcheck_model::{DrState, Params};
use drcheck_properties::Entry;

#[test]
fn the_primary_does_not_ship_to_a_secondary_holding_a_divergent_entry() {
    let cfg = Params::default().validate().expect("consistent");
    let mut s = DrState::initial(&cfg);
    // Region 0, primary of epoch 1, holds 1:w1 1:w2 1:w3; region 1, its secondary, holds 1:w1
    // and a divergent 1:w9 (as a rejoin that did not truncate would leave it).
    let log = |writes: &[u8]| -> Vec<Entry> {
        writes
            .iter()
            .map(|&write| Entry { epoch: 1, write })
            .collect()
    };
    s.region_mut(0).log = log(&[1, 2, 3]).into();
    s.region_mut(1).log = log(&[1, 9]).into();
    assert!(
        replicate(&cfg, &s, 0, 1).is_none(),
        "shipped 1:w3 after a divergent 1:w9"
    );
    assert!(!replication_due(&cfg, &s, 0, 1), "nothing is due either");
    // With the divergent entry gone, the same secondary is shipped the rest.
    s.region_mut(1).log.truncate(1);
    let next = replicate(&cfg, &s, 0, 1).expect("a prefix is extended");
    assert_eq!(next.region(1).log, next.region(0).log);
}
