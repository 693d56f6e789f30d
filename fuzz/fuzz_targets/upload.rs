#![no_main]
// See hetally_fuzz_targets::upload.
libfuzzer_sys::fuzz_target!(
    init: hetally_fuzz_targets::fixtures::warm_up("upload"),
    |data: &[u8]| hetally_fuzz_targets::upload(data)
);
