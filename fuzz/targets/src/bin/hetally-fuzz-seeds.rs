//! Writes the fuzz targets' seed corpora: `hetally-fuzz-seeds DIR` writes
//! `DIR/<target>/seed-<n>` for every target (`fuzz/corpus` in the
//! repository). Existing seeds are overwritten; other corpus files stay.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: hetally-fuzz-seeds CORPUS_DIR   (the repository's is fuzz/corpus)");
        return ExitCode::from(2);
    };
    for (target, seeds) in hetally_fuzz_targets::seeds::seeds() {
        let target_dir = dir.join(target);
        if let Err(e) = std::fs::create_dir_all(&target_dir) {
            eprintln!("cannot create {}: {e}", target_dir.display());
            return ExitCode::FAILURE;
        }
        for (n, seed) in seeds.iter().enumerate() {
            let path = target_dir.join(format!("seed-{n}"));
            if let Err(e) = std::fs::write(&path, seed) {
                eprintln!("cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
        println!("{target}: {} seeds", seeds.len());
    }
    ExitCode::SUCCESS
}
