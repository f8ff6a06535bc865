#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| memlog_fuzz::relp_frame(data));
