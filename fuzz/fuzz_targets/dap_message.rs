#![no_main]
// See hetally_fuzz_targets::dap_message.
libfuzzer_sys::fuzz_target!(
    init: hetally_fuzz_targets::fixtures::warm_up("dap_message"),
    |data: &[u8]| hetally_fuzz_targets::dap_message(data)
);
