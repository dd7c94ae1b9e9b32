#![no_main]

include!("../harness.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fuzz_ike_sk_open(data);
});
