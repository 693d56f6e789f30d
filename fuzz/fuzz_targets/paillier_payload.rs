#![no_main]
// See hetally_fuzz_targets::paillier_payload.
libfuzzer_sys::fuzz_target!(
    init: hetally_fuzz_targets::fixtures::warm_up("paillier_payload"),
    |data: &[u8]| hetally_fuzz_targets::paillier_payload(data)
);
