//! Turns `PC_CORE_MUTANT=NAME` into `--cfg pc_mutant="NAME"` for this crate alone, and only in
//! a loom build (`--cfg loom`): CI's mutant checks (`.ci/run`) build a deliberately broken
//! variant of pc-core that the loom models must reject. Passed in `RUSTFLAGS` instead, the cfg
//! would change every crate's flags and rebuild loom and its dependencies for each mutant;
//! from here only pc-core and the loom tests are rebuilt. Any other build ignores the variable.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=PC_CORE_MUTANT");
    // Cargo sets CARGO_CFG_LOOM for a build script when the target is compiled with --cfg loom.
    if std::env::var_os("CARGO_CFG_LOOM").is_none() {
        return;
    }
    if let Ok(name) = std::env::var("PC_CORE_MUTANT")
        && !name.is_empty()
    {
        println!("cargo::rustc-cfg=pc_mutant=\"{name}\"");
    }
}
