//! The Explorer's sequence diagram of a path: one lifeline per participant (client, each
//! region, control plane, operator, environment) and one row per step, top to bottom, with
//! the model clock in minutes on the left. The clock's ticks are not drawn: they only advance
//! the minute. The SVG is self-contained (no external CSS, fonts or ids).

use std::fmt::Write;

use crate::action::Action;
use crate::config::Config;
use crate::protocol;
use crate::state::{DrState, Phase};

/// Horizontal distance between lifelines.
const COLUMN: usize = 120;
/// Width of the minute column on the left.
const MINUTES: usize = 60;
/// Height of the lifeline labels above the first row.
const HEADER: usize = 40;
/// Height of one row.
const ROW: usize = 30;
/// A generous estimate of a character's width at 12px sans-serif.
const CHAR_WIDTH: usize = 7;

const BACKGROUND: &str = "#ffffff";
const LIFELINE: &str = "#b0b7bf";
const TEXT: &str = "#222222";
const MINUTE: &str = "#6b7280";

/// The lifelines, left to right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lifeline {
    Client,
    Region(u8),
    ControlPlane,
    Operator,
    Environment,
}

impl Lifeline {
    /// Column index, with `regions` region lifelines after the client.
    fn column(self, regions: u8) -> usize {
        match self {
            Lifeline::Client => 0,
            Lifeline::Region(r) => 1 + usize::from(r),
            Lifeline::ControlPlane => 1 + usize::from(regions),
            Lifeline::Operator => 2 + usize::from(regions),
            Lifeline::Environment => 3 + usize::from(regions),
        }
    }

    fn label(self) -> String {
        match self {
            Lifeline::Client => "client".to_string(),
            Lifeline::Region(r) => format!("region {r}"),
            Lifeline::ControlPlane => "control plane".to_string(),
            Lifeline::Operator => "operator".to_string(),
            Lifeline::Environment => "environment".to_string(),
        }
    }

    /// The colour of the arrows a participant sends.
    fn colour(self) -> &'static str {
        match self {
            Lifeline::Client => "#1f5fa8",
            Lifeline::Region(_) => "#4b5563",
            Lifeline::ControlPlane => "#7b3fa0",
            Lifeline::Operator => "#2e7d32",
            Lifeline::Environment => "#c62828",
        }
    }
}

/// What one step draws.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Shape {
    Arrow {
        from: Lifeline,
        to: Lifeline,
    },
    /// A mark on one lifeline (an event with no receiver).
    Mark {
        at: Lifeline,
    },
}

/// What `action`, taken from `s`, draws; `None` for the clock's tick.
fn shape(s: &DrState, action: &Action) -> Option<Shape> {
    use Action::*;
    use Lifeline::*;
    let routing = &s.view.routing;
    let arrow = |from, to| Some(Shape::Arrow { from, to });
    match *action {
        Tick => None,
        Write { region } => arrow(Client, Region(region)),
        DeliverHeartbeat { region } | LoseAnswer { region } => arrow(Region(region), ControlPlane),
        LoseHeartbeat { region } => Some(Shape::Mark { at: Region(region) }),
        Replicate { from, to } => arrow(Region(from), Region(to)),
        Declare { region } | Promote { region } | Rejoin { region } => {
            arrow(ControlPlane, Region(region))
        }
        ComputeFailback => arrow(ControlPlane, Region(routing.home)),
        ComputeToPrimary => arrow(ControlPlane, Region(routing.primary)),
        Fence | AbortSwitchover | OutOfSync { .. } => arrow(ControlPlane, Region(routing.primary)),
        CompleteSwitchover => {
            let target = match s.control.phase {
                Phase::Switchover { target, .. } => target,
                _ => routing.primary,
            };
            arrow(ControlPlane, Region(target))
        }
        AutoFailback { target } => arrow(ControlPlane, Region(target)),
        Crash { region } | Isolate { region } | Recover { region } | Reconnect { region } => {
            arrow(Environment, Region(region))
        }
        Partition | Heal => Some(Shape::Mark { at: Environment }),
        RestartControl => Some(Shape::Mark { at: ControlPlane }),
        RequestFailback { .. } | ForceFailover { .. } | Reapply { .. } => {
            arrow(Operator, ControlPlane)
        }
    }
}

/// `text` with the XML special characters escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// One drawn row: the minute, what to draw (nothing: the final minute only) and its label.
struct Row {
    minute: u32,
    shape: Option<Shape>,
    label: String,
}

/// A text element; `anchor` is `start`, `middle` or `end`. A white halo keeps labels readable
/// where they cross a lifeline.
fn text(svg: &mut String, x: usize, y: usize, anchor: &str, fill: &str, label: &str) {
    let _ = writeln!(
        svg,
        "<text x='{x}' y='{y}' text-anchor='{anchor}' fill='{fill}' stroke='{BACKGROUND}' \
         stroke-width='3' paint-order='stroke'>{}</text>",
        escape(label)
    );
}

/// The sequence diagram of `path` (each state with the action taken from it, the last state
/// with `None`), as a standalone SVG document. A step that is not enabled in its state is
/// not drawn.
pub fn sequence_diagram(cfg: &Config, path: &[(DrState, Option<Action>)]) -> String {
    let regions = path.first().map_or(cfg.regions, |(s, _)| s.region_count());
    let tick = cfg.params.tick;

    // The rows, with the minute each step happens at.
    let mut rows: Vec<Row> = Vec::new();
    let mut minute = 0u32;
    for (state, action) in path {
        let Some(action) = action else { continue };
        // stateright keeps the state when a path names a disabled step: nothing happened.
        if protocol::apply(cfg, state, action).is_none() {
            continue;
        }
        if *action == Action::Tick {
            minute += tick;
            continue;
        }
        rows.push(Row {
            minute,
            shape: shape(state, action),
            label: action.to_string(),
        });
    }
    // Where the path ends, if the clock moved on after the last drawn step.
    if rows.last().is_none_or(|r| r.minute != minute) {
        rows.push(Row {
            minute,
            shape: None,
            label: String::new(),
        });
    }

    let lifelines: Vec<Lifeline> = std::iter::once(Lifeline::Client)
        .chain((0..regions).map(Lifeline::Region))
        .chain([
            Lifeline::ControlPlane,
            Lifeline::Operator,
            Lifeline::Environment,
        ])
        .collect();
    let x_of = |l: Lifeline| MINUTES + COLUMN / 2 + l.column(regions) * COLUMN;
    let y_of = |row: usize| HEADER + ROW * (row + 1);

    // Size: every lifeline, and every label starting right of an arrow's left end.
    let mut width = MINUTES + COLUMN * lifelines.len();
    for row in &rows {
        if let Some(Shape::Arrow { from, to }) = row.shape {
            let left = x_of(from).min(x_of(to));
            width = width.max(left + 6 + CHAR_WIDTH * row.label.chars().count() + 10);
        }
    }
    let height = y_of(rows.len() - 1) + ROW / 2 + 10;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns='http://www.w3.org/2000/svg' version='1.1' width='{width}' \
         height='{height}' viewBox='0 0 {width} {height}' font-family='sans-serif' \
         font-size='12px'>"
    );
    let _ = writeln!(
        svg,
        "<rect x='0' y='0' width='{width}' height='{height}' fill='{BACKGROUND}' />"
    );

    // Lifelines with their labels.
    let bottom = height - 10;
    for &l in &lifelines {
        let x = x_of(l);
        let _ = writeln!(
            svg,
            "<line x1='{x}' y1='{}' x2='{x}' y2='{bottom}' stroke='{LIFELINE}' \
             stroke-width='1.5' />",
            HEADER - 12
        );
        text(&mut svg, x, HEADER - 18, "middle", TEXT, &l.label());
    }
    text(&mut svg, 8, HEADER - 18, "start", MINUTE, "minute");

    // One row per step.
    let mut previous_minute = None;
    for (i, row) in rows.iter().enumerate() {
        let y = y_of(i);
        if previous_minute != Some(row.minute) {
            text(&mut svg, 8, y + 4, "start", MINUTE, &row.minute.to_string());
            previous_minute = Some(row.minute);
        }
        match row.shape {
            Some(Shape::Arrow { from, to }) => {
                let (x1, x2) = (x_of(from), x_of(to));
                let colour = from.colour();
                // The line stops at the arrowhead's base; the head points at `to`.
                let base = if x2 > x1 { x2 - 8 } else { x2 + 8 };
                let _ = writeln!(
                    svg,
                    "<line x1='{x1}' y1='{y}' x2='{base}' y2='{y}' stroke='{colour}' \
                     stroke-width='1.5' />"
                );
                let _ = writeln!(
                    svg,
                    "<polygon points='{x2},{y} {base},{} {base},{}' fill='{colour}' />",
                    y - 4,
                    y + 4
                );
                text(&mut svg, x1.min(x2) + 6, y - 5, "start", colour, &row.label);
            }
            Some(Shape::Mark { at }) => {
                let x = x_of(at);
                let colour = at.colour();
                let _ = writeln!(
                    svg,
                    "<rect x='{}' y='{}' width='10' height='10' fill='{colour}' \
                     transform='rotate(45 {x} {y})' />",
                    x - 5,
                    y - 5
                );
                text(&mut svg, x - 10, y + 4, "end", colour, &row.label);
            }
            None => {}
        }
    }
    svg.push_str("</svg>\n");
    svg
}
