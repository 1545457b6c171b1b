//! Helpers for the hardening tests (`hostile`, `self_faults`, `security`): a fleet scenario
//! marked so its processes can be found, waiting with a bound, and a throwaway tmpfs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Writes `dir/scenario.yaml`: a local fleet of `python3 -m http.server` replicas serving
/// the folder `dir/<marker>` (so `pids_with(marker)` finds exactly them), `service_extra`
/// appended to the service (indented 8 spaces), `top_extra` before `phases:`.
pub fn fleet_scenario(
    dir: &Path,
    marker: &str,
    service_extra: &str,
    top_extra: &str,
    phases: &str,
) -> PathBuf {
    let www = dir.join(marker);
    std::fs::create_dir_all(&www).unwrap();
    let text = format!(
        r#"apiVersion: gameday/v1
kind: Gameday
metadata:
  name: harden
target:
  local:
    max_percent: 50
    services:
      - name: web
        command: [python3, -m, http.server, --bind, 127.0.0.1, --directory, "{www}", "$PORT"]
        replicas: 2
        health: /
{service_extra}{top_extra}phases:
{phases}"#,
        www = www.display()
    );
    let p = dir.join("scenario.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Polls `f` every 100 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// Waits for a child with a bound; kills it and panics if it does not exit in time.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<i32> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("gameday did not exit within {timeout:?}");
}

/// Every `ledger.jsonl` under a `--out` folder.
pub fn ledgers(out: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(out)
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("ledger.jsonl"))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}

/// A tmpfs mounted for one test, unmounted on drop (also when the test panics).
pub struct Tmpfs {
    /// Where it is mounted.
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`64k`) at `path`; `None` when this process may not mount
    /// (not root, or no CAP_SYS_ADMIN), so the caller can take its fallback.
    pub fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).ok()?;
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .ok()?
            .status
            .success();
        ok.then(|| Tmpfs {
            path: path.to_path_buf(),
        })
    }

    /// Fills it with one file until the disk is full; returns the bytes written.
    pub fn fill(&self) -> u64 {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path.join("filler")).unwrap();
        let block = [0u8; 4096];
        let mut n = 0u64;
        // Bounded: a 64k tmpfs is full after 16 blocks; the cap guards a mount that is not.
        for _ in 0..100_000 {
            match f.write(&block) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k as u64,
            }
        }
        // Then byte by byte, to the last one.
        for _ in 0..4096 {
            match f.write(&block[..1]) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k as u64,
            }
        }
        let _ = f.sync_all();
        n
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
