//! Meaning checks on a scenario that parsed: every problem at once, each at the line and
//! column of the value it is about. Nothing here touches a target.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{FaultEntry, Scenario, Schedule, API_VERSION, KIND};
use super::yaml::{Node, Pos, Step};

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
        for (i, svc) in local.services.iter().enumerate() {
            let at = |f: &'static str| p(&[K("target"), K("local"), K("services"), I(i), K(f)]);
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
    let mut phase_names = BTreeSet::new();
    let mut fault_names = BTreeSet::new();
    for (pi, ph) in s.phases.iter().enumerate() {
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
        let mut windows: Vec<(usize, &'static str, String, f64, f64)> = Vec::new();
        let mut serial_clock = 0.0;
        for (fi, f) in ph.faults.iter().enumerate() {
            let at = |field: &'static str| p(&[K("phases"), I(pi), K("faults"), I(fi), K(field)]);
            let here = p(&[K("phases"), I(pi), K("faults"), I(fi)]);
            let kinds = f.kinds();
            let label = fault_label(f, pi, fi);
            if let Some(n) = &f.name {
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
                let needs = FaultEntry::target_of_kind(kind);
                if !configured.contains(&needs) {
                    push(at(kind), format!("fault `{label}` is a `{kind}` fault for the `{needs}` target, which is not configured under `target:`"));
                }
                if let Some(t) = &f.target {
                    if t != needs {
                        push(at("target"), format!("fault `{label}` names target `{t}`, but `{kind}` is a `{needs}` fault"));
                    }
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
            let end = start + len;
            if start >= ph.duration.secs_f64() && !ph.duration.get().is_zero() {
                push(
                    at("at"),
                    format!(
                        "fault `{label}` starts at {start:.1}s, after its phase `{}` ends ({})",
                        ph.name, ph.duration
                    ),
                );
            } else if end > ph.duration.secs_f64() + 1e-9 {
                push(
                    if f.duration.is_some() { at("duration") } else { at("at") },
                    format!(
                        "fault `{label}` runs from {start:.1}s to {end:.1}s, past the end of phase `{}` ({}); shorten it or lengthen the phase",
                        ph.name, ph.duration
                    ),
                );
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
        for a in 0..windows.len() {
            for b in a + 1..windows.len() {
                let (fa, ka, sa, s1, e1) = &windows[a];
                let (fb, kb, sb, s2, e2) = &windows[b];
                let overlap = if e1 == s1 || e2 == s2 {
                    (s1 - s2).abs() < 1e-9
                } else {
                    s1 < e2 && s2 < e1
                };
                if ka == kb && sa == sb && overlap {
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
        let set = [
            slo.latency.is_some(),
            slo.error_rate.is_some(),
            slo.availability.is_some(),
            slo.recovery_time.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if set != 1 {
            push(here.clone(), format!("SLO `{}` must set exactly one of latency, error_rate, availability, recovery_time ({set} set)", slo.name));
        }
        if !has_load {
            push(here.clone(), format!("SLO `{}` is measured by the load, but the scenario has no `load:` section; nothing would measure it", slo.name));
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
            && s.hypothesis.slos.iter().all(|o| o.recovery_time.is_some())
        {
            push(
                at("recovery_time"),
                format!(
                    "SLO `{}`: recovery is judged against the other SLOs, and there are none",
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
    v
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
    if let ("spot_interruption", Some(sp)) = (kind, &f.spot_interruption) {
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
