//! Records what built this binary, for result provenance: rustc, the git commit and whether the
//! tree had uncommitted changes, and the build profile.

use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = run(&rustc, &["--version"]).unwrap_or_else(|| "unknown".into());
    let commit =
        run("git", &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = run("git", &["status", "--porcelain", "--untracked-files=no"])
        .map_or("unknown", |s| if s.is_empty() { "false" } else { "true" });
    println!("cargo:rustc-env=TERNBENCH_RUSTC={version}");
    println!("cargo:rustc-env=TERNBENCH_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=TERNBENCH_GIT_DIRTY={dirty}");
    let profile = std::env::var("PROFILE").unwrap_or_default();
    println!("cargo:rustc-env=TERNBENCH_PROFILE={profile}");
    for path in ["../.git/HEAD", "../.git/index"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
