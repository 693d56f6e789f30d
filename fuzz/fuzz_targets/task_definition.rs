#![no_main]
// See hetally_fuzz_targets::task_definition.
libfuzzer_sys::fuzz_target!(
    init: hetally_fuzz_targets::fixtures::warm_up("task_definition"),
    |data: &[u8]| hetally_fuzz_targets::task_definition(data)
);
