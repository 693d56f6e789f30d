//! Replays every fuzz corpus as an ordinary test: each file the fuzzer kept
//! under `fuzz/corpus/<target>/` (seeds, inputs that found new coverage,
//! and any input that once crashed a target) runs through its target
//! again, so that CI fails if one of them breaks again. A target without a
//! corpus directory, or with an empty one, fails: the corpora are part of
//! the repository.

use std::path::{Path, PathBuf};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus")
        .join(target)
}

fn replay(target: &str) {
    let run = hetally_fuzz_targets::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, run)| *run)
        .unwrap_or_else(|| panic!("no target {target}"));
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    for file in &files {
        let data = std::fs::read(file).expect("corpus file");
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target} panicked on {}", file.display());
    }
    eprintln!("{target}: replayed {} inputs", files.len());
}

macro_rules! replay_tests {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target));
            }
        )*

        /// Every target has a replay test above.
        #[test]
        fn every_target_is_replayed() {
            let tested = [$(stringify!($target)),*];
            for (name, _) in hetally_fuzz_targets::TARGETS {
                assert!(tested.contains(name), "target {name} has no replay test");
            }
        }
    };
}

replay_tests!(
    report,
    paillier_payload,
    tfhe_payload,
    task_definition,
    key_file,
    aggregate_file,
    dap_message,
    json_body,
    upload,
);
