//! Rebuild the kernel programs when bpf-linker changes, since it is what produces them.
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
