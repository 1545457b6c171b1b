//! Hostile scenario files: each one ends in a clear error, with bounded output, before
//! anything runs (no run folder, no process). Plus a seeded mutation run through the reader,
//! the stable stand-in for the `cargo fuzz` target in `fuzz/` (which needs nightly).
//!
//! Time and memory are bounded by limits in the reader (`MAX_FILE_BYTES`, `yaml::MAX_NODES`,
//! `yaml::MAX_DEPTH`, serde-saphyr's budget, `MAX_DIAGNOSTICS`), not asserted as timings here;
//! `scripts/hostile-bench.sh` measures them.

use std::path::{Path, PathBuf};

use gameday::scenario::{self, MAX_FILE_BYTES};
use rand::{Rng, SeedableRng};

use crate::support::{cmd, pids_with, text};

/// A valid scenario whose fleet is marked by a folder named `marker`, so a test can tell
/// whether any of its processes ever started.
fn base(marker_dir: &Path) -> String {
    format!(
        r#"apiVersion: gameday/v1
kind: Gameday
metadata:
  name: hostile
  owner: sre
target:
  local:
    max_percent: 50
    services:
      - name: web
        command: [python3, -m, http.server, --bind, 127.0.0.1, --directory, "{}", "$PORT"]
        replicas: 2
        health: /
phases:
  - name: baseline
    duration: 2s
  - name: chaos
    duration: 4s
    faults:
      - name: kill-one
        at: 1s
        process_kill: {{ service: web, count: 1 }}
"#,
        marker_dir.display()
    )
}

/// The head of [`base`] up to `phases:`, to append other timelines to.
fn head(marker_dir: &Path) -> String {
    let b = base(marker_dir);
    b[..b.find("phases:\n").unwrap()].to_string()
}

/// A billion-laughs document: 10 levels of 9 aliases each (9^10 leaves if expanded).
fn alias_bomb() -> String {
    let mut s = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        s.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    s
}

/// One hostile input: its name, its bytes, and words the error must contain.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    expect: &'static str,
}

fn catalog(m: &Path) -> Vec<Case> {
    let b = base(m);
    let h = head(m);
    let case = |name, s: String, expect| Case {
        name,
        bytes: s.into_bytes(),
        expect,
    };
    let mut v = vec![
        // Truncated inside a flow mapping.
        case(
            "truncated",
            b[..b.find("service: web, count").unwrap()].to_string(),
            "invalid YAML",
        ),
        // Aliases are not expanded by the reader's tree; the bomb's unknown keys are refused.
        case(
            "alias-bomb",
            format!("{b}{}", alias_bomb()),
            "unknown field `a9`",
        ),
        // An alias bomb hidden under a field that takes a list of strings.
        case(
            "alias-bomb-in-tags",
            b.replace(
                "  owner: sre\n",
                &format!(
                    "  owner: sre\n  tags: [{}]\n",
                    alias_bomb()
                        .lines()
                        .map(|l| l.split_once(": ").unwrap().1)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            "expected a string, found a list",
        ),
        case(
            "huge-replicas",
            b.replace("replicas: 2", "replicas: 4000000000"),
            "the local fleet is limited to 1000 processes",
        ),
        case(
            "huge-integer",
            b.replace("count: 1", &format!("count: {}", "9".repeat(100_000))),
            "is too large",
        ),
        case(
            "huge-duration",
            b.replace("duration: 4s", "duration: 5000000000000000h"),
            "durations are limited to",
        ),
        case(
            "week-long-timeline",
            b.replace("duration: 4s", "duration: 900000000s")
                .replace("at: 1s", "at: 500000000s"),
            "a gameday is limited to",
        ),
        case(
            "infinite-percent",
            b.replace("max_percent: 50", "max_percent: 1e400"),
            "max_percent",
        ),
        case(
            "nan-percent",
            b.replace("max_percent: 50", "max_percent: .nan"),
            "max_percent",
        ),
        case(
            "kill-every-nanosecond",
            b.replace("at: 1s", "at: 1s\n        every: 1ns"),
            "the minimum is 100ms",
        ),
        case(
            "crash-loop-backoff",
            b.replace("health: /", "health: /\n        backoff: 1ns"),
            "below the minimum 10ms",
        ),
        case(
            "100k-phases",
            format!(
                "{h}phases:\n{}",
                (0..100_000)
                    .map(|i| format!("  - name: p{i}\n    duration: 1s\n"))
                    .collect::<String>()
            ),
            "YAML nodes",
        ),
        // Many faults at once on the same replicas: the overlap check is a sorted sweep,
        // and the report stops after `MAX_DIAGNOSTICS`.
        case(
            "13k-overlapping-faults",
            format!(
                "{h}phases:\n  - name: chaos\n    duration: 1000s\n    faults:\n{}",
                (0..13_000)
                    .map(|i| format!(
                        "      - {{at: {}s, process_kill: {{ service: web }}}}\n",
                        i % 100
                    ))
                    .collect::<String>()
            ),
            "more problems not shown",
        ),
        case(
            "deep-nesting",
            format!("{b}x: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
            "invalid YAML",
        ),
        case(
            "long-line",
            format!("{b}{}: 1\n", "k".repeat(3_000_000)),
            "invalid YAML",
        ),
        case(
            "second-document",
            format!("{b}---\n{b}"),
            "a second YAML document",
        ),
        case(
            "duplicate-key",
            b.replace("kind: Gameday", "kind: Gameday\nkind: Gameday"),
            "duplicate mapping key",
        ),
        case(
            "merge-key",
            b.replace("metadata:\n", "metadata:\n  <<: {name: x}\n"),
            "unknown field `<<`",
        ),
        case(
            "binary-tag",
            b.replace("replicas: 2", "replicas: !!binary AAAA"),
            "replicas",
        ),
        case(
            "tabs",
            b.replace("    services:", "\tservices:"),
            "invalid YAML",
        ),
        case("empty", String::new(), "missing field `apiVersion`"),
        case("nul-bytes", "\0".repeat(1000), "invalid YAML"),
        case(
            "unknown-fault-kind",
            b.replace(
                "process_kill: { service: web, count: 1 }",
                "disk_fill: { path: / }",
            ),
            "unknown field `disk_fill`",
        ),
        case(
            "unknown-kind",
            b.replace("kind: Gameday", "kind: Gamedya"),
            "unsupported kind `Gamedya`",
        ),
        case(
            "unknown-api-version",
            b.replace("gameday/v1", "gameday/v2"),
            "unsupported apiVersion",
        ),
        // Odd unicode: a right-to-left override and a NUL in a name are refused and printed
        // escaped; a Cyrillic `е` that looks like `e` does not match the service.
        case(
            "bidi-override",
            b.replace("name: kill-one", "name: \"kill\u{202e}eno\""),
            "unprintable character",
        ),
        case(
            "terminal-escape",
            b.replace("name: kill-one", "name: \"kill\\e]0;pwned\\a\""),
            "unprintable character",
        ),
        case(
            "homoglyph-service",
            b.replace("- name: web", "- name: w\u{435}b"),
            "service name `w\u{435}b` must be",
        ),
        case(
            "zero-width-name",
            b.replace("name: hostile", "name: \"host\u{200b}ile\""),
            "metadata.name",
        ),
        case(
            "path-traversal-service",
            b.replace("- name: web", "- name: ../../../../tmp/gameday-pwn")
                .replace("service: web", "service: ../../../../tmp/gameday-pwn"),
            "names log files",
        ),
    ];
    let mut bad_utf8 = b.clone().into_bytes();
    bad_utf8.extend_from_slice(b"# \xff\xfe\n");
    v.push(Case {
        name: "invalid-utf8",
        bytes: bad_utf8,
        expect: "not UTF-8",
    });
    v
}

/// Every catalog entry through `gameday run`: exit 2, a clear message, bounded output, no
/// run folder, no fleet process.
#[test]
fn every_hostile_file_ends_in_a_clear_error_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("hostile-{}", std::process::id());
    let m = dir.path().join(&marker);
    std::fs::create_dir_all(&m).unwrap();
    let out = dir.path().join("reports");
    let mut failures = Vec::new();
    for c in catalog(&m) {
        let f = dir.path().join(format!("{}.yaml", c.name));
        std::fs::write(&f, &c.bytes).unwrap();
        let o = cmd()
            .args(["run", f.to_str().unwrap(), "--no-progress", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        let t = text(&o);
        if o.status.code() != Some(2) || !t.contains(c.expect) {
            failures.push(format!(
                "{}: exit {:?}, expected `{}` in:\n{}",
                c.name,
                o.status.code(),
                c.expect,
                &t[..t.len().min(2000)]
            ));
        }
        // Bounded output: a message per problem, at most `MAX_DIAGNOSTICS`, each cut short.
        if t.len() > 128 * 1024 {
            failures.push(format!("{}: {} bytes of output", c.name, t.len()));
        }
        // Nothing reaches the terminal raw.
        if t.contains('\u{1b}') || t.contains('\u{202e}') || t.contains('\0') {
            failures.push(format!(
                "{}: a control character reached the output",
                c.name
            ));
        }
        assert!(!out.exists(), "{}: a run folder was created", c.name);
        assert!(pids_with(&marker).is_empty(), "{}: a process ran", c.name);
    }
    assert!(!Path::new("/tmp/gameday-pwn.log").exists());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A file far over the limit is refused from its size alone, before it is read.
#[test]
fn a_50_mb_file_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big.yaml");
    let file = std::fs::File::create(&f).unwrap();
    file.set_len(50 * 1024 * 1024).unwrap(); // sparse: 50 MB of NULs, no disk used
    drop(file);
    let out = dir.path().join("reports");
    let o = cmd()
        .args(["run", f.to_str().unwrap(), "--no-progress", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "file is 52428800 bytes; scenarios are limited to {MAX_FILE_BYTES} bytes"
        )),
        "{}",
        text(&o)
    );
    assert!(!out.exists());
    // The in-memory entry point has the same limit.
    let big = "#".repeat(MAX_FILE_BYTES + 1);
    let e = scenario::load_str("big.yaml", &big).unwrap_err();
    assert!(e.to_string().contains("the limit is"), "{e}");
}

/// serde-saphyr is the second line of defence against alias bombs (the reader's own tree
/// never expands aliases): its default budget must refuse a billion laughs outright.
#[test]
fn serde_saphyr_refuses_an_alias_bomb_by_default() {
    let r = serde_saphyr::from_str::<serde_json::Value>(&alias_bomb());
    let e = r.expect_err("a billion laughs must not deserialize");
    assert!(
        e.to_string().to_lowercase().contains("alias")
            || e.to_string().to_lowercase().contains("budget"),
        "{e}"
    );
}

/// Truncating the valid scenario at every byte never panics and never yields a scenario
/// with a fault that its phase cannot hold.
#[test]
fn every_truncation_of_a_valid_scenario_is_handled() {
    let b = base(Path::new("/nonexistent"));
    assert!(scenario::load_str("s.yaml", &b).is_ok());
    for n in 0..b.len() {
        if !b.is_char_boundary(n) {
            continue;
        }
        if let Ok(l) = scenario::load_str("s.yaml", &b[..n]) {
            // A cut can still be a valid scenario (at the end of a line); then it plans.
            let _ = gameday::engine::plan::Plan::new(&l.scenario);
        }
    }
}

/// Seeds for the mutation run: the fixtures and this catalog's small entries.
fn seeds() -> Vec<Vec<u8>> {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(&fx)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    v.extend(
        catalog(Path::new("/m"))
            .into_iter()
            .filter(|c| c.bytes.len() < 4096)
            .map(|c| c.bytes),
    );
    v
}

/// YAML and scenario tokens the mutator splices in.
const TOKENS: &[&str] = &[
    "&a ",
    "*a",
    "[",
    "]",
    "{",
    "}",
    ": ",
    "- ",
    "\n",
    "\n  ",
    "---\n",
    "...\n",
    "? ",
    "!!str ",
    "!!binary ",
    "<<: ",
    "#",
    "'",
    "\"",
    "|\n",
    ">-\n",
    "~",
    "null",
    "true",
    "-1",
    "0",
    "1e400",
    ".nan",
    "99999999999999999999999",
    "1ns",
    "0s",
    "5000000000000000h",
    "process_kill",
    "every: ",
    "at: ",
    "duration: ",
    "phases:\n",
    "faults:\n",
    "service: web",
    "\u{202e}",
    "\0",
    "\u{feff}",
    "é",
    "\t",
    "%YAML 1.2\n",
    "%TAG ! tag:x:\n",
];

fn mutate(rng: &mut impl Rng, input: &[u8], other: &[u8], max_steps: usize) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..rng.gen_range(1..=max_steps) {
        let at = if v.is_empty() {
            0
        } else {
            rng.gen_range(0..=v.len())
        };
        match rng.gen_range(0..6) {
            0 if !v.is_empty() => {
                let i = rng.gen_range(0..v.len());
                v[i] ^= 1 << rng.gen_range(0..8);
            }
            1 => {
                let t = TOKENS[rng.gen_range(0..TOKENS.len())].as_bytes();
                v.splice(at..at, t.iter().copied());
            }
            2 if !v.is_empty() => {
                let end = (at + rng.gen_range(0..64)).min(v.len());
                v.drain(at.min(end)..end);
            }
            3 if !v.is_empty() => {
                let from = rng.gen_range(0..v.len());
                let to = (from + rng.gen_range(0..128)).min(v.len());
                let chunk = v[from..to].to_vec();
                v.splice(at..at, chunk);
            }
            4 if !other.is_empty() => {
                let from = rng.gen_range(0..other.len());
                let to = (from + rng.gen_range(0..256)).min(other.len());
                v.splice(at..at, other[from..to].iter().copied());
            }
            _ => v.truncate(at),
        }
    }
    v
}

/// The stable substitute for `cargo fuzz run scenario`: seeded mutations of real and hostile
/// scenarios through the whole reader (and the planner for those that pass). A panic fails
/// the test with the input that caused it, saved under `target/fuzz-crashes/`.
/// `GAMEDAY_FUZZ_ITERS` raises the count (default 3000); `GAMEDAY_FUZZ_SEED` changes the seed.
#[test]
fn mutated_scenarios_never_panic_the_reader() {
    let iters: usize = std::env::var("GAMEDAY_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let seed: u64 = std::env::var("GAMEDAY_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x0067_616d_6564);
    let seeds = seeds();
    let valid = base(Path::new("/m"));
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut ok = 0usize;
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut crash: Option<(usize, Vec<u8>, String)> = None;
    for i in 0..iters {
        // Half the inputs are one small step from a valid scenario, so that the later passes
        // (schema, typed model, meaning checks, planner) see many near-valid files.
        let b = &seeds[rng.gen_range(0..seeds.len())];
        let input = if rng.gen_bool(0.5) {
            mutate(&mut rng, valid.as_bytes(), b, 1)
        } else {
            let a = &seeds[rng.gen_range(0..seeds.len())];
            mutate(&mut rng, a, b, 5)
        };
        let r = std::panic::catch_unwind(|| gameday_fuzz_one(&input));
        match r {
            Ok(true) => ok += 1,
            Ok(false) => {}
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                crash = Some((i, input, msg));
                break;
            }
        }
    }
    std::panic::set_hook(prev);
    if let Some((i, input, msg)) = crash {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes");
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join(format!("crash-{seed}-{i}.yaml"));
        std::fs::write(&f, &input).unwrap();
        panic!(
            "iteration {i} (seed {seed}) panicked: {msg}; input saved to {}",
            f.display()
        );
    }
    // The mutations must reach the later passes, or the run tests only the YAML parser.
    eprintln!("fuzz: {iters} inputs, {ok} valid scenarios");
    assert!(ok > 0, "no mutated input got through the reader");
}

/// One input through the reader, as the `cargo fuzz` target does; true when it was valid.
fn gameday_fuzz_one(input: &[u8]) -> bool {
    let Ok(src) = std::str::from_utf8(input) else {
        return false;
    };
    match scenario::load_str("fuzz.yaml", src) {
        Ok(l) => {
            let plan = gameday::engine::plan::Plan::new(&l.scenario);
            let _ = serde_json::to_string(&plan);
            true
        }
        Err(d) => {
            let _ = d.to_string();
            false
        }
    }
}

/// Hostile ledgers for `recover`: a corrupt line in the middle is a clear error naming the
/// line; a process record naming process group 0 (which kill(2) reads as "my own process
/// group") is never signalled. `recover` runs in its own process group, so that a regression would kill
/// only itself, and show as death by signal.
#[test]
fn recover_refuses_corrupt_ledgers_and_never_signals_group_0() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let start = format!(
        r#"{{"op":"run_start","run_id":"x","scenario":"x","pid":{},"targets":{{"local":{{"dir":"{}"}}}},"at":"t"}}"#,
        u32::MAX - 1,
        run.display()
    );
    let inject = |id: u32, pid: u32, pgid: u32| {
        format!(
            r#"{{"op":"inject","id":{id},"fault":"fleet","kind":"process","target":"local","prepared":{{"targets":["pid {pid}"],"undo":{{"pid":{pid},"pgid":{pgid},"start_time":null}},"irreversible":false}},"deadline":"t","at":"t"}}"#
        )
    };
    let recover = |ledger: &Path| {
        cmd()
            .args(["recover", "--ledger"])
            .arg(ledger)
            .process_group(0)
            .output()
            .unwrap()
    };

    let corrupt = run.join("corrupt.jsonl");
    std::fs::write(
        &corrupt,
        format!("{start}\n{{\"op\":\"inj garbage\n{}\n", inject(1, 0, 0)),
    )
    .unwrap();
    let o = recover(&corrupt);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(
        text(&o).contains("corrupt.jsonl:2: not a ledger record"),
        "{}",
        text(&o)
    );

    // A live process (so the record passes the liveness check) with process group 0: without
    // the guard, kill(-0) is kill(0), which signals recover's own group.
    let mut live = std::process::Command::new("sleep")
        .arg("30")
        .process_group(0)
        .spawn()
        .unwrap();
    let zero = run.join("zero.jsonl");
    std::fs::write(&zero, format!("{start}\n{}\n", inject(1, live.id(), 0))).unwrap();
    let o = recover(&zero);
    let _ = live.kill();
    let _ = live.wait();
    assert!(
        o.status.code().is_some(),
        "recover was killed by a signal: it signalled its own process group"
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}
