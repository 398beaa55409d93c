//! README's snippets are the demo app's code: each fenced block after a `<!-- from: path -->`
//! marker must appear, line by line and in order, in that file.
use std::path::Path;

#[test]
fn readme_snippets_match_the_code_they_quote() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut checked = 0;
    let mut rest = readme.as_str();
    while let Some(at) = rest.find("<!-- from: ") {
        rest = &rest[at + "<!-- from: ".len()..];
        let path = &rest[..rest.find(" -->").unwrap()];
        let fence = rest.find("```").unwrap();
        let body_start = fence + rest[fence..].find('\n').unwrap() + 1;
        let body_end = body_start + rest[body_start..].find("```").unwrap();
        let snippet = &rest[body_start..body_end];
        let source = std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        let lines: Vec<&str> = source.lines().collect();
        let wanted: Vec<&str> = snippet.lines().collect();
        let found = lines.windows(wanted.len()).any(|w| w == wanted.as_slice());
        assert!(
            found,
            "README quotes {path} but the file no longer has:\n{snippet}"
        );
        checked += 1;
        rest = &rest[body_end..];
    }
    assert!(checked >= 8, "only {checked} snippets found");
}
