#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| memlog_fuzz::rfc3339(data));
