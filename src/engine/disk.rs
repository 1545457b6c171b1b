//! Free space under the run folder, checked before anything starts.
//!
//! A run writes its ledger (every injection, before it happens), its journal, its report and
//! the fleet's logs under `--out`. A disk that fills mid-run is handled (the ledger refuses
//! the next record and the run aborts before injecting it), but that cuts a gameday short
//! that could have been told at the start: "only 3 MiB free". So the runner compares the free
//! space with a generous estimate of what the run will write and refuses to start below it.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// Fixed part of the estimate: the report, the fleet's logs and the ledger's records.
const BASE_BYTES: u64 = 8 << 20;
/// Per planned second: one load window in the run record and one in the journal, each with
/// its encoded histograms (about 1 KiB at 40 req/s, a few KiB at tens of thousands).
const BYTES_PER_SECOND: u64 = 16 << 10;

/// What a run of `total` is expected to write, at most: the threshold below which it refuses
/// to start.
pub fn needed_bytes(total: Duration) -> u64 {
    total
        .as_secs()
        .saturating_add(1)
        .saturating_mul(BYTES_PER_SECOND)
        .saturating_add(BASE_BYTES)
}

/// Bytes an unprivileged writer may still use on the file system holding `path`, or on
/// that of its nearest existing ancestor when `path` does not exist yet (`--out` is created
/// by the run). `statvfs` by hand: `libc` is already a dependency and this is the one call.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or_else(|| Path::new("."));
    let existing = if existing.as_os_str().is_empty() {
        Path::new(".")
    } else {
        existing
    };
    let c = CString::new(existing.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// `Err` with a message a person can act on when the file system under `out` has less free
/// space than a run of `total` needs. A file system that cannot be asked passes: the writes
/// themselves will then say what is wrong.
pub fn check_free_space(out: &Path, total: Duration) -> Result<(), String> {
    let Ok(free) = free_bytes(out) else {
        return Ok(());
    };
    let need = needed_bytes(total);
    if free >= need {
        return Ok(());
    }
    Err(format!(
        "only {} free under {}, and a run of this scenario ({}s) writes up to about {} there \
         (ledger, run record, journal, report, fleet logs)",
        mib(free),
        out.display(),
        total.as_secs(),
        mib(need)
    ))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_grows_with_the_run() {
        assert_eq!(needed_bytes(Duration::ZERO), (8 << 20) + (16 << 10));
        let hour = needed_bytes(Duration::from_secs(3600));
        assert!(hour > 60 << 20 && hour < 70 << 20, "{hour}");
    }

    #[test]
    fn a_folder_not_made_yet_is_measured_on_its_parent() {
        let dir = tempfile::tempdir().unwrap();
        let later = dir.path().join("reports/2026");
        let (a, b) = (free_bytes(&later).unwrap(), free_bytes(dir.path()).unwrap());
        assert!(a > 0 && a.abs_diff(b) < 64 << 20, "{a} vs {b}");
        assert!(check_free_space(&later, Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn a_run_longer_than_the_disk_can_hold_is_refused_with_the_figures() {
        let dir = tempfile::tempdir().unwrap();
        let years = Duration::from_secs(1 << 40);
        let e = check_free_space(dir.path(), years).unwrap_err();
        assert!(e.starts_with("only "), "{e}");
        assert!(e.contains(&dir.path().display().to_string()), "{e}");
        assert!(e.contains("writes up to about"), "{e}");
    }
}
