// Present so that monitor can name this crate as a build-dependency (aya-build's advice): cargo
// then rebuilds monitor when the kernel programs change. The programs themselves are in main.rs.
#![no_std]
