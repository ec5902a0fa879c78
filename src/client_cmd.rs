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

/// Sends `message` and prints what comes back, until the reply is as long
/// as the message, end of input, or the timeout. Succeeds only when the
/// reply equals the message; otherwise says what differed, or which read or
/// TLS error ended it (exit 1).
fn send_message(mut client: Client, message: &str, args: &ClientArgs) -> Result<ExitCode, Error> {
    let to_server = |e| Error::io(format!("sending to {}", args.connect), e);
    client.write_all(message.as_bytes()).map_err(to_server)?;
    let deadline = Instant::now() + args.timeout;
    let expected = message.as_bytes();
    let mut reply = Vec::with_capacity(expected.len());
    let mut stdout = io::stdout().lock();
    let mut buf = [0u8; 16 * 1024];
    let mut failure: Option<String> = None;
    while reply.len() < expected.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            failure = Some(format!("no complete reply within {:?}", args.timeout));
            break;
        }
        if let Err(e) = client.set_read_timeout(Some(left)) {
            failure = Some(format!("cannot set the read timeout: {e}"));
            break;
        }
        let want = (expected.len() - reply.len()).min(buf.len());
        match client.read(&mut buf[..want]) {
            Ok(0) => {
                failure = Some("the server closed the connection".to_string());
                break;
            }
            Ok(n) => {
                reply.extend_from_slice(&buf[..n]);
                stdout
                    .write_all(&buf[..n])
                    .and_then(|()| stdout.flush())
                    .map_err(|e| Error::io("writing to stdout", e))?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                failure = Some(format!("no complete reply within {:?}", args.timeout));
                break;
            }
            Err(e) => {
                failure = Some(format!("reading the reply failed: {e}"));
                break;
            }
        }
    }
    let mismatch = reply
        .iter()
        .zip(expected)
        .position(|(got, sent)| got != sent);
    let problem = match (mismatch, failure) {
        (Some(at), _) => Some(format!(
            "the reply differs from the message at byte {at} (got {:?}, sent {:?})",
            String::from_utf8_lossy(&reply[at..(at + 16).min(reply.len())]),
            String::from_utf8_lossy(&expected[at..(at + 16).min(expected.len())]),
        )),
        (None, Some(why)) => Some(format!(
            "{why}, after {} of {} bytes",
            reply.len(),
            expected.len()
        )),
        (None, None) => None,
    };
    match problem {
        None => Ok(ExitCode::SUCCESS),
        Some(problem) => {
            eprintln!("syncnet: error: {}: {problem}", args.connect);
            Ok(ExitCode::FAILURE)
        }
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
