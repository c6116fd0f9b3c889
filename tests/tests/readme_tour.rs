//! The README's API tour is a script: run it against a real `cairnd` and check that every
//! step printed what the README says it prints (the `# ...` line after each command, with
//! `...` standing for elided text).

use cairn_tests::*;

/// The `sh` block under "## API tour".
fn tour() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let section = readme.split("## API tour").nth(1).expect("an API tour section");
    let block = section.split("```sh\n").nth(1).expect("a sh block");
    block.split("\n```").next().expect("the end of the block").to_string()
}

/// The expected-output comments: `# {...}`, `# 204` and the like (not prose comments).
fn expectations(script: &str) -> Vec<String> {
    script
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.starts_with('{') || l.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .collect()
}

/// Whether `line` matches `pattern`, where `...` in the pattern stands for any text.
fn matches(pattern: &str, line: &str) -> bool {
    let mut rest = line;
    let parts: Vec<&str> = pattern.split("...").collect();
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        match rest.find(part) {
            Some(at) if i > 0 || at == 0 => rest = &rest[at + part.len()..],
            _ => return false,
        }
    }
    parts.last().is_some_and(|p| p.is_empty()) || rest.is_empty()
}

#[tokio::test]
async fn the_readme_api_tour_runs_and_prints_what_it_says() {
    let script = tour();
    let s = Cairnd::start().await;
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!("set -e\n{script}"))
        .env("CAIRN", s.base_url())
        .output()
        .await
        .expect("run bash (and curl)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "tour failed: {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let printed: Vec<&str> = stdout.lines().collect();
    let mut from = 0;
    for expected in expectations(&script) {
        // A line ending in `,` continues on the next comment line: a prefix.
        let pattern = match expected.strip_suffix(',') {
            Some(prefix) => format!("{prefix}..."),
            None => expected.clone(),
        };
        match printed[from..].iter().position(|l| matches(&pattern, l)) {
            Some(i) => from += i + 1,
            None => panic!("no output line after line {from} matches `{expected}`:\n{stdout}"),
        }
    }
}

#[test]
fn pattern_matching() {
    assert!(matches(r#"{"a":1,...}"#, r#"{"a":1,"b":2}"#));
    assert!(matches(r#"{"a":...,"c":3}"#, r#"{"a":1,"b":2,"c":3}"#));
    assert!(!matches(r#"{"a":1}"#, r#"{"a":2}"#));
    assert!(matches("204", "204"));
    assert!(!matches("204", "404"));
}
