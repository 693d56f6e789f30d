#![no_main]
// See hetally_fuzz_targets::key_file.
libfuzzer_sys::fuzz_target!(
    init: hetally_fuzz_targets::fixtures::warm_up("key_file"),
    |data: &[u8]| hetally_fuzz_targets::key_file(data)
);
