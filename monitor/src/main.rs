//! The `keytrail` command: see the library (`lib.rs`).
fn main() -> std::process::ExitCode {
    monitor::main()
}
