//! `drcheck ARGS...` run to completion as a user would run it, and the flag sets of the tiny
//! models the tests check: each run is kept small (a few thousand states) so that a test file
//! takes a few seconds in release mode.

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// No single run should take more than a second or so; a hang fails the test.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The model's flags with every fault budget but the default crash outage at zero and
/// `$writes` writes, then the `$flag`s.
macro_rules! tiny {
    ($writes:literal $(, $flag:literal)* $(,)?) => {
        &[
            "--writes", $writes, "--partitions", "0", "--failbacks", "0", "--forced", "0"
            $(, $flag)*
        ]
    };
}

/// The tiny model's flags alone, which `explore` takes as well as `check`: one crash outage,
/// nothing else.
pub const TINY: &[&str] = tiny!("0");

/// One checker thread and no progress on stderr: flags of `check` only.
pub const QUIET: &[&str] = &["--threads", "1", "-q"];

/// A tiny model: one crash outage, nothing else, without isolation. Some `sometimes`
/// properties are out of reach here, so a correct run of it exits 1.
pub const SMALL: &[&str] = tiny!("0", "--no-isolation", "--threads", "1", "-q");

/// [`SMALL`] without `-q`.
pub const SMALL_NOISY: &[&str] = tiny!("0", "--no-isolation", "--threads", "1");

/// The tiny model with one write to lose (so that its worst-data-loss trace loses one), with
/// isolation, on every core. With no forced failover in the budget, one `sometimes` property
/// is out of reach: a correct run of it exits 1.
pub const ONE_WRITE: &[&str] = tiny!("1", "-q");

/// The smallest model found in which every `sometimes` property is reachable (a forced
/// failover needs a partition to make the RPO guard refuse, and a short grace period).
pub const ALL_REACHABLE: &[&str] = &[
    "--writes",
    "1",
    "--partitions",
    "1",
    "--failbacks",
    "1",
    "--forced",
    "1",
    "--no-isolation",
    "--grace",
    "2",
    "--rpo",
    "5",
    "--throttle",
    "2",
    "--rto",
    "12",
    "--sync-timeout",
    "8",
    "--threads",
    "1",
    "-q",
];

/// How a run of `drcheck` ended.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `drcheck ARGS...` to completion (or panics after [`DEADLINE`]).
pub fn drcheck(args: &[&str]) -> Output {
    let mut command = super::command();
    command.args(args);
    run(command)
}

/// Runs `drcheck check BASE... EXTRA...`.
pub fn check(base: &[&str], extra: &[&str]) -> Output {
    drcheck(&[&["check"], base, extra].concat())
}

/// Runs `command` (a `drcheck` command, with its arguments and environment) to completion
/// with no standard input, its stdout and stderr captured; panics after [`DEADLINE`], on
/// output that is not UTF-8, or if the process was killed by a signal.
pub fn run(mut command: Command) -> Output {
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the drcheck binary starts");
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).map(|_| s)
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).map(|_| s)
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for drcheck") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("drcheck {args:?} did not finish within {DEADLINE:?}");
        }
        thread::sleep(Duration::from_millis(5));
    };
    let stdout = out.join().unwrap().expect("stdout is UTF-8");
    let stderr = err.join().unwrap().expect("stderr is UTF-8");
    Output {
        code: status.code().unwrap_or_else(|| {
            panic!("drcheck {args:?} was killed by a signal; stderr:\n{stderr}")
        }),
        stdout,
        stderr,
    }
}
