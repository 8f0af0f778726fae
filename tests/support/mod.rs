//! What the root integration tests share: the `drcheck` binary under test, a runner that
//! takes it to completion within a deadline ([`cli`]), the flag sets of the tiny models they
//! check ([`cli`]), and a `drcheck serve` deployment of real processes ([`serve`]).
//!
//! Every test binary that says `mod support;` compiles this whole module on its own and uses
//! only a part of it, so an item one binary leaves unused is still used by another: hence
//! `dead_code` is allowed here (for the submodules too) rather than item by item.
#![allow(dead_code)]

pub mod cli;
pub mod serve;

use std::process::Command;

/// The `drcheck` binary under test, as a command to add arguments to.
pub fn command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_drcheck"))
}
