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
