//! How states and paths read in stateright's Explorer: the compact `Display` of a state
//! (`format_step`) and the sequence diagram of a path (`as_svg`).

use drcheck_model::state::DISPLAY_WIDTH;
use drcheck_model::{protocol, Action, DrModel, DrState, Params};
use stateright::{Model, Path};

fn model() -> DrModel {
    DrModel::new(
        Params::default()
            .validate()
            .expect("the defaults are consistent"),
    )
}

/// Takes `actions` in order from the initial state; each must be enabled.
fn run(model: &DrModel, actions: &[Action]) -> DrState {
    actions.iter().fold(model.initial(), |s, a| {
        protocol::apply(&model.cfg, &s, a).unwrap_or_else(|| panic!("{a} not enabled in\n{s}"))
    })
}

/// Extends `actions` greedily, taking the first enabled step of `preferred` (in that order),
/// until `done` holds in the last state.
fn extend_until(
    model: &DrModel,
    mut actions: Vec<Action>,
    preferred: &[Action],
    done: impl Fn(&DrState) -> bool,
) -> (Vec<Action>, DrState) {
    let mut s = run(model, &actions);
    for _ in 0..200 {
        if done(&s) {
            return (actions, s);
        }
        let (a, next) = preferred
            .iter()
            .find_map(|a| protocol::apply(&model.cfg, &s, a).map(|n| (a.clone(), n)))
            .unwrap_or_else(|| panic!("stuck in\n{s}"));
        actions.push(a);
        s = next;
    }
    panic!("not done after 200 steps:\n{s}");
}

/// A write, replicated, a second write, not yet replicated, then a crash of the primary and an
/// automatic failover to region 1 that loses the second write.
fn failover(model: &DrModel) -> (Vec<Action>, DrState) {
    extend_until(
        model,
        vec![
            Action::Write { region: 0 },
            Action::Replicate { from: 0, to: 1 },
            Action::Tick,
            Action::Write { region: 0 },
            Action::Crash { region: 0 },
        ],
        &[
            Action::Promote { region: 1 },
            Action::Declare { region: 0 },
            Action::DeliverHeartbeat { region: 1 },
            Action::DeliverHeartbeat { region: 2 },
            Action::Tick,
        ],
        |s| !s.view.ledger.failovers.is_empty(),
    )
}

fn assert_short_lines(text: &str) {
    for line in text.lines() {
        assert!(
            line.chars().count() < 100 && line.chars().count() <= DISPLAY_WIDTH,
            "line too long ({}): {line}",
            line.chars().count()
        );
    }
}

#[test]
fn initial_state_reads_compactly() {
    let m = model();
    let text = m.initial().to_string();
    println!("{text}");
    assert!(text.contains("region 0: "), "{text}");
    assert!(text.contains("region 1: "), "{text}");
    assert!(text.contains("Primary@1"), "{text}");
    assert!(text.contains("Secondary@1"), "{text}");
    assert!(text.contains("endpoint -> region 0"), "{text}");
    assert!(text.contains("failed []"), "{text}");
    assert!(text.contains("phase normal"), "{text}");
    assert!(text.contains("writes: none"), "{text}");
    assert_short_lines(&text);
    // The Explorer prints states with Debug: it must be the same compact text.
    assert_eq!(format!("{:#?}", m.initial()), text);
}

#[test]
fn failover_state_reads_compactly() {
    let m = model();
    let (_, s) = failover(&m);
    let text = s.to_string();
    println!("{text}");
    assert!(text.contains("region 0: Down"), "{text}");
    assert!(text.contains("Primary@2"), "{text}");
    assert!(text.contains("endpoint -> region 1"), "{text}");
    assert!(text.contains("failed [0]"), "{text}");
    assert!(text.contains("log [1:w1 1:w2]"), "{text}");
    assert!(text.contains("w1 by 0 live"), "{text}");
    assert!(text.contains("w2 by 0 lost by #0"), "{text}");
    assert!(text.contains("#0 Automatic 0->1 epoch 2 lost 1"), "{text}");
    assert_short_lines(&text);
}

#[test]
fn format_step_shows_the_display_of_the_next_state() {
    let m = model();
    let s = m.initial();
    for (action, next) in m.successors(&s) {
        assert_eq!(
            m.format_step(&s, action.clone()),
            Some(next.to_string()),
            "{action}"
        );
    }
    // A step that is not enabled has no outcome.
    assert_eq!(m.format_step(&s, Action::Promote { region: 1 }), None);
}

/// Every `<text` element is closed, and nothing but escaped text sits between the tags.
fn assert_balanced_text(svg: &str) {
    assert_eq!(
        svg.matches("<text").count(),
        svg.matches("</text>").count(),
        "{svg}"
    );
    for chunk in svg.split("<text").skip(1) {
        let (_, rest) = chunk.split_once('>').expect("a text tag ends");
        let (content, _) = rest
            .split_once("</text>")
            .expect("a text element is closed");
        assert!(
            !content.contains('<') && !content.contains('>'),
            "{content}"
        );
        for (i, _) in content.match_indices('&') {
            let entity = &content[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&#39;", "&quot;"]
                    .iter()
                    .any(|e| entity.starts_with(e)),
                "unescaped & in {content}"
            );
        }
    }
}

#[test]
fn as_svg_draws_a_sequence_diagram_of_the_path() {
    let m = model();
    let (actions, _) = failover(&m);
    let path = Path::from_actions(&m, m.initial(), &actions).expect("a path of the model");
    let svg = m.as_svg(path).expect("a diagram");
    println!("{svg}");

    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("width='") && svg.contains("height='"));
    assert!(svg.contains("font-family='sans-serif'"));
    for lifeline in [
        "client",
        "region 0",
        "region 1",
        "control plane",
        "operator",
        "environment",
    ] {
        assert!(svg.contains(&format!(">{lifeline}</text>")), "{lifeline}");
    }
    // A label for each step but the clock's ticks.
    for a in actions.iter().filter(|a| **a != Action::Tick) {
        let label = a.to_string().replace('>', "&gt;");
        assert!(svg.contains(&format!(">{label}</text>")), "{label}");
    }
    assert!(!svg.contains(">tick</text>"));
    assert!(svg.contains(">replicate 0 -&gt; 1</text>"));
    assert!(!svg.contains("->"));
    assert_balanced_text(&svg);

    // The minute advances with the ticks: the failover happens after detection.
    let ticks = actions.iter().filter(|a| **a == Action::Tick).count() as u32;
    let end = ticks * m.cfg.params.tick;
    assert!(end > 1);
    assert!(svg.contains(&format!(">{end}</text>")));
}

#[test]
fn a_failover_and_failback_reads_well_with_two_and_three_regions() {
    for regions in [2, 3] {
        let params = Params {
            regions,
            reapplies: 1,
            ..Params::default()
        };
        let m = DrModel::new(params.validate().expect("consistent"));
        // Fail over (losing w2), recover region 0, rejoin it (w2 goes to its quarantine), the
        // operator re-applies w2, compute fails back home, then data on the operator's request.
        let (mut actions, _) = failover(&m);
        actions.push(Action::Recover { region: 0 });
        let preferred = [
            Action::Reapply { write: 2 },
            Action::ComputeFailback,
            Action::CompleteSwitchover,
            Action::Fence,
            Action::RequestFailback { target: 0 },
            Action::Rejoin { region: 0 },
            Action::Rejoin { region: 2 },
            Action::Replicate { from: 1, to: 0 },
            Action::Replicate { from: 1, to: 2 },
            Action::DeliverHeartbeat { region: 0 },
            Action::DeliverHeartbeat { region: 1 },
            Action::DeliverHeartbeat { region: 2 },
            Action::Tick,
        ];
        let (mut actions, last) = extend_until(&m, actions, &preferred, |s| {
            s.view.ledger.failovers.len() == 2
        });
        actions.push(Action::Partition);

        // Every state on the way reads in short lines; the quarantine and the re-applied
        // write show.
        let path = Path::from_actions(&m, m.initial(), &actions).expect("a path of the model");
        let states = path.clone().into_states();
        for s in &states {
            assert_short_lines(&s.to_string());
        }
        let texts: Vec<String> = states.iter().map(DrState::to_string).collect();
        assert!(texts.iter().any(|t| t.contains("quarantine [w2]")));
        assert!(texts
            .iter()
            .any(|t| t.contains("phase switchover to 0 (fenced")));
        let text = last.to_string();
        println!("{text}");
        assert!(text.contains("w3 by 1 live"), "{text}");
        assert!(text.contains("(re-applies w2)"), "{text}");
        assert!(text.contains("#1 Switchover 1->0 epoch 3 lost 0"), "{text}");
        assert!(text.contains("endpoint -> region 0"), "{text}");

        let svg = m.as_svg(path).expect("a diagram");
        for label in [
            "region 0 recovers",
            "region 0 rejoins as secondary",
            "re-apply quarantined w2",
            "compute fails back home",
            "request data failback to region 0",
            "fence the primary",
            "complete switchover",
            "inter-region partition",
        ] {
            assert!(svg.contains(&format!(">{label}</text>")), "{label}");
        }
        for r in 0..regions {
            assert!(svg.contains(&format!(">region {r}</text>")), "region {r}");
        }
        assert_balanced_text(&svg);
    }

    // The pure function escapes labels (here a label with every special character).
    let text = drcheck_model::svg::escape("a < b && c > 'd'");
    assert_eq!(text, "a &lt; b &amp;&amp; c &gt; &#39;d&#39;");
}

#[test]
fn disabled_steps_are_not_drawn() {
    let m = model();
    let s = m.initial();
    // As stateright builds a path from the Explorer's indices: a disabled step keeps the state.
    let path = vec![
        (s.clone(), Some(Action::Promote { region: 1 })),
        (s.clone(), Some(Action::Write { region: 0 })),
        (run(&m, &[Action::Write { region: 0 }]), None),
    ];
    let svg = drcheck_model::svg::sequence_diagram(&m.cfg, &path);
    assert!(svg.contains(">write at region 0</text>"));
    assert!(!svg.contains("promote"));
    assert_balanced_text(&svg);
}

#[test]
fn as_svg_of_the_initial_state_alone() {
    let m = model();
    let path = Path::from_actions(&m, m.initial(), &[]).expect("the initial state");
    let svg = m.as_svg(path).expect("a diagram");
    assert!(svg.starts_with("<svg"));
    assert!(svg.contains(">control plane</text>"));
    assert!(svg.contains(">0</text>"), "minute 0");
    assert_balanced_text(&svg);
}

/// Pseudo-random walks through a larger model (3 regions, more writes, re-applies): every state
/// reads in short lines, and every path draws a well-formed diagram with a lifeline per region.
#[test]
fn random_walks_read_well() {
    let params = Params {
        regions: 3,
        writes: 4,
        outages: 2,
        partitions: 2,
        reapplies: 2,
        ..Params::default()
    };
    let m = DrModel::new(params.validate().expect("consistent"));
    let mut seed: u64 = 0x5eed;
    for _ in 0..40 {
        let mut s = m.initial();
        let mut actions = Vec::new();
        for _ in 0..150 {
            let steps = m.successors(&s);
            if steps.is_empty() {
                break;
            }
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Half the time, a step other than the clock's or a heartbeat's, when there is one.
            let rare: Vec<_> = steps
                .iter()
                .filter(|(a, _)| !matches!(a, Action::Tick | Action::DeliverHeartbeat { .. }))
                .collect();
            let r = (seed >> 33) as usize;
            let (a, next) = if r & 1 == 0 && !rare.is_empty() {
                rare[(r / 2) % rare.len()].clone()
            } else {
                steps[(r / 2) % steps.len()].clone()
            };
            assert_short_lines(&next.to_string());
            actions.push(a);
            s = next;
        }
        let path = Path::from_actions(&m, m.initial(), &actions).expect("a path of the model");
        let svg = m.as_svg(path).expect("a diagram");
        assert!(svg.contains(">region 2</text>"));
        for a in actions.iter().filter(|a| **a != Action::Tick) {
            let label = a.to_string().replace('>', "&gt;");
            assert!(svg.contains(&format!(">{label}</text>")), "{label}");
        }
        assert_balanced_text(&svg);
    }
}
