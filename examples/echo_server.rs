//! The smallest syncnet program: an echo server on 127.0.0.1:3000 that stops
//! gracefully on Ctrl-C. Run with `cargo run --example echo_server`.

use syncnet::{Conn, Server};

fn main() -> Result<(), syncnet::Error> {
    syncnet::init_logging(syncnet::LogFormat::Auto);
    Server::builder()
        .listen("127.0.0.1:3000")
        .workers(64)
        .admin(None)
        .build()?
        .run(|conn: &mut Conn| syncnet::echo(conn))
}
