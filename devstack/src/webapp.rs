//! The web app for `devstack up`: built from the checkout's `web/` with npm when its build is
//! missing or older than its sources, so `devstack up` on a fresh clone serves a current app.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::SystemTime,
};

use anyhow::Context;

/// The checkout's `web/` (this crate sits beside it).
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web")
}

/// Inputs of a build: a change to any of them makes `dist/` stale.
const INPUTS: [&str; 6] = [
    "src",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
];

/// Builds `web` into `web/dist` unless that build is newer than every input; returns `dist`.
/// `npm ci` runs first when `node_modules` is missing or older than the lockfile.
pub fn build_if_stale(web: &Path) -> anyhow::Result<PathBuf> {
    let dist = web.join("dist");
    let built = modified(&dist.join("index.html"));
    let newest_input = INPUTS
        .iter()
        .filter_map(|input| newest(&web.join(input)))
        .max();
    if built.is_some() && built >= newest_input {
        return Ok(dist);
    }
    let installed = modified(&web.join("node_modules/.package-lock.json"));
    if installed.is_none() || installed < modified(&web.join("package-lock.json")) {
        npm(web, &["ci", "--no-audit", "--no-fund"])?;
    }
    npm(web, &["run", "build"])?;
    Ok(dist)
}

fn npm(web: &Path, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("devstack: npm {} (in {})", args.join(" "), web.display());
    let status = Command::new("npm")
        .args(args)
        .current_dir(web)
        .status()
        .context("cannot run npm (Node.js 20 or newer builds the web app; --no-web skips it)")?;
    anyhow::ensure!(
        status.success(),
        "npm {} failed in {}",
        args.join(" "),
        web.display()
    );
    Ok(())
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of `path` or anything below it.
fn newest(path: &Path) -> Option<SystemTime> {
    let own = modified(path);
    let Ok(entries) = std::fs::read_dir(path) else {
        return own;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| newest(&entry.path()))
        .chain(own)
        .max()
}
