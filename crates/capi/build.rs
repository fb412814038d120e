//! Gives the shared library its soname, `libomnifuse.so.<ABI major>`, so programs linked
//! against one ABI major refuse to load a library of another. The major here must equal
//! `OMNIFUSE_ABI_MAJOR` in `src/info.rs` (a unit test there holds them equal).

/// The ABI major version in the soname.
const ABI_MAJOR: u32 = 1;

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libomnifuse.so.{ABI_MAJOR}");
    }
    println!("cargo:rustc-env=OMNIFUSE_SONAME_MAJOR={ABI_MAJOR}");
    println!("cargo:rerun-if-changed=build.rs");
}
