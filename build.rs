// Build-time probes for the root package. DPDK (a later feature) is found here via
// pkg-config; for now we only export the target so `mobiked --version` can show it.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=MOBIKED_TARGET={target}");
}
