//! Shared by the client tests: an in-process server on a free port serving the built-in
//! omni-small model on the CPU, and small test media.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;

use omnifuse_http::{ApiKeys, RunningServer, ServeConfig, serve_models, spawn};
use omnifuse_model::Model;

/// Settings for a test server on 127.0.0.1 and a free port.
pub fn config() -> ServeConfig {
    ServeConfig { addr: SocketAddr::from(([127, 0, 0, 1], 0)), ..ServeConfig::default() }
}

/// Start a server serving omni-small as "omni"; its base URL.
pub fn start(config: ServeConfig, keys: ApiKeys) -> (RunningServer, String) {
    let backend = omnifuse_registry::open("cpu").expect("the CPU backend opens");
    let model = Model::preset("omni-small", backend).expect("the omni-small preset builds");
    let models = serve_models(&config, vec![("omni".to_string(), model)]).expect("the model is served");
    let server = spawn(config, models, keys).expect("the server starts");
    let url = format!("http://{}", server.addr());
    (server, url)
}

/// A small RGB PNG.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 40) as u8, (y * 30) as u8, 128]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("PNG encodes");
    out.into_inner()
}

/// A loopback address nothing listens on (a port bound, then released).
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    l.local_addr().expect("an address")
}
