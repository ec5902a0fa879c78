//! `syncnet client`: one-shot `--message` mode, or stdin/stdout copy mode.

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::Instant;

use syncnet::{Client, Error};

use crate::cli::ClientArgs;

/// Runs the client; exit 0 when the whole reply arrived (message mode) or
/// both directions closed (copy mode).
pub fn run(args: &ClientArgs) -> Result<ExitCode, Error> {
    let client = match args.tls.settings()? {
        Some(tls) => Client::connect_tls(&args.connect, args.timeout, &tls)?,
        None => Client::connect(args.connect.as_str(), args.timeout)?,
    };
    match &args.message {
        Some(message) => send_message(client, message, args),
        None => copy_stdio(client),
    }
}

/// Sends `message`, prints what comes back until it is as long as the
/// message, EOF, or the timeout.
fn send_message(mut client: Client, message: &str, args: &ClientArgs) -> Result<ExitCode, Error> {
    let to_server = |e| Error::io(format!("sending to {}", args.connect), e);
    client.write_all(message.as_bytes()).map_err(to_server)?;
    let deadline = Instant::now() + args.timeout;
    let expected = message.len();
    let mut received = 0;
    let mut stdout = io::stdout().lock();
    let mut buf = [0u8; 16 * 1024];
    while received < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if client.set_read_timeout(Some(left)).is_err() {
            break;
        }
        let want = (expected - received).min(buf.len());
        match client.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => {
                received += n;
                stdout
                    .write_all(&buf[..n])
                    .and_then(|()| stdout.flush())
                    .map_err(|e| Error::io("writing to stdout", e))?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if received == expected {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "syncnet: error: the reply from {} was {received} of {expected} bytes",
            args.connect
        );
        Ok(ExitCode::FAILURE)
    }
}

/// Copies stdin to the server (then shuts down our sending side) and the
/// server's bytes to stdout, until both directions are closed.
fn copy_stdio(client: Client) -> Result<ExitCode, Error> {
    let peer = client.peer();
    client
        .relay(io::stdin(), &mut io::stdout().lock())
        .map_err(|e| Error::io(format!("relaying stdin/stdout to {peer}"), e))?;
    Ok(ExitCode::SUCCESS)
}
