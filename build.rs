//! Embeds every report catalogue (`pipeline/stages/report/templates/lang/<language>.toml`) in
//! the binary, so that a new language is a new file in that folder and nothing else.

use std::path::Path;

fn main() {
    let dir = Path::new("pipeline/stages/report/templates/lang");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut entries: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("the report catalogue folder exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let lang = p.file_stem().unwrap().to_string_lossy().into_owned();
            let abs = std::fs::canonicalize(&p).expect("a catalogue path");
            (lang, abs.to_string_lossy().into_owned())
        })
        .collect();
    entries.sort();
    let mut code = String::from("/// The built-in catalogues: (language, TOML text).\n");
    code.push_str("pub const BUILTIN: &[(&str, &str)] = &[\n");
    for (lang, path) in &entries {
        println!("cargo:rerun-if-changed={path}");
        code.push_str(&format!("    ({lang:?}, include_str!({path:?})),\n"));
    }
    code.push_str("];\n");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out).join("catalogues.rs"), code).expect("OUT_DIR is writable");
}
