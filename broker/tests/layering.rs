//! The broker's layers, checked: imports inside `broker/src` point one way, top to bottom
//! (ARCHITECTURE.md, "Layers inside the broker"). A module may use its own layer and the
//! layers below it; a `crate::` path that names a module of a layer above fails this test
//! with the file and line.
//!
//! What counts as an import is every `crate::<module>` path outside comments, including the
//! names inside `use crate::{..}` groups. Test code is left out: the files `tests.rs`,
//! `*_tests.rs`, `test_support.rs`, `test_util.rs` and inline `#[cfg(test)] mod .. { }`
//! blocks, because a unit test may assemble the whole broker (`app::open`) to drive the
//! layer it tests.
//!
//! `cargo test -p weir-broker --test layering -- --nocapture` prints the module graph, the
//! cycles in it (strongly connected components) and the upward imports.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, top first. Modules in one row are one layer and may use each other.
const LAYERS: &[&[&str]] = &[
    // The composition root: listeners, clock, shutdown, gRPC services, metric collectors.
    &["app", "cli"],
    // Background duty of the running broker: registration and heartbeats.
    &["lifecycle"],
    // The client listener, and the HTTP listener for metrics and health.
    &["server", "http"],
    &["handlers"],
    // Listener security: TLS, SASL, principals (used by the server and handlers).
    &["security"],
    &["admin_service"],
    // Shared state, and the metrics read from it.
    &[
        "broker",
        "metrics",
        "quota",
        "connection_quotas",
        "replication_metrics",
        "cleaner_metrics",
    ],
    // Coordinators.
    &["group", "transactions", "producer_ids", "share"],
    // Unit-test fixtures (a replica manager over a one-node controller).
    &["test_support"],
    &["replica_manager", "legacy_catalogue"],
    // Fetcher, throttle, replica fetch client.
    &["replication"],
    // A partition, its leader side included.
    &["partition"],
    // Metadata quorum and image.
    &["controller"],
    &[
        "log",
        "config",
        "protocol",
        // The fetch session cache (pure state; the handlers and the follower fetcher use it).
        "fetch_session",
        "clock",
        "telemetry",
        "volume_metrics",
    ],
];

/// One `crate::` reference in a source file.
struct Import {
    file: PathBuf,
    line: usize,
    from: String,
    to: String,
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|row| row.contains(&module))
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `handlers/fetch.rs` is `handlers`,
/// `partition_tests.rs` (included by `partition.rs`) is `partition`.
fn module_of(relative: &Path) -> String {
    let first = relative
        .components()
        .next()
        .expect("a file below src")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    let stem = first.strip_suffix(".rs").unwrap_or(&first);
    stem.strip_suffix("_tests").unwrap_or(stem).to_string()
}

fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name == "tests.rs"
        || name.ends_with("_tests.rs")
        || name == "test_support.rs"
        || name == "test_util.rs"
}

/// The source with comments blanked and inline `#[cfg(test)] mod x { .. }` blocks removed,
/// line numbers kept.
fn code_lines(source: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut skip_depth: Option<i64> = None;
    let mut cfg_test_pending = false;
    let mut in_block_comment = false;
    for raw in source.lines() {
        let mut line = raw.to_string();
        if in_block_comment {
            match line.find("*/") {
                Some(end) => {
                    line = line[end + 2..].to_string();
                    in_block_comment = false;
                }
                None => {
                    lines.push(String::new());
                    continue;
                }
            }
        }
        if let Some(start) = line.find("/*") {
            if let Some(end) = line[start..].find("*/") {
                line.replace_range(start..start + end + 2, "");
            } else {
                line.truncate(start);
                in_block_comment = true;
            }
        }
        if let Some(comment) = line.find("//") {
            line.truncate(comment);
        }
        let trimmed = line.trim();
        if let Some(depth) = skip_depth.as_mut() {
            *depth += brace_balance(&line);
            if *depth <= 0 {
                skip_depth = None;
            }
            lines.push(String::new());
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") {
            cfg_test_pending = true;
        } else if cfg_test_pending && !trimmed.is_empty() && !trimmed.starts_with("#[") {
            cfg_test_pending = false;
            let is_mod = trimmed.starts_with("mod ") || trimmed.starts_with("pub mod ");
            if is_mod && trimmed.contains('{') {
                let depth = brace_balance(&line);
                if depth > 0 {
                    skip_depth = Some(depth);
                }
                lines.push(String::new());
                continue;
            }
        }
        lines.push(line);
    }
    lines
}

fn brace_balance(line: &str) -> i64 {
    line.chars().fold(0, |depth, c| match c {
        '{' => depth + 1,
        '}' => depth - 1,
        _ => depth,
    })
}

fn identifier_at(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The top-level modules a `use crate::{..}` group names, from the text after `crate::{`
/// (possibly spanning lines): the first name of each comma-separated item at depth one.
fn group_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 1;
    let mut expect_name = true;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if expect_name && (c.is_ascii_alphabetic() || c == '_') && depth == 1 {
            let name = identifier_at(rest);
            names.push(name.to_string());
            rest = &rest[name.len()..];
            expect_name = false;
            continue;
        }
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => expect_name = true,
            _ => {}
        }
        rest = &rest[c.len_utf8()..];
    }
    names
}

fn imports() -> Vec<Import> {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("below src").to_path_buf();
        let from = module_of(&relative);
        if from == "lib" || from == "main" || is_test_file(&file) {
            continue;
        }
        let source = fs::read_to_string(&file).expect("readable source");
        let lines = code_lines(&source);
        let joined: Vec<(usize, &str)> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| (i + 1, l.as_str()))
            .collect();
        for (index, &(number, line)) in joined.iter().enumerate() {
            let mut rest = line;
            while let Some(at) = rest.find("crate::") {
                let preceded_by_ident = rest[..at]
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
                rest = &rest[at + "crate::".len()..];
                if preceded_by_ident {
                    continue;
                }
                let targets = if let Some(group) = rest.strip_prefix('{') {
                    let following: String = std::iter::once(group)
                        .chain(joined[index + 1..].iter().map(|&(_, l)| l))
                        .collect::<Vec<_>>()
                        .join("\n");
                    group_names(&following)
                } else {
                    vec![identifier_at(rest).to_string()]
                };
                for to in targets {
                    if !to.is_empty() && to != from {
                        found.push(Import {
                            file: Path::new("broker/src").join(&relative),
                            line: number,
                            from: from.clone(),
                            to,
                        });
                    }
                }
            }
        }
    }
    found
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.out
}

#[test]
fn every_module_has_a_layer() {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let unplaced: BTreeSet<String> = files
        .iter()
        .map(|file| module_of(file.strip_prefix(&src).expect("below src")))
        .filter(|module| module != "lib" && module != "main" && layer_of(module).is_none())
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules with no row in LAYERS (broker/tests/layering.rs): {unplaced:?}"
    );
}

#[test]
fn imports_point_down_the_layers() {
    let imports = imports();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut upward = Vec::new();
    for import in &imports {
        graph
            .entry(import.from.clone())
            .or_default()
            .insert(import.to.clone());
        if let (Some(from), Some(to)) = (layer_of(&import.from), layer_of(&import.to)) {
            if to < from {
                upward.push(format!(
                    "{}:{}: `{}` imports `crate::{}`, a layer above it",
                    import.file.display(),
                    import.line,
                    import.from,
                    import.to
                ));
            }
        }
    }
    println!("module graph (test code left out):");
    for (from, to) in &graph {
        let to: Vec<_> = to.iter().map(String::as_str).collect();
        println!("  {from} -> {}", to.join(", "));
    }
    let cycles = cycles(&graph);
    println!("cycles: {}", cycles.len());
    for cycle in &cycles {
        println!("  {}", cycle.join(" <-> "));
    }
    println!("upward imports: {}", upward.len());
    for line in &upward {
        println!("  {line}");
    }
    assert!(
        upward.is_empty(),
        "imports against the layering (ARCHITECTURE.md, \"Layers inside the broker\"):\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_checker_sees_grouped_and_inline_paths() {
    assert_eq!(
        group_names("log::{Log, LogError}, clock::Clock,\n handlers::x};"),
        vec!["log", "clock", "handlers"]
    );
    let lines = code_lines(
        "use a; // crate::handlers\n#[cfg(test)]\nmod tests {\n    use crate::app;\n}\nuse crate::log;",
    );
    assert!(lines.iter().all(|l| !l.contains("handlers")));
    assert!(lines.iter().all(|l| !l.contains("app")));
    assert_eq!(lines[5], "use crate::log;");
}
