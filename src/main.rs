//! drcheck: a thin CLI over the model, the properties and the implementation.

mod args;
mod check_cmd;
mod explore_cmd;
mod logs;
mod render;
mod replay_cmd;
mod service_cmd;
mod show_cmd;
mod simulate_cmd;
mod validate_cmd;
mod walk_cmd;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

/// A problem with what the user asked for: reported in one line, exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn main() -> ExitCode {
    // A reader that goes away (`drcheck check | head`) ends this process quietly, as it does
    // any Unix filter, rather than turning every later print into a panic: Rust starts
    // programs with SIGPIPE ignored.
    // SAFETY: at the start of main, before any thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => check_cmd::run(&args),
        Command::Explore(args) => explore_cmd::run(&args),
        Command::Show(args) => show_cmd::run(&args),
        Command::Replay(args) => replay_cmd::run(&args),
        Command::Validate(args) => validate_cmd::run(&args),
        Command::Walk(args) => walk_cmd::run(&args),
        Command::Simulate(args) => simulate_cmd::run(&args),
        Command::Serve(args) => service_cmd::serve(&args),
        Command::Region(args) => service_cmd::region(&args),
        Command::Control(args) => service_cmd::control(&args),
        Command::Status(args) => service_cmd::status(&args),
        Command::Failback(args) => service_cmd::failback(&args),
        Command::ForceFailover(args) => service_cmd::force_failover(&args),
        Command::Quarantine(args) => service_cmd::quarantine(&args),
        Command::Reapply(args) => service_cmd::reapply(&args),
        Command::Fault(args) => service_cmd::fault(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) if err.is::<UsageError>() => {
            logs::fatal(&format!("error: {err}"));
            ExitCode::from(2)
        }
        Err(err) => {
            logs::fatal(&format!("error: {err:#}"));
            ExitCode::from(1)
        }
    }
}
