//! The layering `lib.rs` describes, checked on the source: a module uses
//! only modules of the layers above it (or of its own layer), leaves use
//! nothing of the crate, and front doors never use each other. A new module
//! must be given its layer here and in `lib.rs`.

use std::{collections::BTreeSet, fs, path::Path};

/// The layers, top (imported by everything below) to bottom.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaves",
        &[
            "clock",
            "connection",
            "identity",
            "metrics",
            "path",
            "settings",
            "tls",
            "token",
        ],
    ),
    (
        "domain",
        &[
            "access_rules",
            "cache",
            "keystone",
            "local",
            "oauth2",
            "policy",
            "request_id",
            "revocation",
            "routes",
            "shared_cache",
            "trace",
        ],
    ),
    ("core", &["validator"]),
    (
        "edge",
        &["audit", "gate", "headers", "rejection", "session"],
    ),
    ("front doors", &["forward_auth", "kube", "layer", "proxy"]),
    ("assembly", &["config", "stack"]),
    ("process", &["server"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

/// The crate modules `code` names (`crate::x`, `crate::{x, y::z}`),
/// comments left out.
fn crate_uses(code: &str) -> BTreeSet<String> {
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut uses = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            uses.insert(ident(rest));
            continue;
        };
        let (mut depth, mut start) = (0usize, 0usize);
        for (j, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    uses.insert(ident(&group[start..j]));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    uses.insert(ident(&group[start..j]));
                    start = j + 1;
                }
                _ => {}
            }
        }
    }
    uses.remove("");
    uses.remove("self");
    uses
}

/// Every non-test source file under `dir`, with its top-level module.
fn sources(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(root, &path, out);
            continue;
        }
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let name = path.file_name().unwrap().to_string_lossy();
        if !rel.ends_with(".rs") || name == "tests.rs" || rel == "lib.rs" || rel == "main.rs" {
            continue;
        }
        let module = rel.split('/').next().unwrap().trim_end_matches(".rs");
        let text = fs::read_to_string(&path).unwrap();
        // Test modules come last in a file; what follows may use anything.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        out.push((module.to_owned(), code.to_owned()));
    }
}

#[test]
fn modules_use_only_the_layers_above_them_and_doors_never_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    assert!(files.len() > 40, "the source tree was not found");
    let mut wrong = Vec::new();
    for (module, code) in &files {
        let Some(own) = layer_of(module) else {
            wrong.push(format!(
                "module `{module}` has no layer: add it to LAYERS in src/tests.rs and to lib.rs"
            ));
            continue;
        };
        for used in crate_uses(code) {
            if &used == module {
                continue;
            }
            let Some(theirs) = layer_of(&used) else {
                wrong.push(format!("`{module}` uses `{used}`, which has no layer"));
                continue;
            };
            let (name, _) = LAYERS[own];
            let allowed =
                theirs < own || (theirs == own && !matches!(name, "leaves" | "front doors"));
            if !allowed {
                wrong.push(format!(
                    "`{module}` ({name}) uses `{used}` ({})",
                    LAYERS[theirs].0
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_import_reader_sees_grouped_and_nested_uses() {
    let uses = crate_uses(
        "use crate::{a::b, c::{d, e}, f};\n// crate::commented\nlet x = crate::g::h();\n",
    );
    let names: Vec<&str> = uses.iter().map(String::as_str).collect();
    assert_eq!(names, ["a", "c", "f", "g"]);
}
