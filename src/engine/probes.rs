//! The hypothesis's Kubernetes probes (`workload_ready`, `pod_restarts`), read once a second
//! for the whole run, as LitmusChaos's k8s probes or Chaos Toolkit's steady-state probes do:
//! the load says what users felt, the probes say what the cluster did (a Deployment short of
//! ready replicas, containers crash-looping).
//!
//! Each reading is kept with its time; the verdict per phase is the share of readings that
//! passed, and the objective holds only when every reading in its phases passed. A reading
//! that fails (or cannot be taken) and the one that passes again are events in the journal.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::events::EventLog;
use super::hypothesis::{PhaseResult, PhaseVerdict, SloVerdict};
use crate::observe::metrics::Metrics;
use crate::scenario::model::Slo;
use crate::targets::kubernetes::probe::{self, ProbeReading, RestartBaseline};
use crate::targets::kubernetes::spec::{PodRestartsProbe, WorkloadKind, WorkloadReadyProbe};
use crate::targets::kubernetes::Shared;
use crate::targets::TargetError;

/// How often probes are read.
const INTERVAL: Duration = Duration::from_secs(1);
/// One reading may take this long before it counts as failed: a slow API server must not
/// stretch the interval.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// One reading of one probe.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProbeSample {
    /// The SLO the probe belongs to.
    pub slo: String,
    /// Seconds since the run started.
    pub t_s: f64,
    /// The probe passed.
    pub ok: bool,
    /// What was read (`deployment shop/web: 2/3 ready, need 3`), or why nothing could be.
    pub detail: String,
}

enum Kind {
    Ready(WorkloadReadyProbe),
    Restarts(PodRestartsProbe, RestartBaseline),
}

struct Probe {
    slo: String,
    kind: Kind,
}

/// Whether any SLO of the scenario is a probe.
pub fn any(slos: &[Slo]) -> bool {
    slos.iter().any(|s| !s.is_load_measured())
}

/// Takes the restart baselines (an error here stops the run before anything is injected),
/// then reads every probe once a second until `cancel`; the task returns every reading.
pub async fn start(
    slos: &[Slo],
    shared: Arc<Shared>,
    events: EventLog,
    metrics: Metrics,
    cancel: CancellationToken,
) -> Result<JoinHandle<Vec<ProbeSample>>, TargetError> {
    let mut probes = Vec::new();
    for s in slos {
        if let Some(p) = &s.workload_ready {
            probes.push(Probe {
                slo: s.name.clone(),
                kind: Kind::Ready(p.clone()),
            });
        }
        if let Some(p) = &s.pod_restarts {
            let base = RestartBaseline::take(&shared, p).await?;
            probes.push(Probe {
                slo: s.name.clone(),
                kind: Kind::Restarts(p.clone(), base),
            });
        }
    }
    Ok(tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut failing = vec![false; probes.len()];
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = cancel.cancelled() => break,
            }
            for (i, p) in probes.iter().enumerate() {
                let t_s = events.now_s();
                let reading = match tokio::time::timeout(READ_TIMEOUT, read(&shared, &p.kind)).await
                {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => ProbeReading {
                        ok: false,
                        detail: format!("cannot read: {e}"),
                    },
                    Err(_) => ProbeReading {
                        ok: false,
                        detail: format!("no answer within {READ_TIMEOUT:?}"),
                    },
                };
                metrics.slo_status(&p.slo, reading.ok);
                if reading.ok == failing[i] {
                    failing[i] = !reading.ok;
                    let what = if reading.ok { "holds again" } else { "fails" };
                    events.note(format!(
                        "probe of SLO `{}` {what}: {}",
                        p.slo, reading.detail
                    ));
                }
                samples.push(ProbeSample {
                    slo: p.slo.clone(),
                    t_s,
                    ok: reading.ok,
                    detail: reading.detail,
                });
            }
        }
        samples
    }))
}

async fn read(shared: &Shared, kind: &Kind) -> Result<ProbeReading, TargetError> {
    match kind {
        Kind::Ready(p) => probe::workload_ready(shared, p).await,
        Kind::Restarts(p, base) => base.read(shared, p).await,
    }
}

/// The verdict of a probe SLO: per phase it applies to, the share of readings that passed;
/// it holds when every reading passed (a phase without readings does not hold: nothing
/// showed that it did).
pub fn judge(slo: &Slo, samples: &[ProbeSample], phases: &[PhaseResult]) -> SloVerdict {
    let applies = |phase: &str| slo.phases.is_empty() || slo.phases.iter().any(|p| p == phase);
    let per_phase: Vec<PhaseVerdict> = phases
        .iter()
        .filter(|p| applies(&p.name))
        .map(|p| {
            let readings: Vec<&ProbeSample> = samples
                .iter()
                .filter(|s| s.slo == slo.name && s.t_s >= p.start_s && s.t_s < p.end_s)
                .collect();
            let observed = (!readings.is_empty()).then(|| {
                100.0 * readings.iter().filter(|s| s.ok).count() as f64 / readings.len() as f64
            });
            PhaseVerdict {
                phase: p.name.clone(),
                observed,
                passed: observed.is_some_and(|o| o >= 100.0),
            }
        })
        .collect();
    SloVerdict {
        name: slo.name.clone(),
        metric: "probe_ok_pct".into(),
        objective: describe(slo),
        threshold: 100.0,
        passed: per_phase.iter().all(|p| p.passed),
        per_phase,
    }
}

/// The objective in words, for the report.
fn describe(slo: &Slo) -> String {
    if let Some(p) = &slo.workload_ready {
        let kind = match p.kind {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::Statefulset => "statefulset",
        };
        let need = p
            .min_ready
            .map_or("all desired replicas".to_owned(), |m| format!(">= {m}"));
        return format!(
            "{kind} {}/{} ready replicas {need} at every reading",
            p.namespace, p.name
        );
    }
    if let Some(p) = &slo.pod_restarts {
        return format!(
            "at most {} container restart(s) of the selected pods",
            p.max_restarts
        );
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::hypothesis::PhaseMeasure;
    use crate::scenario::model::PhaseRole;

    fn phase(name: &str, start_s: f64, end_s: f64) -> PhaseResult {
        PhaseResult {
            name: name.into(),
            role: PhaseRole::Chaos,
            start_s,
            end_s,
            measure: PhaseMeasure::default(),
            histograms: None,
        }
    }

    fn sample(t_s: f64, ok: bool) -> ProbeSample {
        ProbeSample {
            slo: "web-ready".into(),
            t_s,
            ok,
            detail: String::new(),
        }
    }

    #[test]
    fn a_phase_holds_only_when_every_reading_passed() {
        let slo: Slo = serde_saphyr::from_str(
            "name: web-ready\nworkload_ready: {kind: deployment, namespace: shop, name: web, min_ready: 2}\n",
        )
        .unwrap();
        let samples: Vec<ProbeSample> = (0..20)
            .map(|t| sample(t as f64, !(12..14).contains(&t)))
            .collect();
        let phases = [
            phase("baseline", 0.0, 10.0),
            phase("chaos", 10.0, 20.0),
            phase("recovery", 20.0, 30.0),
        ];
        let v = judge(&slo, &samples, &phases);
        assert_eq!(v.per_phase[0].observed, Some(100.0));
        assert!(v.per_phase[0].passed);
        assert_eq!(v.per_phase[1].observed, Some(80.0));
        assert!(!v.per_phase[1].passed);
        assert_eq!(v.per_phase[2].observed, None, "no reading: no evidence");
        assert!(!v.passed);
        assert_eq!(
            v.objective,
            "deployment shop/web ready replicas >= 2 at every reading"
        );
    }
}
