//! The `rpc` example as a process: `rpc serve` started and past its
//! start-up line, `rpc call` run to its end. For test files that also
//! declare `#[path = "support/binary.rs"] mod binary;` and
//! `#[path = "support/example.rs"] mod example;` at their root; declare it
//! with `#[path = "support/rpc_process.rs"] mod rpc_process;`.
#![allow(dead_code)] // each test binary uses a different subset

use std::process::Command;

use crate::binary::{self, Binary, Finished};
use crate::example;

/// The example's binary with `args`, in a clean environment.
pub fn rpc_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(example::rpc_exe());
    binary::clean_env(&mut cmd);
    cmd.args(args);
    cmd
}

/// `rpc serve` on 127.0.0.1:0 with JSON logs and `extra` flags, started
/// and past its start-up line.
pub fn rpc_serve(extra: &[&str]) -> Binary {
    let mut cmd = rpc_command(&["serve", "--listen", "127.0.0.1:0", "--log-format", "json"]);
    cmd.args(extra);
    Binary::start(cmd)
}

/// `rpc call` with `args`, run to its end.
pub fn rpc_call(args: &[&str]) -> Finished {
    let mut cmd = rpc_command(&["call"]);
    cmd.args(args);
    binary::run(cmd, b"")
}
