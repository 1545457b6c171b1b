//! From a finished run to its [`Journal`]: the one place that knows both the engine's and
//! load generator's types and the journal's, so the journal itself stays pure data that
//! changes only with its version.
//!
//! The engine's numbers are copied, not recomputed: SLO verdicts, phase measures, windows,
//! faults and events are the engine's own. What the report adds is derived here through
//! [`analysis::analyse`]: recovery per fault and per SLO, what users felt per fault
//! (`impacts`, against the scenario's `impact_tolerance`), the DR time to recover, and the
//! action items derived from what broke and from what users felt (owners from `owners`).

use time::OffsetDateTime;

use super::analysis;
use super::journal::*;
use crate::engine::events as ev;
use crate::engine::hypothesis::windows_in;
use crate::engine::runner::{self, RunResult};
use crate::load;
use crate::scenario::Loaded;

/// The good seconds in a row that count as recovered: the scenario's `recovery_time`
/// setting when it has one, else [`analysis::DEFAULT_GOOD_SECONDS`].
fn good_seconds(loaded: &Loaded) -> u32 {
    loaded
        .scenario
        .hypothesis
        .slos
        .iter()
        .find_map(|s| s.recovery_time.as_ref().map(|r| r.consecutive))
        .unwrap_or(analysis::DEFAULT_GOOD_SECONDS)
}

fn instant(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

fn latency(p: &load::Percentiles) -> Option<Latency> {
    (p.count > 0).then_some(Latency {
        p50: p.p50,
        p90: p.p90,
        p99: p.p99,
        p999: p.p999,
        max: p.max,
        mean: p.mean,
    })
}

fn errors(e: &load::ErrorCounts) -> ErrorCounts {
    ErrorCounts {
        dns: e.dns,
        connect_refused: e.connect_refused,
        connect_timeout: e.connect_timeout,
        reset: e.reset,
        request_timeout: e.request_timeout,
        tls: e.tls,
        http_4xx: e.http_4xx,
        http_5xx: e.http_5xx,
        other: e.other,
    }
}

fn outcome(o: runner::Outcome) -> Outcome {
    match o {
        runner::Outcome::Held => Outcome::Held,
        runner::Outcome::Violated => Outcome::Violated,
        runner::Outcome::Aborted => Outcome::Aborted,
        runner::Outcome::RevertIncomplete => Outcome::RevertIncomplete,
        runner::Outcome::Unreachable => Outcome::Unreachable,
    }
}

fn event_kind(k: ev::EventKind) -> EventKind {
    match k {
        ev::EventKind::PhaseStart => EventKind::PhaseStart,
        ev::EventKind::PhaseEnd => EventKind::PhaseEnd,
        ev::EventKind::Inject => EventKind::Inject,
        ev::EventKind::Revert => EventKind::Revert,
        ev::EventKind::RevertFailed => EventKind::RevertFailed,
        ev::EventKind::StopCondition => EventKind::StopCondition,
        ev::EventKind::Signal => EventKind::Signal,
        ev::EventKind::Error => EventKind::Error,
        ev::EventKind::Note => EventKind::Note,
    }
}

/// The engine's metric names (`latency_p99_ms`, `error_rate_pct`, `availability_pct`,
/// `recovery_time_s`) as the journal's metric and comparison. Every engine bound is
/// inclusive. A latency percentile without a summary of its own (p95) is judged, second by
/// second, against the next summarised one above it (p99): recovery is then never
/// claimed early.
fn metric(name: &str) -> (SloMetric, Comparison) {
    let le = Comparison::Le;
    match name {
        "error_rate_pct" => (SloMetric::ErrorRatePct, le),
        "availability_pct" => (SloMetric::AvailabilityPct, Comparison::Ge),
        "recovery_time_s" => (SloMetric::RecoveryTimeS, le),
        "probe_ok_pct" => (SloMetric::ProbeOkPct, Comparison::Ge),
        _ => {
            let p: f64 = name
                .strip_prefix("latency_p")
                .and_then(|s| s.strip_suffix("_ms"))
                .map(|digits| {
                    // `999` is 99.9, `9999` is 99.99: the engine drops the dot.
                    if digits.len() > 2 && digits != "100" {
                        format!("{}.{}", &digits[..2], &digits[2..])
                    } else {
                        digits.to_owned()
                    }
                })
                .and_then(|s| s.parse().ok())
                .unwrap_or(99.0);
            let m = if p <= 50.0 {
                SloMetric::LatencyP50Ms
            } else if p <= 90.0 {
                SloMetric::LatencyP90Ms
            } else if p <= 99.0 {
                SloMetric::LatencyP99Ms
            } else if p <= 99.9 {
                SloMetric::LatencyP999Ms
            } else {
                SloMetric::LatencyMaxMs
            };
            (m, le)
        }
    }
}

/// Builds the journal of a finished run (in every outcome, including an early stop).
pub fn journal_from_run(r: &RunResult, loaded: &Loaded) -> Journal {
    let confirmations = crate::engine::playbook::confirmations(&r.run_dir);
    let s = &loaded.scenario;
    let started = instant(&r.started_at).unwrap_or_else(OffsetDateTime::now_utc);
    let ended = instant(&r.ended_at).unwrap_or(started);
    let windows: Vec<WindowRecord> = r
        .windows
        .iter()
        .map(|w| WindowRecord {
            t_s: w.start_s,
            duration_s: w.duration_s,
            requests: w.requests,
            ok: w.ok,
            dropped: w.dropped,
            late: w.late,
            retries: w.retries,
            stalled: w.stalled,
            rate_requested: w.rate_requested,
            errors: errors(&w.errors),
            latency_ms: latency(&w.latency),
            trusted: w.trusted,
        })
        .collect();
    let phases = r
        .phases
        .iter()
        .map(|p| {
            let mut errs = load::ErrorCounts::default();
            let mut late = 0;
            for w in windows_in(&r.windows, p.start_s, p.end_s) {
                errs.add(&w.errors);
                late += w.late;
            }
            PhaseRecord {
                name: p.name.clone(),
                role: serde_json::to_value(p.role)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                start_s: p.start_s,
                end_s: p.end_s,
                stats: PhaseStats {
                    requests: p.measure.requests,
                    ok: p.measure.ok,
                    dropped: p.measure.dropped,
                    late,
                    rate: p.measure.rate,
                    errors: errors(&errs),
                    error_pct: p.measure.error_pct(),
                    latency_ms: latency(&p.measure.latency),
                    histogram_b64: p.histograms.as_ref().map(|h| h.latency.0.clone()),
                },
            }
        })
        .collect();
    let slos = r
        .slos
        .iter()
        .map(|v| {
            let (metric, comparison) = metric(&v.metric);
            SloRecord {
                name: v.name.clone(),
                metric,
                objective: v.objective.clone(),
                comparison,
                threshold: v.threshold,
                per_phase: v
                    .per_phase
                    .iter()
                    .map(|p| SloPhaseResult {
                        phase: p.phase.clone(),
                        observed: p.observed,
                        passed: p.passed,
                    })
                    .collect(),
                passed: v.passed,
            }
        })
        .collect();
    let services = services(loaded);
    let faults = r
        .faults
        .iter()
        .filter_map(|f| {
            // A fault never injected (the run stopped first) has no place on the timeline;
            // its absence shows in the events.
            Some(FaultRecord {
                name: f.name.clone(),
                kind: f.kind.clone(),
                target: f.target.clone(),
                phase: Some(f.phase.clone()),
                start_s: f.start_s?,
                end_s: f.end_s,
                targets: f.targets.clone(),
                irreversible: f.irreversible,
                reverted: f.reverted,
                detail: f.detail.clone(),
                service: services.get(&f.name).cloned(),
            })
        })
        .collect();
    let events = r
        .events
        .iter()
        .map(|e| Event {
            t_s: e.t_s,
            at: instant(&e.at).unwrap_or(started),
            kind: event_kind(e.kind),
            phase: e.phase.clone(),
            fault: e.fault.clone(),
            fault_kind: e.fault_kind.clone(),
            targets: e.targets.clone(),
            irreversible: e.irreversible,
            message: e.message.clone(),
        })
        .collect();
    let mut j = Journal {
        journal_version: JOURNAL_VERSION,
        run: RunInfo {
            id: r.run_id.clone(),
            scenario_name: s.metadata.name.clone(),
            scenario_file: Some(loaded.file.clone()),
            owner: s.metadata.owner.clone(),
            description: s.metadata.description.clone(),
            hypothesis: s.hypothesis.description.clone(),
            tags: s.metadata.tags.clone(),
            participants: s.participants.clone(),
            started_at: started,
            ended_at: ended,
            gameday_version: env!("CARGO_PKG_VERSION").to_owned(),
            exit_code: r.outcome.exit_code(),
            outcome: outcome(r.outcome),
            abort_reason: r.abort_reason.clone(),
        },
        scenario: redact(serde_json::to_value(s).unwrap_or_default()),
        targets: r
            .targets
            .iter()
            .map(|(name, config)| TargetRecord {
                name: name.clone(),
                kind: Some(name.clone()),
                config: config.clone(),
            })
            .collect(),
        events,
        phases,
        windows,
        slos,
        faults,
        recovery: vec![],
        action_items: s
            .action_items
            .iter()
            .map(|a| ActionItem {
                title: a.title.clone(),
                owner: a.owner.clone(),
                priority: a.priority.clone(),
                due: a.due.clone(),
                source: ActionSource::Scenario,
                detail: None,
            })
            .collect(),
        playbook: s.playbook.as_ref().map(|p| Playbook {
            name: p.name.clone(),
            link: None,
            rto_s: p.rto.as_ref().map(|d| d.secs_f64()),
            steps: p
                .steps
                .iter()
                .enumerate()
                .map(|(i, st)| {
                    // The latest confirmation of the step counts (a correction wins).
                    let c = confirmations.iter().rev().find(|c| c.step == i + 1);
                    PlaybookStep {
                        step: st.step.clone(),
                        owner: st.owner.clone(),
                        confirmed_by: c.map(|c| c.by.clone()),
                        confirmed_at: c.map(|c| c.at),
                    }
                })
                .collect(),
            time_to_recover_s: None,
        }),
        impact_tolerance: s
            .impact_tolerance
            .map(|t| ImpactTolerance {
                error_rate_points: t.error_rate_points,
                p99_ratio: t.p99_ratio,
            })
            .unwrap_or_default(),
        owners: s.owners.clone(),
        impacts: vec![],
    };
    analysis::analyse(&mut j, good_seconds(loaded));
    j
}

/// The `service:` each fault's spec names (`process_kill: { service: backend }`), by the
/// fault's name; kinds that aim at something else (DNS names, pod selectors) have none. Read
/// from the spec's serialized form so that every kind with a `service` field is covered
/// without a line per kind.
fn services(loaded: &Loaded) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    for (pi, ph) in loaded.scenario.phases.iter().enumerate() {
        for (fi, f) in ph.faults.iter().enumerate() {
            let Ok(value) = serde_json::to_value(f) else {
                continue;
            };
            let service = f.kinds().iter().find_map(|kind| {
                value
                    .get(*kind)
                    .and_then(|spec| spec.get("service"))
                    .and_then(|s| s.as_str())
                    .map(str::to_owned)
            });
            if let Some(service) = service {
                out.insert(crate::scenario::validate::fault_label(f, pi, fi), service);
            }
        }
    }
    out
}

/// The scenario as kept in the journal, without the values that commonly hold credentials:
/// every value under an `env` map (a service's environment) or a `headers` map (the load's
/// `Authorization`...) becomes `<redacted>`; the keys stay, so the journal still shows what
/// was set. Regression: a planted `DB_PASSWORD` reached journal.json
/// (`tests/security.rs`).
fn redact(mut v: serde_json::Value) -> serde_json::Value {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    match (k.as_str(), x) {
                        ("env" | "headers", serde_json::Value::Object(vals)) => {
                            for val in vals.values_mut() {
                                *val = serde_json::Value::from("<redacted>");
                            }
                        }
                        (_, x) => walk(x),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}
