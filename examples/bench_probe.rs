//! Runs `syncnet::bench::run` once and prints its JSON: for comparing the
//! bench with other load generators (`bench_probe ADDR MODE CONNS SECS`).

use std::time::Duration;

use syncnet::bench::{BenchOptions, Mode};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let connect = args.next().unwrap_or_else(|| "127.0.0.1:7102".into());
    let mode: Mode = args.next().unwrap_or_else(|| "pingpong".into()).parse()?;
    let connections = args.next().map_or(Ok(16), |a| a.parse())?;
    let secs = args.next().map_or(Ok(5), |a| a.parse())?;
    let pipeline = args.next().map_or(Ok(1), |a| a.parse())?;
    let report = syncnet::bench::run(&BenchOptions {
        connect,
        connections,
        duration: Duration::from_secs(secs),
        mode,
        pipeline,
        progress: syncnet::bench::stderr_is_terminal(),
        ..BenchOptions::default()
    })?;
    eprintln!("{report}");
    println!("{}", report.to_json());
    std::process::exit(report.exit_code());
}
