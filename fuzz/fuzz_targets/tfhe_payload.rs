#![no_main]
// See hetally_fuzz_targets::tfhe_payload.
libfuzzer_sys::fuzz_target!(
    init: hetally_fuzz_targets::fixtures::warm_up("tfhe_payload"),
    |data: &[u8]| hetally_fuzz_targets::tfhe_payload(data)
);
