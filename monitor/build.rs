//! Builds the kernel programs (monitor-ebpf) for the BPF target with the pinned toolchain, so one
//! `cargo build` builds both sides. RUSTC_BOOTSTRAP lets `-Z build-std=core` run on stable.
fn main() -> anyhow::Result<()> {
    // SAFETY: build scripts are single-threaded.
    unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../monitor-ebpf");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "monitor-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom("1.98.0"),
    )
}
