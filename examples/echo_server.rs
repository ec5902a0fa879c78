//! The smallest syncnet program: an echo server on 127.0.0.1:3000 that stops
//! gracefully on Ctrl-C. Run with `cargo run --example echo_server`.

use std::process::ExitCode;

use syncnet::{Conn, LogFormat, Server};

fn main() -> ExitCode {
    syncnet::init_logging(LogFormat::Auto);
    let served = Server::builder()
        .listen("127.0.0.1:3000")
        .workers(64)
        .admin(None)
        .build()
        .and_then(|server| server.run(|conn: &mut Conn| syncnet::echo(conn)));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Display, not Debug: the message names the address or setting.
            eprintln!("error: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}
