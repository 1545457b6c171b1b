//! `gameday validate FILE...`: every problem of every file, at once. Touches no target.

use std::path::PathBuf;

use super::EXIT_INVALID;
use crate::scenario;

/// Validates each file; prints `FILE: ok` or its problems. Exit 0 when all are valid, 2
/// otherwise.
pub fn run(files: &[PathBuf]) -> i32 {
    let mut bad = 0;
    for f in files {
        match scenario::load(f) {
            Ok(l) => {
                println!(
                    "{}: ok ({} phases, {} faults)",
                    f.display(),
                    l.scenario.phases.len(),
                    l.scenario
                        .phases
                        .iter()
                        .map(|p| p.faults.len())
                        .sum::<usize>()
                );
                if let Some(note) = l.scenario.load.as_ref().and_then(|s| s.model_note()) {
                    println!("  note: {note}");
                }
            }
            Err(d) => {
                bad += 1;
                eprintln!("{d}");
            }
        }
    }
    if bad > 0 {
        EXIT_INVALID
    } else {
        0
    }
}
