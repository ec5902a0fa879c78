//! The flag tables of `docs/reference.md`, rendered from the settings table
//! and clap's definitions of `serve`, `client` and `bench`.
//!
//! The test fails when a table in the reference differs from what the code
//! declares, and prints the table to paste in its place.

use clap::{Arg, Command, CommandFactory};

use super::Cli;
use super::serve::describe;

/// The reference, relative to the package root.
const REFERENCE: &str = "docs/reference.md";

/// A table cell: `|` escaped (GitHub tables split on it, even in code).
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// `--flag VALUE`, `-c, --connections N`, or `--json` for a switch.
fn usage(arg: &Arg) -> String {
    let mut text = String::new();
    if let Some(short) = arg.get_short() {
        text.push_str(&format!("-{short}, "));
    }
    text.push_str(&format!("--{}", arg.get_long().unwrap_or_default()));
    if arg.get_action().takes_values() {
        for name in arg.get_value_names().unwrap_or_default() {
            text.push_str(&format!(" {name}"));
        }
    }
    text
}

fn subcommand(name: &str) -> Command {
    let mut cli = Cli::command();
    cli.build();
    cli.find_subcommand(name)
        .unwrap_or_else(|| panic!("no subcommand {name}"))
        .clone()
}

/// The arguments of a subcommand, `--help` left out.
fn arguments(command: &Command) -> Vec<Arg> {
    command
        .get_arguments()
        .filter(|arg| arg.get_long().is_some_and(|long| long != "help"))
        .cloned()
        .collect()
}

/// `syncnet serve`: flag, default, variable and key from the settings table;
/// `--config` from its clap definition.
fn serve_table() -> String {
    let flags = describe();
    let mut out = String::from(
        "| flag | default | environment | TOML key | meaning |\n| --- | --- | --- | --- | --- |\n",
    );
    for arg in arguments(&subcommand("serve")) {
        let id = arg.get_id().as_str();
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        let env = arg
            .get_env()
            .and_then(|env| env.to_str())
            .map_or("—".to_string(), |env| format!("`{env}`"));
        let (default, key, meaning) = match flags.iter().find(|flag| flag.key == id) {
            Some(flag) => (
                flag.default
                    .as_ref()
                    .map_or("—".to_string(), |d| format!("`{d}`")),
                format!("`{}`", flag.key),
                flag.help.to_string(),
            ),
            None => ("—".to_string(), "—".to_string(), help),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            cell(&usage(&arg)),
            cell(&default),
            env,
            key,
            cell(&meaning),
        ));
    }
    out
}

/// `syncnet client` and `syncnet bench`: from their clap definitions.
fn plain_table(name: &str) -> String {
    table_of(&arguments(&subcommand(name)))
}

/// Flag, default and meaning of each of `args`.
fn table_of(args: &[Arg]) -> String {
    let mut out = String::from("| flag | default | meaning |\n| --- | --- | --- |\n");
    for arg in args {
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| format!("`{}`", v.to_string_lossy()))
            .collect();
        let default = if defaults.is_empty() || !arg.get_action().takes_values() {
            "—".to_string()
        } else {
            defaults.join(", ")
        };
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            cell(&usage(arg)),
            cell(&default),
            cell(&help),
        ));
    }
    out
}

/// `syncnet proxy`: its own flags, from their clap definitions (the flags
/// it shares with `serve` are in `serve`'s table).
fn proxy_table() -> String {
    let serve = subcommand("serve");
    let mut proxy = subcommand("proxy");
    for arg in arguments(&serve) {
        let id = arg.get_id().clone();
        proxy = proxy.mut_arg(id, |a| a.hide(true));
    }
    let own: Vec<Arg> = arguments(&proxy)
        .into_iter()
        .filter(|arg| !arg.is_hide_set())
        .collect();
    table_of(&own)
}

/// The text between `<!-- BEGIN name -->` and `<!-- END name -->`.
fn region<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let begin = format!("<!-- BEGIN {name} -->\n");
    let end = format!("<!-- END {name} -->");
    let start = text.find(&begin)? + begin.len();
    let len = text[start..].find(&end)?;
    Some(&text[start..start + len])
}

#[test]
fn the_reference_lists_the_flags_the_code_declares() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(REFERENCE);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut stale = Vec::new();
    for (name, table) in [
        ("serve flags", serve_table()),
        ("proxy flags", proxy_table()),
        ("client flags", plain_table("client")),
        ("bench flags", plain_table("bench")),
    ] {
        if region(&text, name) != Some(table.as_str()) {
            stale.push(format!("<!-- BEGIN {name} -->\n{table}<!-- END {name} -->"));
        }
    }
    assert!(
        stale.is_empty(),
        "{REFERENCE} is out of date; replace its tables with:\n\n{}\n",
        stale.join("\n\n")
    );
}

#[test]
fn the_reference_has_its_sections() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(REFERENCE);
    let text = std::fs::read_to_string(path).unwrap();
    for heading in [
        "## Flags",
        "## Metrics",
        "## Logs",
        "## Exit codes",
        "## Shutdown",
    ] {
        assert!(
            text.lines().any(|line| line == heading),
            "no {heading:?} in {REFERENCE}"
        );
    }
}
