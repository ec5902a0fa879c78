//! The README names only examples that exist: every `--example NAME` in a
//! command, and every example the overview lists, is a file in `examples/`
//! (`NAME.rs` or `NAME/main.rs`), so a newcomer's first copy-paste works.

use std::path::Path;

fn example_exists(root: &Path, name: &str) -> bool {
    root.join("examples").join(format!("{name}.rs")).is_file()
        || root.join("examples").join(name).join("main.rs").is_file()
}

#[test]
fn every_example_the_readme_runs_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    // The word after each `--example`, across line breaks.
    let words: Vec<&str> = readme.split_whitespace().collect();
    let named: Vec<String> = words
        .windows(2)
        .filter(|pair| pair[0].trim_start_matches('`') == "--example")
        .map(|pair| {
            pair[1]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty() && name != "NAME")
        .collect();
    assert!(
        named.len() >= 5,
        "the README should run several examples, found {named:?}"
    );
    let missing: Vec<&String> = named
        .iter()
        .filter(|name| !example_exists(root, name))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md runs examples that do not exist: {missing:?}"
    );
}

/// The overview near the top lists the examples after "`cargo run --release
/// --example NAME`:" as `` `name` (what it shows) ``: each is a file too.
#[test]
fn every_example_the_overview_lists_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    let (_, after) = readme
        .split_once("--example NAME`:")
        .expect("the README's overview lists the examples after `--example NAME`:");
    // The overview is that paragraph: up to the first blank line.
    let overview = after.split("\n\n").next().unwrap_or_default();
    let listed: Vec<&str> = overview
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|name| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    assert!(
        listed.len() >= 5,
        "the overview should list several examples, found {listed:?}"
    );
    let missing: Vec<&&str> = listed
        .iter()
        .filter(|name| !example_exists(root, name))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md's overview lists examples that do not exist: {missing:?}"
    );
}
