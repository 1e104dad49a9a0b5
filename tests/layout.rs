//! The folder layout shows the architecture only if its modules depend on each other in one
//! direction: no import circles between the modules of `src/controller/` or `src/ghl/`, and
//! the controller's rooms (reconcile, runtime, registry, intake) depend on each other one way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Rust files under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("source folder readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The code of a file without comments (doc links are not dependencies).
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("source readable")
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module path of a file under `src/<folder>` (`reconcile/kinds/policy/mod.rs` is
/// `reconcile::kinds::policy`).
fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod.rs") {
        parts.pop();
    } else if let Some(last) = parts.last_mut() {
        *last = last.trim_end_matches(".rs").to_owned();
    }
    parts
}

/// The module paths a file's code names under `src/<folder>` (by `crate::<folder>::`, and by
/// `super::` relative to the file), cut to the longest prefix that is a module of the folder.
fn uses_of(root: &Path, module: &[String], text: &str, folder: &str) -> BTreeSet<String> {
    let is_module = |path: &[String]| {
        let joined: PathBuf = path.iter().collect();
        !path.is_empty()
            && (root.join(&joined).with_extension("rs").exists()
                || root.join(&joined).join("mod.rs").exists())
    };
    let mut out = BTreeSet::new();
    let mut add = |path: Vec<String>| {
        // The longest prefix that is a module (what follows names an item in it).
        for end in (1..=path.len()).rev() {
            if is_module(&path[..end]) {
                out.insert(path[..end].join("::"));
                return;
            }
        }
    };
    for path in paths_after(text, &format!("crate::{folder}::")) {
        add(path);
    }
    // `super::` from module a::b::c names a::b's children; `super::super::` a's.
    for ups in 1..=module.len() {
        let prefix = "super::".repeat(ups);
        let base = &module[..module.len() - ups];
        for path in paths_after(text, &prefix) {
            if path.first().is_some_and(|p| p == "super") {
                continue;
            }
            add(base.iter().cloned().chain(path).collect());
        }
    }
    out
}

/// The paths (segments) after each occurrence of `prefix`, groups expanded one level.
fn paths_after(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let segments = |s: &str| -> Vec<String> {
        s.split("::")
            .map(|p| {
                p.trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .take_while(|p| !p.is_empty())
            .collect()
    };
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        // Not a longer `super::super::` run of which this is the tail.
        let before = &rest[..at];
        rest = &rest[at + prefix.len()..];
        if before.ends_with("super::") {
            continue;
        }
        let head: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let head = head.trim_end_matches(':');
        let after = &rest[head.len()..];
        let base = segments(head);
        if after.starts_with("::{") || (head.is_empty() && rest.starts_with('{')) {
            let group = after.trim_start_matches("::").trim_start_matches('{');
            let group = if head.is_empty() { &rest[1..] } else { group };
            for item in segments_after_group(group) {
                out.push(base.iter().cloned().chain(segments(&item)).collect());
            }
        } else if !base.is_empty() {
            out.push(base);
        }
    }
    out
}

/// The items of a `{…}` group, split at its own commas (nested groups' first path only).
fn segments_after_group(group: &str) -> Vec<String> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(group[start..i].to_owned());
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(group[start..i].to_owned());
                start = i + 1;
            }
            _ => {}
        }
    }
    items
}

/// Which modules of `src/<folder>` use which others, by module path.
fn dependencies(folder: &str) -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(folder);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&root) {
        let module = module_of(file.strip_prefix(&root).unwrap());
        if module.is_empty() {
            continue;
        }
        let name = module.join("::");
        let mut uses = uses_of(&root, &module, &code(&file), folder);
        // A module's own path and its ancestors (a parent declaring it) are not dependencies.
        uses.retain(|u| !name.starts_with(u.as_str()));
        graph.entry(name).or_default().extend(uses);
    }
    graph
}

/// A cycle in `graph`, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_cycle_finder_finds_cycles_and_the_reader_finds_uses() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.insert("a".into(), ["b".to_owned()].into());
    graph.insert("b".into(), ["c".to_owned()].into());
    graph.insert("c".into(), BTreeSet::new());
    assert_eq!(cycle(&graph), None);
    graph.get_mut("c").unwrap().insert("a".into());
    assert_eq!(
        cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(
        paths_after(
            "use super::{context::Context, error::{Error, Result}};",
            "super::"
        ),
        vec![
            vec!["context".to_owned(), "Context".to_owned()],
            vec!["error".to_owned()]
        ]
    );
    let graph = dependencies("controller");
    let pipeline = &graph["reconcile::pipeline"];
    assert!(pipeline.contains("context"), "{pipeline:?}");
    assert!(pipeline.contains("reconcile::verdict"), "{pipeline:?}");
}

#[test]
fn no_import_circles_in_controller_or_ghl() {
    for folder in ["controller", "ghl"] {
        let graph = dependencies(folder);
        assert!(graph.len() > 5, "{folder}: modules found: {graph:?}");
        if let Some(found) = cycle(&graph) {
            panic!("import circle in src/{folder}: {}", found.join(" → "));
        }
    }
}

/// The controller's rooms by job: nothing that reconciles imports the process that runs it,
/// the kinds stand alone, and the registries and the intake are read by reconciles, never
/// the other way round.
#[test]
fn the_controller_rooms_depend_one_way() {
    let graph = dependencies("controller");
    let room = |module: &str| module.split("::").next().unwrap_or_default().to_owned();
    let mut broken = Vec::new();
    for (module, uses) in &graph {
        for used in uses {
            let forbidden = matches!(
                (room(module).as_str(), room(used).as_str()),
                ("reconcile", "runtime")
                    | ("registry", "reconcile" | "runtime" | "intake" | "context")
                    | ("intake", "reconcile" | "runtime")
            );
            let kinds = "reconcile::kinds::";
            let kind_of = |m: &str| {
                m.strip_prefix(kinds)
                    .map(|rest| rest.split("::").next().unwrap_or_default().to_owned())
            };
            let across_kinds = matches!(
                (kind_of(module), kind_of(used)),
                (Some(a), Some(b)) if a != b
            );
            if forbidden || across_kinds {
                broken.push(format!("{module} → {used}"));
            }
        }
    }
    assert!(broken.is_empty(), "imports against the rooms: {broken:#?}");
    let top: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/controller"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    assert!(
        top.len() <= 8,
        "at most 8 entries at the top of src/controller: {top:?}"
    );
}
