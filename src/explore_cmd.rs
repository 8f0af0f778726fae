//! `drcheck explore`: stateright's Explorer for the model, optionally opened at a trace.

use std::net::TcpListener;
use std::process::ExitCode;

use anyhow::Result;
use drcheck_model::DrModel;
use stateright::{Model, Path};

use crate::args::ExploreArgs;
use crate::UsageError;

pub fn run(args: &ExploreArgs) -> Result<ExitCode> {
    let (model, fragment) = match &args.trace {
        Some(file) => {
            let trace = drcheck_traces::load(file).map_err(|e| UsageError(e.to_string()))?;
            let model = DrModel::new(trace.model.cfg.clone()).for_explorer();
            let actions = trace.actions();
            let path = Path::from_actions(&model, model.initial(), &actions)
                .ok_or_else(|| UsageError(format!("{}: does not replay", file.display())))?;
            let fragment = format!("#/steps/{}", path.encode(&model));
            eprintln!("using the parameters of {}", file.display());
            (model, fragment)
        }
        None => {
            let config = args.model.config(args.allow_inconsistent)?;
            (DrModel::new(config).for_explorer(), String::new())
        }
    };
    // tiny_http panics on a busy address: find out first, and say so.
    TcpListener::bind(&args.addr)
        .map_err(|e| UsageError(format!("cannot serve on {}: {e}", args.addr)))?;
    // The Explorer prefers ./ui/* in the working directory over its own UI: run it from an
    // empty directory so that a `ui/` folder where the user stands cannot replace it.
    // One shared directory, kept empty (the server runs until killed: nothing to clean up).
    let dir = std::env::temp_dir().join("drcheck-explorer");
    std::fs::create_dir_all(&dir)?;
    if dir.join("ui").exists() {
        std::fs::remove_dir_all(dir.join("ui"))?;
    }
    std::env::set_current_dir(&dir)?;
    println!("Explorer: http://{}/{fragment}", args.addr);
    println!("(press \"Run to completion\" to check every property; Ctrl-C to stop)");
    let _served = model.checker().serve(args.addr.as_str());
    Ok(ExitCode::SUCCESS)
}
