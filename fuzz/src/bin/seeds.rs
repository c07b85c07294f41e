//! Writes every target's built-in seeds into `DIR/<target>/builtin-<n>` (scripts/fuzz.sh adds
//! them to the real-file seeds).
//!
//! Usage: `seeds DIR`.

use std::path::PathBuf;

fn main() {
    let Some(dir) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: seeds DIR");
        std::process::exit(2);
    };
    for (name, _, seeds) in fuzz::targets::ALL {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for (i, s) in seeds().iter().enumerate() {
            let p = d.join(format!("builtin-{i}"));
            std::fs::write(&p, s).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        }
    }
}
