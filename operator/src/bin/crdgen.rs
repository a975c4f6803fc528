//! `crdgen [DIR...]`: writes the CustomResourceDefinitions generated from the Rust types, one
//! file per resource, into each DIR (default: `crds/` and the chart's `charts/weir/crds/`).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut dirs: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if dirs.is_empty() {
        dirs = weir_operator::crd::OUTPUT_DIRS
            .iter()
            .map(PathBuf::from)
            .collect();
    }
    for dir in dirs {
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("crdgen: cannot create {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        for (file, crd) in weir_operator::crd::definitions() {
            let path = dir.join(file);
            let written = weir_operator::crd::to_yaml(&crd)
                .map_err(|e| e.to_string())
                .and_then(|yaml| std::fs::write(&path, yaml).map_err(|e| e.to_string()));
            if let Err(e) = written {
                eprintln!("crdgen: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            println!("wrote {}", path.display());
        }
    }
    ExitCode::SUCCESS
}
