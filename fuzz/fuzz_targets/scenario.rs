//! Fuzz target: any bytes through the scenario reader (all three passes) and, when they make
//! a valid scenario, through the planner. Nothing here may panic, hang or allocate without
//! bound: the reader's limits (`MAX_FILE_BYTES`, `yaml::MAX_NODES`, `yaml::MAX_DEPTH`,
//! serde-saphyr's budget, `MAX_DIAGNOSTICS`) are what keep it so.
//!
//! Run (from the repository root): `cargo +nightly fuzz run scenario fuzz/corpus/scenario fuzz/seeds/scenario -- -max_total_time=60 -rss_limit_mb=512`
//! (libFuzzer grows the first folder, which git ignores; `fuzz/seeds/` holds the checked-in seeds).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match gameday::scenario::load_str("fuzz.yaml", src) {
        Ok(loaded) => {
            let plan = gameday::engine::plan::Plan::new(&loaded.scenario);
            let _ = serde_json::to_string(&plan);
        }
        Err(diagnostics) => {
            // Rendering is part of the contract: excerpts and escapes must not panic either.
            let _ = diagnostics.to_string();
        }
    }
});
