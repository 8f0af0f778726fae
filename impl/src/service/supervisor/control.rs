//! Keeping the control plane running. Whenever the control-plane process exits, however it
//! was stopped (a crash, a `kill -9` from outside, the operator's `CrashControl`), a watcher
//! task says so on stderr and starts it again, after a delay that doubles while it keeps dying
//! soon after each start (so a crash loop does not spin).
//!
//! Before each start the supervisor recovers the routing from the regions as they are now —
//! a running region's (epoch, role) as it reports it, a stopped region's from its store — and
//! writes it to `cluster.json` as the routing to resume with. The control plane's own restart
//! logic does the rest (`ControlMachine::resume`: it declares nothing failed before a full
//! detection period and promotes nobody before any earlier lease has surely expired).

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::process::Child;

use super::{lock, stored_role, write_cluster, Supervisor};
use crate::auth::Principal;
use crate::service::endpoint::Faults as _;
use crate::service::rpc::{self, RegionCall};
use crate::service::Cluster;
use drcheck_fhir::region::{FhirInput, FhirOutput};
use drcheck_properties::Role;
use drcheck_protocol::control::recover_routing;
use drcheck_protocol::entry::Epoch;
use drcheck_protocol::event::FaultKind;
use drcheck_protocol::message::NodeId;

/// How often the watcher looks at the control-plane process.
const POLL: Duration = Duration::from_millis(100);
/// The delay before restarting a control plane that had run for a while.
const FIRST_DELAY: Duration = Duration::from_millis(200);
/// The longest delay between restarts of a control plane that keeps dying.
const MAX_DELAY: Duration = Duration::from_secs(5);
/// A control plane that ran this long was not crash-looping: the next restart waits only
/// [`FIRST_DELAY`] again.
const STABLE_RUN: Duration = Duration::from_secs(10);
/// How long a running region may take to tell its (epoch, role): it may be starting.
const ASK_REGION_FOR: Duration = Duration::from_secs(3);
/// How long a killed control plane may take to die.
const DYING: Duration = Duration::from_secs(2);

/// The delay before the next start after `quick_exits` consecutive exits (or failed starts)
/// soon after a start: [`FIRST_DELAY`], doubling with each, at most [`MAX_DELAY`].
fn restart_delay(quick_exits: u32) -> Duration {
    FIRST_DELAY
        .saturating_mul(1 << quick_exits.min(16))
        .min(MAX_DELAY)
}

/// Tells the operator on serve's stderr, and serve's log.
fn say(message: &str) {
    eprintln!("drcheck serve: {message}");
    tracing::warn!(target: "drcheck::serve", "{message}");
}

/// An exit status in words: `signal 9`, `exit code 1`.
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// The control-plane process, and when it started.
pub(super) struct ControlSlot {
    child: Option<Child>,
    started: Instant,
}

impl Default for ControlSlot {
    fn default() -> Self {
        ControlSlot {
            child: None,
            started: Instant::now(),
        }
    }
}

impl ControlSlot {
    /// `child` is the control plane from now on.
    pub(super) fn started(&mut self, child: Child) {
        self.child = Some(child);
        self.started = Instant::now();
    }

    /// The process, taken out (to stop it).
    pub(super) fn take(&mut self) -> Option<Child> {
        self.child.take()
    }

    /// Its process id, if it runs.
    fn pid(&mut self) -> Option<u32> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(None) => child.id(),
            _ => None,
        }
    }
}

/// What a request to start the control plane came to.
enum Start {
    /// Started, with this process id.
    Started(u32),
    /// It was running already, with this process id.
    Running(u32),
    /// `serve` is stopping: nothing is started any more.
    Stopping,
}

impl Supervisor {
    /// Starts the task that restarts the control plane whenever it exits.
    pub(super) fn watch_control(self: &Arc<Self>) {
        let task = tokio::spawn(watch(Arc::downgrade(self)));
        *lock(&self.watcher) = Some(task);
    }

    /// The control plane's process id, if it runs.
    pub(super) fn control_pid(&self) -> Option<u32> {
        lock(&self.control).pid()
    }

    /// Waits `delay`, or less if the supervisor is told to stop.
    async fn pause(&self, delay: Duration) {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = self.wake.notified() => {}
        }
    }

    /// Takes an exited control plane's process out of its slot, saying so on stderr: how long
    /// it had run, or `None` if it runs (or was taken out already).
    fn reap_control(&self) -> Option<Duration> {
        let mut slot = lock(&self.control);
        let child = slot.child.as_mut()?;
        let what = match child.try_wait() {
            Ok(None) => return None,
            Ok(Some(status)) => describe(status),
            // Cannot tell: dropping the child kills it if it still runs (`kill_on_drop`).
            Err(e) => format!("cannot be waited for: {e}"),
        };
        slot.child = None;
        if !self.stopping() {
            let said = self.last_log_line(NodeId::Control);
            say(&format!("control plane exited ({what}{said}); restarting"));
        }
        Some(slot.started.elapsed())
    }

    /// Starts the control plane unless it runs, resuming with the routing the regions hold
    /// now.
    async fn start_control(&self) -> Result<Start, String> {
        let _ops = self.ops.lock().await;
        if self.stopping() {
            return Ok(Start::Stopping);
        }
        if let Some(pid) = self.control_pid() {
            return Ok(Start::Running(pid));
        }
        self.reap_control();
        self.write_resume().await;
        // Before it starts: the model's restart of the control plane, whose first event
        // comes after it.
        self.fault_event(FaultKind::ControlRestart, None);
        let child = self.spawn(NodeId::Control).map_err(|e| e.to_string())?;
        let pid = child.id().unwrap_or(0);
        lock(&self.control).started(child);
        let n = self.control_restarts.fetch_add(1, Ordering::SeqCst) + 1;
        say(&format!("control plane restarted (pid {pid}; restart {n})"));
        Ok(Start::Started(pid))
    }

    /// Writes the routing the regions hold now to `cluster.json`, for the control plane to
    /// resume with. If a region cannot tell, the file keeps the routing it has (the last one
    /// recovered): a region that acts as primary of a newer epoch corrects it when it reports.
    async fn write_resume(&self) {
        let written = match self.routing_now().await {
            Ok(resume) => {
                let cluster = Cluster {
                    resume,
                    ..self.cluster.clone()
                };
                write_cluster(&self.cluster_file, &cluster).map_err(|e| e.to_string())
            }
            Err(why) => Err(why),
        };
        if let Err(why) = written {
            say(&format!(
                "{why}; the control plane resumes with the routing in {}",
                self.cluster_file.display()
            ));
        }
    }

    /// The routing a control plane starting now resumes with (see `recover_routing`).
    async fn routing_now(&self) -> Result<Option<(Epoch, u8)>, String> {
        let mut held = Vec::new();
        for r in 0..self.cluster.regions {
            held.push(if self.running(r) {
                self.reported_role(r).await?
            } else {
                self.store_role(r).await?
            });
        }
        Ok(recover_routing(&held))
    }

    /// Running region `r`'s (epoch, role), as it reports it.
    async fn reported_role(&self, r: u8) -> Result<Option<(Epoch, Role)>, String> {
        let addr = self.cluster.region[usize::from(r)].rpc;
        let ask = RegionCall::Machine(FhirInput::Summary);
        let deadline = Instant::now() + ASK_REGION_FOR;
        loop {
            let answer = rpc::call(addr, &self.keys, Principal::Region(r), &ask, POLL * 10);
            let why = match answer.await {
                Ok(FhirOutput::Summary(s)) => return Ok(Some((s.epoch, s.role))),
                Ok(other) => format!("it answered {other:?}"),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(format!("region {r} did not tell its role ({why})"));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stopped region `r`'s (epoch, role), from its store.
    async fn store_role(&self, r: u8) -> Result<Option<(Epoch, Role)>, String> {
        let data_dir = self.cluster.data_dir.clone();
        // Opening a redb file may repair it after a crash: off the async workers.
        tokio::task::spawn_blocking(move || stored_role(&data_dir, r))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("region {r}'s store: {e}"))
    }

    /// `CrashControl`: SIGKILL to the control plane; the watcher restarts it. Returns once it
    /// is dead, so that a `RecoverControl` right after finds it down.
    pub(super) async fn crash_control(&self) -> Result<String, String> {
        let pid = {
            let mut slot = lock(&self.control);
            let pid = slot.pid().ok_or("the control plane is down (restarting)")?;
            if let Some(child) = slot.child.as_mut() {
                child.start_kill().map_err(|e| e.to_string())?;
            }
            pid
        };
        let deadline = Instant::now() + DYING;
        while self.control_pid() == Some(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(format!(
            "control plane killed (pid {pid}); drcheck serve restarts it"
        ))
    }

    /// `RecoverControl`: starts the control plane now if it is down.
    pub(super) async fn recover_control(&self) -> Result<String, String> {
        match self.start_control().await? {
            Start::Started(pid) => Ok(format!("control plane started (pid {pid})")),
            Start::Running(pid) => Err(format!("the control plane is running (pid {pid})")),
            Start::Stopping => Err("drcheck serve is stopping".into()),
        }
    }
}

/// The watcher: restarts the control plane whenever it exits, until the supervisor stops
/// (or is gone: the watcher does not keep it alive between two looks).
async fn watch(supervisor: Weak<Supervisor>) {
    let mut quick_exits = 0u32;
    loop {
        let Some(s) = supervisor.upgrade() else {
            return;
        };
        s.pause(POLL).await;
        if s.stopping() {
            return;
        }
        if let Some(ran_for) = s.reap_control() {
            if ran_for >= STABLE_RUN {
                quick_exits = 0;
            }
        }
        if s.control_pid().is_some() {
            continue;
        }
        s.pause(restart_delay(quick_exits)).await;
        if let Err(why) = s.start_control().await {
            say(&format!(
                "cannot start the control plane: {why}; trying again"
            ));
        }
        quick_exits = quick_exits.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restart_delay_doubles_while_the_control_plane_keeps_dying_and_is_bounded() {
        assert_eq!(restart_delay(0), FIRST_DELAY);
        assert_eq!(restart_delay(1), FIRST_DELAY * 2);
        assert_eq!(restart_delay(2), FIRST_DELAY * 4);
        assert_eq!(restart_delay(5), MAX_DELAY);
        assert_eq!(restart_delay(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn an_exit_is_told_by_its_signal_or_its_code() {
        assert_eq!(describe(ExitStatus::from_raw(9)), "signal 9");
        assert_eq!(describe(ExitStatus::from_raw(1 << 8)), "exit code 1");
    }
}
