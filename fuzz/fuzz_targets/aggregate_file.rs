#![no_main]
// See hetally_fuzz_targets::aggregate_file.
libfuzzer_sys::fuzz_target!(
    init: hetally_fuzz_targets::fixtures::warm_up("aggregate_file"),
    |data: &[u8]| hetally_fuzz_targets::aggregate_file(data)
);
