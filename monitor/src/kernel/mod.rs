//! Everything that faces the kernel: checks before loading (preflight), the kernel's types
//! (BTF) and the offsets the programs need (layout), what enforcement refuses (enforcement) and which programs may open what (read_denial), the probe table and its loader (probes),
//! the TLS libraries hooked for proof of use (tls_libraries) and the holders whose writes are read (tls_holders), and registering kernel descriptors with the runtime (readiness). The stages after decode
//! never reach in here.
pub mod btf;
pub mod enforcement;
pub mod layout;
pub mod preflight;
pub mod probes;
pub mod read_denial;
pub mod readiness;
pub mod tls_holders;
pub mod tls_libraries;
