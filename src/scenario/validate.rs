//! Meaning checks on a scenario that parsed: every problem at once, each at the line and
//! column of the value it is about. Nothing here touches a target.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{FaultEntry, Scenario, Schedule, API_VERSION, KIND};
use super::yaml::{Node, Pos, Step};
use crate::duration::Dur;

/// A problem found by a meaning check: where (a path into the document) and what.
#[derive(Debug, Clone)]
pub struct Issue {
    /// The path of the value the problem is about.
    pub path: Vec<Step>,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Builds paths tersely: `p(&[K("phases"), I(0), K("duration")])`.
pub enum P<'a> {
    /// A key.
    K(&'a str),
    /// An index.
    I(usize),
}

fn p(parts: &[P<'_>]) -> Vec<Step> {
    parts
        .iter()
        .map(|x| match x {
            P::K(k) => Step::Key((*k).to_string()),
            P::I(i) => Step::Index(*i),
        })
        .collect()
}

use P::{I, K};

/// The most replicas the local fleet may run, all services together: real processes on
/// this machine, so a typo (`replicas: 4000000000`) must not become a fork bomb.
pub const MAX_LOCAL_REPLICAS: u64 = 1_000;

/// The longest timeline (all phases together). A gameday is hours; a week leaves room for
/// soak runs and keeps every offset far from `Instant` overflow.
pub const MAX_TIMELINE_SECS: f64 = 7.0 * 86_400.0;

/// The most load connections: each is a socket and a task on this machine; far beyond it,
/// a typo (`connections: 100000000`) would exhaust memory and file descriptors.
pub const MAX_LOAD_CONNECTIONS: usize = 10_000;

/// The shortest `every`: a kill loop faster than this only hammers the ledger (every
/// injection is an fsync'd record) and the disk under it.
pub const MIN_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// The shortest restart `backoff`: below it, a crash loop spins and fills the ledger.
pub const MIN_BACKOFF: std::time::Duration = std::time::Duration::from_millis(10);

/// Names that land in logs, the ledger, file names and terminals must not carry control
/// characters or bidirectional overrides, which could rewrite what an operator reads.
fn unprintable(name: &str) -> Option<char> {
    name.chars()
        .find(|c| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
}

/// A name that becomes a file name and a DNS label: `[A-Za-z0-9_-]{1,63}`.
fn is_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Checks everything that the schema cannot say. The result is empty for a valid scenario.
pub fn validate(s: &Scenario) -> Vec<Issue> {
    let mut v = Vec::new();
    let mut push = |path: Vec<Step>, message: String| v.push(Issue { path, message });

    if s.api_version != API_VERSION {
        push(
            p(&[K("apiVersion")]),
            format!(
                "unsupported apiVersion `{}`, expected `{API_VERSION}`",
                s.api_version
            ),
        );
    }
    if s.kind != KIND {
        push(
            p(&[K("kind")]),
            format!("unsupported kind `{}`, expected `{KIND}`", s.kind),
        );
    }
    let name = &s.metadata.name;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        push(
            p(&[K("metadata"), K("name")]),
            format!("metadata.name `{name}` must be non-empty letters, digits, `-` or `_` (it names report folders)"),
        );
    }

    // Targets.
    let configured = s.target.configured();
    if configured.is_empty() {
        push(
            p(&[K("target")]),
            "no target configured; set `local`, `kubernetes` or `aws`".into(),
        );
    }
    if let Some(aws) = &s.target.aws {
        for e in aws.validate() {
            push(
                p(&[K("target"), K("aws"), K(e.field.as_str())]),
                format!("target.aws.{}: {}", e.field, e.message),
            );
        }
    }
    if let Some(local) = &s.target.local {
        if !(local.max_percent > 0.0 && local.max_percent <= 100.0) {
            push(
                p(&[K("target"), K("local"), K("max_percent")]),
                format!("max_percent {} must be in (0, 100]", local.max_percent),
            );
        }
        if local.services.is_empty() {
            push(
                p(&[K("target"), K("local"), K("services")]),
                "the local target needs at least one service".into(),
            );
        }
        let mut names = BTreeSet::new();
        let mut ports = BTreeMap::new();
        let mut total_replicas = 0u64;
        for (i, svc) in local.services.iter().enumerate() {
            let at = |f: &'static str| p(&[K("target"), K("local"), K("services"), I(i), K(f)]);
            if !is_label(&svc.name) {
                push(
                    at("name"),
                    format!(
                        "service name `{}` must be 1 to 63 letters, digits, `-` or `_` (it names log files and DNS names)",
                        svc.name.escape_debug()
                    ),
                );
            }
            if !names.insert(svc.name.as_str()) {
                push(
                    at("name"),
                    format!("service name `{}` is used twice", svc.name),
                );
            }
            if svc.command.is_empty() {
                push(
                    at("command"),
                    format!("service `{}` has an empty command", svc.name),
                );
            }
            if svc.replicas == 0 {
                push(at("replicas"), "replicas must be at least 1".into());
            }
            total_replicas += u64::from(svc.replicas);
            if total_replicas > MAX_LOCAL_REPLICAS {
                push(
                    at("replicas"),
                    format!(
                        "{total_replicas} local replicas in all; the local fleet is limited to {MAX_LOCAL_REPLICAS} processes"
                    ),
                );
                total_replicas = 0; // one message, not one per later service
            }
            if svc.instance_size == 0 {
                push(
                    at("instance_size"),
                    "instance_size must be at least 1".into(),
                );
            }
            if let Some(port) = svc.port {
                if port == 0 {
                    push(
                        at("port"),
                        "port 0 is not a service address; leave `port` out instead".into(),
                    );
                } else if let Some(other) = ports.insert(port, svc.name.clone()) {
                    push(
                        at("port"),
                        format!("port {port} is already the service address of `{other}`"),
                    );
                }
            }
            if let Some(h) = &svc.health {
                if !h.starts_with('/') {
                    push(
                        at("health"),
                        format!("health path `{h}` must start with `/`"),
                    );
                }
            }
            if svc.backoff.get().is_zero() {
                push(
                    at("backoff"),
                    "backoff must be positive (a crash loop would spin)".into(),
                );
            } else if svc.backoff.get() < MIN_BACKOFF {
                push(
                    at("backoff"),
                    format!("backoff {} is below the minimum 10ms (a crash loop would spin and fill the ledger)", svc.backoff),
                );
            }
        }
    }

    // Phases and faults.
    if s.phases.is_empty() {
        push(
            p(&[K("phases")]),
            "a gameday needs at least one phase".into(),
        );
    }
    let timeline: f64 = s.phases.iter().map(|ph| ph.duration.secs_f64()).sum();
    if timeline > MAX_TIMELINE_SECS {
        push(
            p(&[K("phases")]),
            format!(
                "the phases last {:.0}s in all; a gameday is limited to {MAX_TIMELINE_SECS:.0}s (7 days)",
                timeline
            ),
        );
    }
    let mut phase_names = BTreeSet::new();
    let mut fault_names = BTreeSet::new();
    for (pi, ph) in s.phases.iter().enumerate() {
        if let Some(c) = unprintable(&ph.name) {
            push(
                p(&[K("phases"), I(pi), K("name")]),
                format!(
                    "phase name `{}` contains the unprintable character {c:?}",
                    ph.name.escape_debug()
                ),
            );
        }
        if !phase_names.insert(ph.name.as_str()) {
            push(
                p(&[K("phases"), I(pi), K("name")]),
                format!("phase name `{}` is used twice", ph.name),
            );
        }
        if ph.duration.get().is_zero() {
            push(
                p(&[K("phases"), I(pi), K("duration")]),
                format!("phase `{}` has a zero duration", ph.name),
            );
        }
        let mut windows: Vec<Window<'static>> = Vec::new();
        let mut serial_clock = 0.0;
        for (fi, f) in ph.faults.iter().enumerate() {
            let at = |field: &'static str| p(&[K("phases"), I(pi), K("faults"), I(fi), K(field)]);
            let here = p(&[K("phases"), I(pi), K("faults"), I(fi)]);
            let kinds = f.kinds();
            let label = fault_label(f, pi, fi);
            if let Some(n) = &f.name {
                if let Some(c) = unprintable(n) {
                    push(
                        at("name"),
                        format!(
                            "fault name `{}` contains the unprintable character {c:?}",
                            n.escape_debug()
                        ),
                    );
                }
                if !fault_names.insert(n.clone()) {
                    push(at("name"), format!("fault name `{n}` is used twice"));
                }
            }
            match kinds.as_slice() {
                [] => push(
                    here.clone(),
                    format!(
                        "fault `{label}` sets no fault kind; set one of: {}",
                        FaultEntry::ALL_KINDS.join(", ")
                    ),
                ),
                [_] => {}
                many => push(
                    here.clone(),
                    format!(
                        "fault `{label}` sets {} kinds ({}); one fault entry has exactly one kind",
                        many.len(),
                        many.join(", ")
                    ),
                ),
            }
            for kind in &kinds {
                let needs = f.target_of(kind);
                let spot_without_select = *kind == "spot_interruption" && needs == "local";
                match &f.target {
                    Some(t) if t == "aws" && spot_without_select => push(
                        at(kind),
                        format!("fault `{label}` names target `aws`, but its spot_interruption has no `select:`; say which EC2 instances to interrupt (`select: {{tags: ...}}` or `instance_ids`)"),
                    ),
                    Some(t) if t != needs => push(
                        at("target"),
                        format!("fault `{label}` names target `{t}`, but `{kind}` is a `{needs}` fault"),
                    ),
                    _ if !configured.contains(&needs) => {
                        let hint = if spot_without_select && configured.contains(&"aws") {
                            "; for EC2 spot instances, add `select:` (tags or instance_ids)"
                        } else {
                            ""
                        };
                        push(at(kind), format!("fault `{label}` is a `{kind}` fault for the `{needs}` target, which is not configured under `target:`{hint}"))
                    }
                    _ => {}
                }
            }
            if let Some(t) = &f.target {
                if !["local", "kubernetes", "aws"].contains(&t.as_str()) {
                    push(
                        at("target"),
                        format!("unknown target `{t}`, expected local, kubernetes or aws"),
                    );
                }
            }
            if let Some(d) = f.duration {
                if d.get().is_zero() {
                    push(
                        at("duration"),
                        format!("fault `{label}` has a zero duration"),
                    );
                }
            }
            if let Some(e) = f.every {
                if e.get().is_zero() {
                    push(
                        at("every"),
                        format!("fault `{label}` repeats every 0s; `every` must be positive"),
                    );
                } else if e.get() < MIN_EVERY {
                    push(
                        at("every"),
                        format!("fault `{label}` repeats every {e}; the minimum is 100ms"),
                    );
                }
            }
            let start = if ph.schedule == Schedule::Serial {
                serial_clock + f.at.secs_f64()
            } else {
                f.at.secs_f64()
            };
            let len = f.duration.map(|d| d.secs_f64()).unwrap_or_else(|| {
                if f.every.is_some() || f.is_durable() {
                    (ph.duration.secs_f64() - start).max(0.0)
                } else {
                    0.0
                }
            });
            let min_len = f.min_length().as_secs_f64();
            let len = len.max(min_len);
            let end = start + len;
            if min_len > 0.0 && f.duration.is_some_and(|d| d.secs_f64() < min_len) {
                push(
                    at("duration"),
                    format!(
                        "fault `{label}` lasts {}, less than its spot notice ({}): the instances would be started again before they are interrupted",
                        f.duration.unwrap_or_default(),
                        Dur(f.min_length())
                    ),
                );
            } else if start >= ph.duration.secs_f64() && !ph.duration.get().is_zero() {
                push(
                    at("at"),
                    format!(
                        "fault `{label}` starts at {start:.1}s, after its phase `{}` ends ({})",
                        ph.name, ph.duration
                    ),
                );
            } else if end > ph.duration.secs_f64() + 1e-9 {
                let spot_notice = min_len > 0.0 && start + min_len > ph.duration.secs_f64() + 1e-9;
                if spot_notice {
                    push(
                        at("at"),
                        format!(
                            "fault `{label}` gives a {} spot notice at {start:.1}s, so its instances are interrupted at {:.1}s, after phase `{}` ends ({}); start it earlier or lengthen the phase",
                            Dur(f.min_length()),
                            start + min_len,
                            ph.name,
                            ph.duration
                        ),
                    );
                } else {
                    push(
                        if f.duration.is_some() { at("duration") } else { at("at") },
                        format!(
                            "fault `{label}` runs from {start:.1}s to {end:.1}s, past the end of phase `{}` ({}); shorten it or lengthen the phase",
                            ph.name, ph.duration
                        ),
                    );
                }
            }
            serial_clock = end;
            for kind in &kinds {
                if let Some(scope) = f.scope() {
                    windows.push((fi, kind, scope, start, end));
                }
                check_kind(s, f, kind, &label, pi, fi, &mut push);
            }
        }
        // Overlaps: two faults of the same kind on the same objects at the same time.
        for (a, b) in overlapping_pairs(&windows) {
            let (fa, ka, sa, _, _) = &windows[a];
            let (fb, _, _, _, _) = &windows[b];
            push(
                p(&[K("phases"), I(pi), K("faults"), I(*fb)]),
                format!(
                    "faults `{}` and `{}` overlap in time on the same targets ({ka} on {sa}); their effects and reverts would interfere; space them out or use `schedule: serial`",
                    fault_label(&ph.faults[*fa], pi, *fa),
                    fault_label(&ph.faults[*fb], pi, *fb)
                ),
            );
        }
    }

    // The load: checked here, so that a bad `load:` is a scenario error (exit 2) rather than
    // a failure after the targets have started.
    if let Some(load) = &s.load {
        if load.connections > MAX_LOAD_CONNECTIONS {
            push(
                p(&[K("load"), K("connections")]),
                format!(
                    "{} load connections; the limit is {MAX_LOAD_CONNECTIONS}",
                    load.connections
                ),
            );
        } else if let Err(e) = load.resolve() {
            push(p(&[K("load")]), format!("load: {e}"));
        }
    }

    // Hypothesis and stop conditions.
    let has_load = s.load.is_some();
    let has_durable = s
        .phases
        .iter()
        .flat_map(|p| &p.faults)
        .any(|f| !f.kinds().is_empty());
    for (i, slo) in s.hypothesis.slos.iter().enumerate() {
        let at = |f: &'static str| p(&[K("hypothesis"), K("slos"), I(i), K(f)]);
        let here = p(&[K("hypothesis"), K("slos"), I(i)]);
        if let Some(c) = unprintable(&slo.name) {
            push(
                at("name"),
                format!(
                    "SLO name `{}` contains the unprintable character {c:?}",
                    slo.name.escape_debug()
                ),
            );
        }
        let set = [
            slo.latency.is_some(),
            slo.error_rate.is_some(),
            slo.availability.is_some(),
            slo.recovery_time.is_some(),
            slo.workload_ready.is_some(),
            slo.pod_restarts.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if set != 1 {
            push(here.clone(), format!("SLO `{}` must set exactly one of latency, error_rate, availability, recovery_time, workload_ready, pod_restarts ({set} set)", slo.name));
        }
        if slo.is_load_measured() {
            if !has_load {
                push(here.clone(), format!("SLO `{}` is measured by the load, but the scenario has no `load:` section; nothing would measure it", slo.name));
            }
        } else if s.target.kubernetes.is_none() {
            let key = if slo.workload_ready.is_some() {
                "workload_ready"
            } else {
                "pod_restarts"
            };
            push(
                at(key),
                format!(
                    "SLO `{}` reads the Kubernetes target, which is not configured under `target:`",
                    slo.name
                ),
            );
        }
        if let Some(w) = &slo.workload_ready {
            if w.min_ready.is_some_and(|m| m < 0) {
                push(
                    p(&[
                        K("hypothesis"),
                        K("slos"),
                        I(i),
                        K("workload_ready"),
                        K("min_ready"),
                    ]),
                    format!("SLO `{}`: min_ready must be 0 or more", slo.name),
                );
            }
        }
        if slo.recovery_time.is_some() && !has_durable {
            push(
                at("recovery_time"),
                format!(
                    "SLO `{}` measures recovery after faults, but the scenario has no fault",
                    slo.name
                ),
            );
        }
        if slo.recovery_time.is_some()
            && set == 1
            && s.hypothesis
                .slos
                .iter()
                .all(|o| o.recovery_time.is_some() || !o.is_load_measured())
        {
            push(
                at("recovery_time"),
                format!(
                    "SLO `{}`: recovery is judged against the other load SLOs (latency, error_rate, availability), and there are none",
                    slo.name
                ),
            );
        }
        if let Some(l) = &slo.latency {
            check_percentile(
                l.percentile,
                p(&[
                    K("hypothesis"),
                    K("slos"),
                    I(i),
                    K("latency"),
                    K("percentile"),
                ]),
                &mut push,
            );
        }
        if let Some(e) = &slo.error_rate {
            check_percent(
                e.max_percent,
                p(&[
                    K("hypothesis"),
                    K("slos"),
                    I(i),
                    K("error_rate"),
                    K("max_percent"),
                ]),
                &mut push,
            );
        }
        if let Some(a) = &slo.availability {
            check_percent(
                a.min_percent,
                p(&[
                    K("hypothesis"),
                    K("slos"),
                    I(i),
                    K("availability"),
                    K("min_percent"),
                ]),
                &mut push,
            );
        }
        if let Some(r) = &slo.recovery_time {
            if r.consecutive == 0 {
                push(
                    p(&[
                        K("hypothesis"),
                        K("slos"),
                        I(i),
                        K("recovery_time"),
                        K("consecutive"),
                    ]),
                    "consecutive must be at least 1".into(),
                );
            }
        }
        for (j, ph) in slo.phases.iter().enumerate() {
            if !phase_names.contains(ph.as_str()) {
                push(
                    p(&[K("hypothesis"), K("slos"), I(i), K("phases"), I(j)]),
                    format!(
                        "SLO `{}` names phase `{ph}`, which does not exist; phases are: {}",
                        slo.name,
                        phase_names.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
    }
    for (i, sc) in s.stop_conditions.iter().enumerate() {
        let here = p(&[K("stop_conditions"), I(i)]);
        if let Some(c) = unprintable(&sc.name) {
            push(
                p(&[K("stop_conditions"), I(i), K("name")]),
                format!(
                    "stop condition name `{}` contains the unprintable character {c:?}",
                    sc.name.escape_debug()
                ),
            );
        }
        let set = [
            sc.latency.is_some(),
            sc.error_rate.is_some(),
            sc.availability.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if set != 1 {
            push(here.clone(), format!("stop condition `{}` must set exactly one of latency, error_rate, availability ({set} set)", sc.name));
        }
        if !has_load {
            push(here.clone(), format!("stop condition `{}` is measured by the load, but the scenario has no `load:` section", sc.name));
        }
        if sc.hold_for.get().is_zero() {
            push(
                p(&[K("stop_conditions"), I(i), K("for")]),
                "`for` must be positive".into(),
            );
        }
        if let Some(l) = &sc.latency {
            check_percentile(
                l.percentile,
                p(&[K("stop_conditions"), I(i), K("latency"), K("percentile")]),
                &mut push,
            );
        }
        if let Some(e) = &sc.error_rate {
            check_percent(
                e.max_percent,
                p(&[
                    K("stop_conditions"),
                    I(i),
                    K("error_rate"),
                    K("max_percent"),
                ]),
                &mut push,
            );
        }
        if let Some(a) = &sc.availability {
            check_percent(
                a.min_percent,
                p(&[
                    K("stop_conditions"),
                    I(i),
                    K("availability"),
                    K("min_percent"),
                ]),
                &mut push,
            );
        }
    }
    if let Some(pb) = &s.playbook {
        if pb.rto.is_some_and(|r| r.get().is_zero()) {
            push(p(&[K("playbook"), K("rto")]), "rto must be positive".into());
        }
    }
    if let Some(t) = &s.impact_tolerance {
        if !(0.0..=100.0).contains(&t.error_rate_points) || t.error_rate_points.is_nan() {
            push(
                p(&[K("impact_tolerance"), K("error_rate_points")]),
                format!(
                    "error_rate_points {} must be percentage points from 0 to 100 (1 means \
                     one point of errors over the baseline)",
                    t.error_rate_points
                ),
            );
        }
        if !(t.p99_ratio >= 1.0 && t.p99_ratio.is_finite()) {
            push(
                p(&[K("impact_tolerance"), K("p99_ratio")]),
                format!(
                    "p99_ratio {} must be a finite multiple of the baseline's p99, at least 1 \
                     (2 means twice as slow)",
                    t.p99_ratio
                ),
            );
        }
    }
    // What an `owners` key may name: a fault (by its label), a service (of the sandbox, or
    // named by a fault's spec), a target. A misspelt key would leave its items `unassigned`
    // without a word; it is an error here instead.
    let mut ownable: BTreeSet<String> = ["local", "kubernetes", "aws"].map(String::from).into();
    if let Some(l) = &s.target.local {
        ownable.extend(l.services.iter().map(|svc| svc.name.clone()));
    }
    for (pi, ph) in s.phases.iter().enumerate() {
        for (fi, f) in ph.faults.iter().enumerate() {
            ownable.insert(fault_label(f, pi, fi));
            if let Ok(value) = serde_json::to_value(f) {
                ownable.extend(f.kinds().iter().filter_map(|kind| {
                    value
                        .get(*kind)?
                        .get("service")?
                        .as_str()
                        .map(str::to_owned)
                }));
            }
        }
    }
    for (key, owner) in &s.owners {
        let here = p(&[K("owners"), K(key)]);
        if !key.trim().is_empty() && !ownable.contains(key) {
            let hint = super::diagnostic::did_you_mean(key, ownable.iter().map(String::as_str))
                .map(|m| format!("; did you mean `{m}`?"))
                .unwrap_or_default();
            push(
                here.clone(),
                format!(
                    "owners.{key} names no fault, service or target of this scenario{hint} (known: {})",
                    ownable.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        if key.trim().is_empty() || unprintable(key).is_some() {
            push(
                here.clone(),
                "owners: a key must name a fault, service or target in printable text".into(),
            );
        }
        if owner.trim().is_empty() {
            push(
                here,
                format!("owners.{key} is empty; name the team or person who owns `{key}`"),
            );
        } else if let Some(c) = unprintable(owner) {
            push(
                here,
                format!("owners.{key} contains the unprintable character {c:?}"),
            );
        }
    }
    v
}

/// A fault's time window for the overlap check: (fault index, kind, scope, start s, end s).
type Window<'a> = (usize, &'a str, String, f64, f64);

/// Pairs `(earlier, later)` of windows of the same kind and scope that overlap in time, at
/// most one per window: each later window is paired with one earlier window it collides
/// with. Two instant windows (start == end), or an instant and a lasting one, collide when
/// they start together; two lasting windows when their intervals intersect.
///
/// Sorted sweep per (kind, scope) group, O(n log n): a phase with tens of thousands of
/// faults (hostile or generated) is checked in milliseconds, where comparing every pair
/// took minutes (regression pinned by `tests/hostile.rs`).
fn overlapping_pairs(windows: &[Window<'_>]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..windows.len()).collect();
    order.sort_by(|&x, &y| {
        let (a, b) = (&windows[x], &windows[y]);
        (a.1, &a.2)
            .cmp(&(b.1, &b.2))
            .then(a.3.total_cmp(&b.3))
            .then(a.0.cmp(&b.0))
    });
    let mut out = Vec::new();
    // Per group: the previous window, and the lasting window with the latest end so far.
    let mut prev: Option<usize> = None;
    let mut longest: Option<usize> = None;
    for &i in &order {
        let w = &windows[i];
        if let Some(pv) = prev {
            let p = &windows[pv];
            if (p.1, &p.2) != (w.1, &w.2) {
                prev = None;
                longest = None;
            }
        }
        let instant = w.4 == w.3;
        let same_start = prev.filter(|&pv| (windows[pv].3 - w.3).abs() < 1e-9);
        let running = longest.filter(|&l| !instant && windows[l].4 > w.3);
        if let Some(a) = same_start.or(running) {
            out.push((a, i));
        }
        if !instant && longest.is_none_or(|l| windows[l].4 < w.4) {
            longest = Some(i);
        }
        prev = Some(i);
    }
    out
}

fn check_percent(x: f64, path: Vec<Step>, push: &mut impl FnMut(Vec<Step>, String)) {
    if !(0.0..=100.0).contains(&x) || x.is_nan() {
        push(
            path,
            format!("{x} is not a percentage; expected a number from 0 to 100"),
        );
    }
}

fn check_percentile(x: f64, path: Vec<Step>, push: &mut impl FnMut(Vec<Step>, String)) {
    if !(x > 0.0 && x <= 100.0) {
        push(path, format!("percentile {x} is out of range; expected more than 0 and at most 100 (e.g. 50, 99, 99.9)"));
    }
}

/// The name a fault goes by in messages.
pub fn fault_label(f: &FaultEntry, phase: usize, index: usize) -> String {
    f.name.clone().unwrap_or_else(|| {
        format!(
            "{}#{}.{}",
            f.kinds().first().copied().unwrap_or("fault"),
            phase + 1,
            index + 1
        )
    })
}

fn check_kind(
    s: &Scenario,
    f: &FaultEntry,
    kind: &str,
    label: &str,
    pi: usize,
    fi: usize,
    push: &mut impl FnMut(Vec<Step>, String),
) {
    let at = |field: &'static str| {
        p(&[
            K("phases"),
            I(pi),
            K("faults"),
            I(fi),
            K(kind_key(kind)),
            K(field),
        ])
    };
    if let Some(spec) = f.kubernetes_spec().filter(|k| k.kind() == kind) {
        if let Err(e) = spec.validate() {
            let field = match &e {
                crate::targets::kubernetes::spec::SpecError::ModeValue { .. } => "mode",
                crate::targets::kubernetes::spec::SpecError::Field { field, .. } => {
                    match field.as_str() {
                        "names" => "names",
                        "selector" => "selector",
                        "latency" => "latency",
                        "loss_percent" => "loss_percent",
                        "interface" => "interface",
                        "eviction_timeout" => "eviction_timeout",
                        _ => "",
                    }
                }
            };
            let path = if field.is_empty() {
                p(&[K("phases"), I(pi), K("faults"), I(fi), K(kind_key(kind))])
            } else {
                at(field)
            };
            push(path, format!("fault `{label}`: {e}"));
        }
    }
    if let Some(spec) = f.aws_spec().filter(|a| a.kind() == kind) {
        for e in spec.validate() {
            let mut path = p(&[K("phases"), I(pi), K("faults"), I(fi), K(kind_key(kind))]);
            path.extend(e.field.split('.').map(|k| Step::Key(k.to_string())));
            push(path, format!("fault `{label}`: {}", e.message));
        }
    }
    if let ("process_kill", Some(pk)) = (kind, &f.process_kill) {
        let services: Vec<&str> = s
            .target
            .local
            .iter()
            .flat_map(|l| l.services.iter().map(|x| x.name.as_str()))
            .collect();
        if s.target.local.is_some() && !services.contains(&pk.service.as_str()) {
            push(
                at("service"),
                format!(
                    "fault `{label}`: no local service named `{}`; services are: {}",
                    pk.service,
                    services.join(", ")
                ),
            );
        }
        if pk.count.is_some() && pk.percent.is_some() {
            push(
                at("percent"),
                format!("fault `{label}`: set `count` or `percent`, not both"),
            );
        }
        if pk.count == Some(0) {
            push(
                at("count"),
                format!("fault `{label}`: count must be at least 1"),
            );
        }
        if let Some(pc) = pk.percent {
            if !(pc > 0.0 && pc <= 100.0) {
                push(
                    at("percent"),
                    format!("fault `{label}`: percent {pc} must be in (0, 100]"),
                );
            }
        }
    }
    let local_services: Vec<&crate::targets::local::config::ServiceSpec> = s
        .target
        .local
        .iter()
        .flat_map(|l| l.services.iter())
        .collect();
    let spec_err = |e: crate::targets::local::spec::SpecError| -> (&'static str, String) {
        use crate::targets::local::spec::SpecError as E;
        let field = match &e {
            E::Range { field, .. } | E::Invalid { field, .. } => *field,
            E::Empty(_) => "",
        };
        (field, format!("fault `{label}`: {e}"))
    };
    let mut report = |field: &'static str, msg: String| {
        if field.is_empty() {
            push(
                p(&[K("phases"), I(pi), K("faults"), I(fi), K(kind_key(kind))]),
                msg,
            )
        } else {
            push(at(field), msg)
        }
    };
    if let ("network", Some(n)) = (kind, &f.network) {
        if let Err(e) = n.link_faults() {
            let (field, msg) = spec_err(e);
            report(field, msg);
        }
        if s.target.local.is_some() {
            match local_services.iter().find(|x| x.name == n.service) {
                None => report(
                    "service",
                    format!(
                        "fault `{label}`: no local service named `{}`; services are: {}",
                        n.service,
                        local_services
                            .iter()
                            .map(|x| x.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                Some(svc) if svc.port.is_none() => report(
                    "service",
                    format!(
                        "fault `{label}`: service `{}` has no `port`, so no proxy carries its link; give it a port",
                        n.service
                    ),
                ),
                Some(_) => {}
            }
        }
    }
    if let ("dns", Some(d)) = (kind, &f.dns) {
        if let Err(e) = d.rule() {
            let (field, msg) = spec_err(e);
            report(field, msg);
        }
    }
    if let ("spot_interruption", Some(sp)) =
        (kind, f.spot_interruption.as_ref().and_then(|s| s.local()))
    {
        if let Err(e) = sp.notice_period() {
            let (field, msg) = spec_err(e);
            report(field, msg);
        }
        if let crate::targets::local::spec::InstanceSelector::Names(names) = &sp.instances {
            let known: Vec<String> = local_services
                .iter()
                .flat_map(|svc| {
                    let size = svc.instance_size.max(1);
                    (0..svc.replicas.div_ceil(size))
                        .map(|i| crate::targets::local::net::instance_name(&svc.name, i))
                })
                .collect();
            for n in names {
                if s.target.local.is_some() && !known.contains(n) {
                    report(
                        "instances",
                        format!(
                            "fault `{label}`: no local instance named `{n}`; instances are: {}",
                            known.join(", ")
                        ),
                    );
                }
            }
        }
    }
}

fn kind_key(kind: &str) -> &'static str {
    FaultEntry::ALL_KINDS
        .iter()
        .copied()
        .find(|k| *k == kind)
        .unwrap_or("")
}

/// Resolves an issue's path to a position in the document.
pub fn position(tree: &Node, issue: &Issue) -> Pos {
    tree.locate(&issue.path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The pairwise rule the sweep replaces, kept as the reference.
    fn collide(a: &Window<'_>, b: &Window<'_>) -> bool {
        let overlap = if a.4 == a.3 || b.4 == b.3 {
            (a.3 - b.3).abs() < 1e-9
        } else {
            a.3 < b.4 && b.3 < a.4
        };
        a.1 == b.1 && a.2 == b.2 && overlap
    }

    #[test]
    fn the_sweep_flags_exactly_the_windows_the_pairwise_rule_flags() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        for _ in 0..500 {
            let n = rng.gen_range(0..12);
            let w: Vec<Window<'_>> = (0..n)
                .map(|i| {
                    let s = f64::from(rng.gen_range(0..6u8));
                    let len = f64::from(rng.gen_range(0..3u8));
                    let kind = ["a", "b"][rng.gen_range(0..2)];
                    (i, kind, format!("s{}", rng.gen_range(0..2)), s, s + len)
                })
                .collect();
            // A window is flagged when it collides with any other window sorted before it.
            let key = |x: &Window<'_>| (x.3, x.0);
            let mut expected: Vec<usize> = (0..n)
                .filter(|&b| {
                    (0..n).any(|a| a != b && key(&w[a]) < key(&w[b]) && collide(&w[a], &w[b]))
                })
                .collect();
            let pairs = overlapping_pairs(&w);
            for (a, b) in &pairs {
                assert!(collide(&w[*a], &w[*b]), "{w:?}: {a} and {b} do not collide");
            }
            let mut got: Vec<usize> = pairs.iter().map(|(_, b)| *b).collect();
            expected.sort();
            got.sort();
            assert_eq!(got, expected, "{w:?}");
        }
    }
}
