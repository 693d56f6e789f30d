#![no_main]
// See hetally_fuzz_targets::json_body.
libfuzzer_sys::fuzz_target!(
    init: hetally_fuzz_targets::fixtures::warm_up("json_body"),
    |data: &[u8]| hetally_fuzz_targets::json_body(data)
);
