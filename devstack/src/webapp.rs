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
    if !is_stale(web) {
        return Ok(dist);
    }
    let installed = modified(&web.join("node_modules/.package-lock.json"));
    if installed.is_none() || installed < modified(&web.join("package-lock.json")) {
        npm(web, &["ci", "--no-audit", "--no-fund"])?;
    }
    npm(web, &["run", "build"])?;
    Ok(dist)
}

/// Whether `web/dist` is missing or older than one of the app's inputs.
pub fn is_stale(web: &Path) -> bool {
    let built = modified(&web.join("dist/index.html"));
    let newest_input = INPUTS
        .iter()
        .filter_map(|input| newest(&web.join(input)))
        .max();
    built.is_none() || built < newest_input
}

fn npm(web: &Path, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("devstack: npm {} (in {})", args.join(" "), web.display());
    let status = Command::new("npm")
        .args(args)
        .current_dir(web)
        // stdout is the banner's alone (`devstack up > banner.txt`): npm talks on stderr.
        .stdout(std::io::stderr())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path) {
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("dir");
        std::fs::write(path, "x").expect("write");
        // Distinct modification times even on a coarse clock.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    #[test]
    fn a_build_is_stale_when_missing_or_older_than_any_source() {
        let web = tempfile::tempdir().expect("temp dir");
        let web = web.path();
        write(&web.join("src/app/inbox.ts"));
        assert!(is_stale(web), "no build yet");
        write(&web.join("dist/index.html"));
        assert!(!is_stale(web), "built after every source");
        write(&web.join("src/app/inbox.ts"));
        assert!(is_stale(web), "a source below src/ changed since");
        write(&web.join("dist/index.html"));
        write(&web.join("package-lock.json"));
        assert!(is_stale(web), "the lockfile changed since");
        write(&web.join("dist/index.html"));
        write(&web.join("README.md"));
        assert!(!is_stale(web), "a file that is no input changes nothing");
    }

    #[test]
    fn the_checkouts_app_is_found_beside_the_crate() {
        assert!(source_dir().join("package.json").is_file());
    }
}
