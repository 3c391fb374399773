//! Builds the kernel programs (monitor-ebpf) for the BPF target with the pinned toolchain, so one
//! `cargo build` builds both sides. RUSTC_BOOTSTRAP lets `-Z build-std=core` run on stable.
//! aya-build shows every line the inner build prints as a `warning:` of ours; CARGO_TERM_QUIET
//! keeps the inner cargo to what matters (compiler warnings and errors), so a first build does
//! not greet a newcomer with a hundred "warnings" that are progress lines.
fn main() -> anyhow::Result<()> {
    // SAFETY: build scripts are single-threaded.
    unsafe {
        std::env::set_var("RUSTC_BOOTSTRAP", "1");
        std::env::set_var("CARGO_TERM_QUIET", "true");
    }
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
