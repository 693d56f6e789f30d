#![no_main]
// See hetally_fuzz_targets::report.
libfuzzer_sys::fuzz_target!(
    init: hetally_fuzz_targets::fixtures::warm_up("report"),
    |data: &[u8]| hetally_fuzz_targets::report(data)
);
