//! The model's integration tests, in one test binary (one link instead of one per file).

mod bugs;
mod canonical;
mod default_model;
mod explorer_view;
mod replication;
mod rules;
mod simulate;
mod timing;
