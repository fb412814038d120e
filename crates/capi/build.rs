//! Gives the shared library its soname, `libomnifuse.so.<ABI major>`, so programs linked
//! against one ABI major refuse to load a library of another.

fn main() {
    let major = 1;
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libomnifuse.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
