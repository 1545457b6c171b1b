//! `report.html`: one self-contained page (no script, no font, no network) with the verdict
//! on top, SVG charts of latency percentiles, error rate and throughput over time (fault
//! windows shaded, phases labelled, SLO thresholds drawn), each phase's latency distribution
//! from its HdrHistogram, a sparkline per fault beside what users felt, and the same tables as
//! the Markdown report.
//!
//! HTML is assembled with `write!` and every piece of journal text goes through
//! `html_escape`; the page is static, so a template engine would only add a dependency.

use std::fmt::Write as _;

use html_escape::encode_text as text;

use super::analysis::{fmt_num, fmt_value, phase_histogram, rfc3339, Change, RunComparison};
use super::journal::{ActionSource, EventKind, Journal, SloMetric};
use super::markdown::{
    delta, findings_suffix, fmt_dur, fmt_offset, impact_cells, impact_preamble, phase_label, r3_r4,
    slo_cell, slo_columns, verdict, IMPACT_HEADERS, PHASE_METRICS,
};
use super::svg::{Chart, Series, Span, Sparkline};

pub(crate) const CSS: &str = r#"
:root{--fg:#1f2328;--muted:#59636e;--bg:#fff;--line:#d1d9e0;--good:#1a7f37;--bad:#cf222e;--goodbg:#dafbe1;--badbg:#ffebe9;--warnbg:#fff8c5}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:#f6f8fa}
main{max-width:1180px;margin:0 auto;padding:20px 24px 40px;background:var(--bg)}
h1{font-size:26px;margin:6px 0}
h2{font-size:20px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:16px;margin:16px 0 6px}
code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#eff1f3;padding:1px 4px;border-radius:4px}
.verdict{border-radius:10px;padding:14px 18px;border:2px solid}
.verdict.good{background:var(--goodbg);border-color:var(--good)}
.verdict.bad{background:var(--badbg);border-color:var(--bad)}
.badge{display:inline-block;font-weight:700;font-size:15px;letter-spacing:.05em;color:#fff;border-radius:6px;padding:2px 10px}
.good .badge{background:var(--good)}.bad .badge{background:var(--bad)}
#verdict{font-size:17px;margin:8px 0 4px}
.meta{color:var(--muted);margin:0;font-size:14px}
table{border-collapse:collapse;width:100%;margin:8px 0;font-size:14px}
th,td{border:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.pass{background:var(--goodbg)}p.pass{color:var(--good)}p.fail{color:var(--bad)}td.fail{background:var(--badbg);font-weight:600}
.delta{color:var(--muted);font-size:12px;display:block}
figure{margin:10px 0 18px}
figcaption{font-weight:600;margin-bottom:2px}
.legend{font-weight:400;color:var(--muted);font-size:13px;margin-left:10px}
.sw{display:inline-block;width:14px;height:3px;vertical-align:middle;margin:0 4px 0 10px}
svg.chart{width:100%;height:auto;display:block}
svg text{font:12px system-ui,sans-serif;fill:#59636e}
svg .grid{stroke:#eaeef2}svg .axis{stroke:#8c959f}
svg .phase{stroke:#8c959f;stroke-dasharray:4 3}
svg .phase-label{font-weight:600;fill:#1f2328}
svg .fault rect{fill:#cf222e;fill-opacity:.12}svg .fault text{fill:#a40e26;font-weight:600}
svg .threshold{stroke:#a40e26;stroke-width:1.5;stroke-dasharray:7 4}
svg .threshold-label{fill:#a40e26;font-weight:600}
svg .series{fill:none;stroke-width:2;stroke-linejoin:round}
svg .marker line{stroke:#cf222e;stroke-width:2}svg .marker text{fill:#a40e26;font-weight:700}
svg .hover{fill:transparent}svg .hover:hover{fill:#0969da;fill-opacity:.08}
.s1{stroke:#0969da;background:#0969da}.s2{stroke:#bc4c00;background:#bc4c00}.s3{stroke:#8250df;background:#8250df}
.s4{stroke:#cf222e;background:#cf222e}.s5{stroke:#1a7f37;background:#1a7f37}.s6{stroke:#6e7781;background:#6e7781}
ol.actions{padding-left:22px}ol.actions li{margin:8px 0}
.fill{display:inline-block;min-width:90px;border-bottom:1px solid var(--fg)}
.prio{font-weight:700}
ul.check{list-style:none;padding-left:4px}ul.check li::before{content:"☐ ";}ul.check li.ok::before{content:"☑ ";color:var(--good)}
.warn{background:var(--warnbg);padding:8px 12px;border-radius:6px}
footer{margin-top:30px;color:var(--muted);font-size:13px}
svg.spark{width:220px;height:44px;display:block}
svg .spark-shade{fill:#cf222e;fill-opacity:.1}svg .spark-bar{fill:#cf222e;fill-opacity:.75}
svg .spark-line{fill:none;stroke:#0969da;stroke-width:1.5}svg .spark-ref{stroke:#59636e;stroke-dasharray:3 2}
.findings{font-weight:700;margin-left:8px}
svg .dot{fill:#fff;stroke-width:2}
a.run-link{white-space:nowrap}
td.regression{background:var(--badbg);color:var(--bad);font-weight:700}
td.numw{text-align:right;font-variant-numeric:tabular-nums}
@media print{body{background:#fff}main{max-width:none}svg .hover{display:none}}
"#;

/// Escapes text and turns `backtick` spans into `<code>`.
pub(crate) fn inline(s: &str) -> String {
    let escaped = text(s).into_owned();
    let mut out = String::new();
    for (i, part) in escaped.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}

pub(crate) fn page_head(title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{CSS}</style></head><body><main>\n",
        text(title)
    )
}

/// The legend of a chart, as HTML next to its caption.
fn legend(series: &[(&str, &str)]) -> String {
    let mut s = String::from("<span class=\"legend\">");
    for (name, class) in series {
        let _ = write!(s, "<span class=\"sw {class}\"></span>{}", text(name));
    }
    s.push_str("</span>");
    s
}

/// Renders the HTML report.
pub fn render_html(j: &Journal) -> String {
    let v = verdict(j);
    let mut h = page_head(&format!("{} · gameday {}", v.label, j.run.scenario_name));
    let _ = write!(
        h,
        "<header class=\"verdict {cls}\"><span class=\"badge\" id=\"verdict-label\">{label}</span>{findings}\
         <h1>Gameday report: {name}</h1><p id=\"verdict\">{sentence}</p>\
         <p class=\"meta\">Run <code>{id}</code> · {start} · {dur} · exit code {code}{owner}</p></header>",
        cls = if v.good { "good" } else { "bad" },
        label = text(v.label),
        findings = findings_suffix(j)
            .map(|f| format!("<span class=\"findings\" id=\"findings\">· {}</span>", text(&f)))
            .unwrap_or_default(),
        name = text(&j.run.scenario_name),
        sentence = inline(&v.sentence),
        id = text(&j.run.id),
        start = text(&rfc3339(j.run.started_at)),
        dur = fmt_dur(j.duration_s()),
        code = j.run.exit_code,
        owner = j
            .run
            .owner
            .as_deref()
            .map(|o| format!(" · owner {}", text(o)))
            .unwrap_or_default()
    );

    // Hypothesis and SLOs.
    h.push_str("<section id=\"hypothesis\"><h2>Hypothesis</h2>");
    if let Some(d) = &j.run.description {
        let _ = write!(h, "<p>{}</p>", inline(d));
    }
    match &j.run.hypothesis {
        Some(hy) => {
            let _ = write!(h, "<blockquote><p>{}</p></blockquote>", inline(hy));
        }
        None => h.push_str(
            "<p><em>The scenario states no hypothesis in words; its SLOs follow.</em></p>",
        ),
    }
    if !j.slos.is_empty() {
        let cols = slo_columns(j);
        h.push_str("<table id=\"slo-table\"><tr><th>SLO</th><th>objective</th>");
        for (_, label) in &cols {
            let _ = write!(h, "<th>{}</th>", text(label));
        }
        h.push_str("<th>verdict</th></tr>");
        for s in &j.slos {
            let _ = write!(
                h,
                "<tr><td><code>{}</code> {}</td><td>{}</td>",
                text(&s.name),
                s.metric.label(),
                text(&s.objective)
            );
            for (name, _) in &cols {
                match slo_cell(j, s, name) {
                    Some((ok, t)) => {
                        let (val, d) = match t.split_once(" (") {
                            Some((a, b)) => (a.to_owned(), b.trim_end_matches(')').to_owned()),
                            None => (t, String::new()),
                        };
                        let _ = write!(
                            h,
                            "<td class=\"num {}\">{} {}<span class=\"delta\">{}</span></td>",
                            if ok { "pass" } else { "fail" },
                            if ok { "✔" } else { "✘" },
                            text(&val),
                            text(&d)
                        );
                    }
                    None => h.push_str("<td>–</td>"),
                }
            }
            let _ = write!(
                h,
                "<td class=\"{}\">{}</td></tr>",
                if s.passed { "pass" } else { "fail" },
                if s.passed { "met" } else { "BROKEN" }
            );
        }
        h.push_str("</table><p class=\"meta\">Small print under a value: change from the baseline phase.</p>");
    }
    h.push_str("</section>\n");

    // Charts.
    h.push_str("<section id=\"charts\"><h2>Over time</h2>");
    if j.windows.is_empty() {
        h.push_str("<p><em>No load was measured.</em></p>");
    } else {
        h.push_str(&time_charts(j));
    }
    let dist = distribution_chart(j);
    if !dist.is_empty() {
        h.push_str(&dist);
    }
    h.push_str("</section>\n");

    // Phases side by side.
    if !j.phases.is_empty() {
        h.push_str("<section id=\"phases\"><h2>Load by phase</h2><table><tr><th></th>");
        for p in &j.phases {
            let _ = write!(
                h,
                "<th>{} <small>(t+{}s → t+{}s)</small></th>",
                text(&phase_label(p)),
                p.start_s.round(),
                p.end_s.round()
            );
        }
        h.push_str("</tr>");
        let base = j.baseline();
        for (label, unit, get) in PHASE_METRICS {
            let _ = write!(h, "<tr><th>{label}</th>");
            for p in &j.phases {
                match get(p) {
                    Some(v) => {
                        let d = base
                            .filter(|b| b.name != p.name && !unit.is_empty())
                            .and_then(get)
                            .map(|b| delta(v, b, unit))
                            .unwrap_or_default();
                        let _ = write!(
                            h,
                            "<td class=\"num\">{}<span class=\"delta\">{}</span></td>",
                            text(&fmt_value(v, unit)),
                            text(&d)
                        );
                    }
                    None => h.push_str("<td>–</td>"),
                }
            }
            h.push_str("</tr>");
        }
        h.push_str("<tr><th>errors by class</th>");
        for p in &j.phases {
            let classes: Vec<String> = p
                .stats
                .errors
                .classes()
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(c, n)| format!("{c}: {n}"))
                .collect();
            let _ = write!(
                h,
                "<td>{}</td>",
                if classes.is_empty() {
                    "none".to_owned()
                } else {
                    text(&classes.join(", ")).into_owned()
                }
            );
        }
        h.push_str("</tr></table></section>\n");
    }

    // Timeline.
    h.push_str("<section id=\"timeline\"><h2>Fault timeline</h2>");
    if j.faults.is_empty() {
        h.push_str("<p><em>No fault was injected.</em></p>");
    } else {
        h.push_str("<table><tr><th>fault</th><th>kind</th><th>target</th><th>hit</th><th>injected</th><th>ended</th><th>lasted</th><th>reverted</th></tr>");
        for f in &j.faults {
            let (cls, rev) = if f.irreversible {
                ("", "irreversible (nothing to undo)")
            } else if f.reverted {
                ("pass", "yes")
            } else {
                ("fail", "NO: run gameday recover")
            };
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"{cls}\">{rev}</td></tr>",
                text(&f.name),
                text(&f.kind_label()),
                text(&f.target),
                text(&f.targets.join(", ")),
                fmt_offset(f.start_s),
                f.end_s.map(fmt_offset).unwrap_or_else(|| "never".into()),
                f.end_s.map(|e| fmt_dur(e - f.start_s)).unwrap_or_else(|| "–".into()),
            );
        }
        h.push_str("</table>");
    }
    if !j.events.is_empty() {
        h.push_str("<details><summary>Every event</summary><table><tr><th>t</th><th>event</th><th>phase</th><th>fault</th><th>targets</th><th>message</th></tr>");
        for e in &j.events {
            let _ = write!(
                h,
                "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                fmt_offset(e.t_s),
                e.kind.label(),
                text(e.phase.as_deref().unwrap_or("")),
                text(e.fault.as_deref().unwrap_or("")),
                text(&e.targets.join(", ")),
                text(&e.message)
            );
        }
        h.push_str("</table></details>");
    }
    h.push_str("</section>\n");

    // What users felt, per fault.
    if !j.impacts.is_empty() {
        let _ = write!(
            h,
            "<section id=\"impact\"><h2>What users felt, per fault</h2><p>{}</p><table id=\"impact-table\"><tr>",
            inline(&impact_preamble(j))
        );
        for head in IMPACT_HEADERS {
            let _ = write!(h, "<th>{head}</th>");
        }
        h.push_str("<th>per second</th></tr>");
        for i in &j.impacts {
            let c = impact_cells(i);
            let _ = write!(
                h,
                "<tr><td><code>{}</code> {}</td>",
                text(&i.fault),
                text(&i.kind)
            );
            for (k, cell) in c.iter().enumerate().skip(1) {
                let cls = if k == c.len() - 1 {
                    if i.exceeds_tolerance {
                        "fail"
                    } else if i.baseline.is_some() {
                        "pass"
                    } else {
                        ""
                    }
                } else {
                    "numw"
                };
                // The change and the peak go under the value, as in the phase table.
                match cell.split_once(" (") {
                    Some((value, rest)) if k <= 4 => {
                        let rest = format!("({rest}");
                        let _ = write!(
                            h,
                            "<td class=\"{cls}\">{}<span class=\"delta\">{}</span></td>",
                            text(value),
                            text(&rest)
                        );
                    }
                    _ => {
                        let _ = write!(h, "<td class=\"{cls}\">{}</td>", text(cell));
                    }
                }
            }
            let _ = write!(h, "<td>{}</td></tr>", impact_sparkline(j, i));
        }
        h.push_str("</table>");
        if j.findings().next().is_some() {
            h.push_str("<ul>");
            for i in j.findings() {
                let _ = write!(
                    h,
                    "<li><code>{}</code>: {}.</li>",
                    text(&i.fault),
                    text(&i.reasons.join("; "))
                );
            }
            h.push_str("</ul>");
        }
        h.push_str("<p class=\"meta\">Per second: bars are the error rate (0–100%), the line is p99 with the baseline's dashed; the shaded span is the fault's window.</p></section>\n");
    }

    // Recovery.
    h.push_str("<section id=\"recovery\"><h2>Recovery</h2>");
    if j.recovery.is_empty() {
        h.push_str(
            "<p><em>No fault ended during the run, so no recovery time was measured.</em></p>",
        );
    } else {
        let _ = write!(
            h,
            "<p>From a fault's end to the start of {} consecutive seconds back within the SLO.</p><table><tr><th>fault</th><th>SLO</th><th>recovered after</th></tr>",
            j.recovery[0].good_seconds
        );
        for r in &j.recovery {
            let (cls, t) = match (r.recovered_after_s, &r.interrupted_by) {
                (Some(s), _) => ("pass", fmt_dur(s)),
                (None, Some(next)) => (
                    "",
                    format!("not measured: <code>{}</code> started first", text(next)),
                ),
                (None, None) => ("fail", "did not recover in the run".to_owned()),
            };
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td><code>{}</code></td><td class=\"num {cls}\">{t}</td></tr>",
                text(&r.fault),
                text(&r.slo)
            );
        }
        h.push_str("</table>");
    }
    if let Some(pb) = &j.playbook {
        let ok = matches!((pb.time_to_recover_s, pb.rto_s), (Some(t), Some(r)) if t <= r);
        let _ = write!(
            h,
            "<p class=\"{}\"><strong>DR drill, time to recover:</strong> {} against an RTO of {} (playbook <code>{}</code>).</p>",
            if ok { "pass" } else { "fail" },
            pb.time_to_recover_s.map(fmt_dur).unwrap_or_else(|| "not reached".into()),
            pb.rto_s.map(fmt_dur).unwrap_or_else(|| "(none set)".into()),
            text(&pb.name)
        );
    }
    h.push_str("</section>\n");

    // Action items.
    let derived = j
        .action_items
        .iter()
        .filter(|a| a.source == ActionSource::Derived)
        .count();
    let _ = write!(
        h,
        "<section id=\"actions\"><h2>Action items</h2><p>{} items: {} from the scenario, {} derived from what broke or what users felt. Fill in owner and due date in the review.</p><ol class=\"actions\">",
        j.action_items.len(),
        j.action_items.len() - derived,
        derived
    );
    let fill = |v: &Option<String>| match v {
        Some(v) => format!("<strong>{}</strong>", text(v)),
        None => "<span class=\"fill\"></span>".to_owned(),
    };
    for a in &j.action_items {
        let _ = write!(
            h,
            "<li><strong>{}</strong><br><span class=\"prio\">{}</span> · owner {} · due {} · {}",
            inline(&a.title),
            text(a.priority.as_deref().unwrap_or("P?")),
            fill(&a.owner),
            fill(&a.due),
            match a.source {
                ActionSource::Scenario => "from the scenario",
                ActionSource::Derived => "derived",
            }
        );
        if let Some(d) = &a.detail {
            let _ = write!(h, "<br><small>{}</small>", inline(d));
        }
        h.push_str("</li>");
    }
    h.push_str("</ol></section>\n");

    // R-3 / R-4.
    let c = r3_r4(j);
    h.push_str("<section id=\"r3r4\"><h2>R-3 / R-4</h2><h3>R-3: monthly gameday: impact measured, actions defined, whole team involved</h3><ul class=\"check\">");
    for (ok, t) in &c.r3 {
        let _ = write!(
            h,
            "<li class=\"{}\">{}</li>",
            if *ok { "ok" } else { "" },
            inline(t)
        );
    }
    h.push_str("</ul><h3>R-4: disaster-recovery playbooks for key components</h3>");
    match &j.playbook {
        None => h.push_str("<p class=\"warn\">No playbook was exercised by this run. For a DR drill, give the scenario a <code>playbook</code> (name, RTO, steps with owners) and confirm each step as it is done.</p>"),
        Some(pb) => {
            h.push_str("<ul class=\"check\">");
            for (ok, t) in &c.r4 {
                let _ = write!(h, "<li class=\"{}\">{}</li>", if *ok { "ok" } else { "" }, inline(t));
            }
            h.push_str("</ul><table><tr><th>#</th><th>step</th><th>owner</th><th>confirmed by</th><th>confirmed at</th></tr>");
            for (i, s) in pb.steps.iter().enumerate() {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                    i + 1,
                    text(&s.step),
                    text(s.owner.as_deref().unwrap_or("")),
                    if s.confirmed_by.is_some() { "pass" } else { "fail" },
                    text(s.confirmed_by.as_deref().unwrap_or("not confirmed")),
                    s.confirmed_at.map(rfc3339).unwrap_or_else(|| "–".into())
                );
            }
            h.push_str("</table>");
        }
    }
    h.push_str("</section>\n");

    // Measurement and targets.
    let _ = write!(
        h,
        "<section id=\"measurement\"><h2>Measurement</h2><p>{}</p>",
        inline(&super::markdown::measurement(j))
    );
    if !j.targets.is_empty() {
        h.push_str("<h3>Targets</h3><ul>");
        for t in &j.targets {
            let _ = write!(
                h,
                "<li><code>{}</code> {}: <code>{}</code></li>",
                text(&t.name),
                text(t.kind.as_deref().unwrap_or("")),
                text(&t.config.to_string())
            );
        }
        h.push_str("</ul>");
    }
    h.push_str("</section>\n");
    let _ = write!(
        h,
        "<footer>Rendered by gameday {} from <code>journal.json</code> (journal_version {}). Re-render with <code>gameday report journal.json</code>.</footer></main></body></html>",
        env!("CARGO_PKG_VERSION"),
        j.journal_version
    );
    h
}

/// One fault's seconds as a sparkline: its window shaded, with a few seconds either side.
fn impact_sparkline(j: &Journal, i: &super::journal::FaultImpact) -> String {
    let lead = 3.0;
    let (a, b) = (i.window_start_s - lead, i.window_end_s + lead);
    let ws: Vec<_> = j
        .windows
        .iter()
        .filter(|w| w.end_s() > a && w.t_s < b)
        .collect();
    Sparkline {
        title: format!(
            "{}: errors and p99 per second, t={:.0}s to t={:.0}s",
            i.fault, a, b
        ),
        x_range: (a, b),
        shade: (i.window_start_s, i.window_end_s),
        bars: ws
            .iter()
            .map(|w| (w.t_s, w.duration_s, w.error_pct().unwrap_or(0.0)))
            .collect(),
        line: ws
            .iter()
            .map(|w| (w.t_s + w.duration_s / 2.0, w.latency_ms.map(|l| l.p99)))
            .collect(),
        line_ref: i.baseline.as_ref().and_then(|b| b.p99_ms),
    }
    .render()
}

/// Phases and faults as chart spans.
fn spans(j: &Journal, x_end: f64) -> (Vec<Span>, Vec<Span>) {
    let phases = j
        .phases
        .iter()
        .map(|p| Span {
            start: p.start_s,
            end: p.end_s,
            label: p.name.clone(),
        })
        .collect();
    let faults = j
        .faults
        .iter()
        .map(|f| Span {
            start: f.start_s,
            end: f.end_s.unwrap_or(x_end).max(f.start_s + 0.5),
            label: format!("{} ({})", f.name, f.kind),
        })
        .collect();
    (phases, faults)
}

/// Events that deserve a line on the time charts: stops, signals, failed reverts, errors.
fn markers(j: &Journal) -> Vec<(f64, String)> {
    j.events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::StopCondition
                    | EventKind::Signal
                    | EventKind::RevertFailed
                    | EventKind::Error
            )
        })
        .map(|e| {
            let what = e
                .fault
                .as_deref()
                .map(|f| format!(" {f}"))
                .unwrap_or_default();
            (e.t_s, format!("{}{what}: {}", e.kind.label(), e.message))
        })
        .collect()
}

/// Threshold lines for the SLOs of the given metrics.
fn thresholds(j: &Journal, metrics: &[SloMetric]) -> Vec<(f64, String)> {
    j.slos
        .iter()
        .filter(|s| metrics.contains(&s.metric))
        .map(|s| (s.threshold, format!("SLO {}: {}", s.name, s.objective)))
        .collect()
}

/// Latency, error rate and throughput over time.
fn time_charts(j: &Journal) -> String {
    let x_end = j
        .windows
        .last()
        .map(|w| w.end_s())
        .unwrap_or(0.0)
        .max(j.phases.iter().map(|p| p.end_s).fold(0.0, f64::max));
    let x_range = (0.0, x_end.max(1.0));
    // Points sit in the middle of their window.
    let pts = |f: &dyn Fn(&super::WindowRecord) -> Option<f64>| -> Vec<(f64, Option<f64>)> {
        j.windows
            .iter()
            .map(|w| (w.t_s + w.duration_s / 2.0, f(w)))
            .collect()
    };
    let hovers: Vec<(f64, f64, String)> = j
        .windows
        .iter()
        .map(|w| {
            let lat = w
                .latency_ms
                .map(|l| {
                    format!(
                        "p50 {} · p90 {} · p99 {} · p99.9 {} · max {}",
                        fmt_value(l.p50, "ms"),
                        fmt_value(l.p90, "ms"),
                        fmt_value(l.p99, "ms"),
                        fmt_value(l.p999, "ms"),
                        fmt_value(l.max, "ms")
                    )
                })
                .unwrap_or_else(|| "no successful request".into());
            (
                w.t_s,
                w.end_s(),
                format!(
                    "t+{}s: {} requests, {} errors ({}), {} dropped{}\n{lat}",
                    fmt_num(w.t_s),
                    w.requests,
                    w.errors.total(),
                    fmt_value(w.error_pct().unwrap_or(0.0), "%"),
                    w.dropped,
                    if w.trusted { "" } else { " · UNTRUSTED" }
                ),
            )
        })
        .collect();
    let (phases, faults) = spans(j, x_end);
    let mut out = String::new();

    let lat_series = vec![
        Series {
            name: "p50".into(),
            class: "s1",
            points: pts(&|w| w.latency_ms.map(|l| l.p50)),
        },
        Series {
            name: "p99".into(),
            class: "s2",
            points: pts(&|w| w.latency_ms.map(|l| l.p99)),
        },
        Series {
            name: "p99.9".into(),
            class: "s3",
            points: pts(&|w| w.latency_ms.map(|l| l.p999)),
        },
    ];
    let chart = Chart {
        id: "chart-latency".into(),
        title: "Latency percentiles per second (ms), fault windows shaded".into(),
        y_unit: " ms".into(),
        x_range,
        x_ticks: vec![],
        x_caption: "seconds since start".into(),
        series: lat_series,
        faults,
        phases,
        thresholds: thresholds(
            j,
            &[
                SloMetric::LatencyP50Ms,
                SloMetric::LatencyP90Ms,
                SloMetric::LatencyP99Ms,
                SloMetric::LatencyP999Ms,
            ],
        ),
        hovers,
        markers: markers(j),
        y_cap: None,
        dots: false,
    };
    let _ = write!(
        out,
        "<figure><figcaption>Latency over time{}</figcaption>{}</figure>",
        legend(&[("p50", "s1"), ("p99", "s2"), ("p99.9", "s3")]),
        chart.render()
    );

    let (phases, faults) = spans(j, x_end);
    let chart = Chart {
        id: "chart-errors".into(),
        title: "Error rate per second (%), fault windows shaded".into(),
        y_unit: "%".into(),
        x_range,
        x_ticks: vec![],
        x_caption: "seconds since start".into(),
        series: vec![Series {
            name: "error rate".into(),
            class: "s4",
            points: pts(&|w| w.error_pct()),
        }],
        faults,
        phases,
        thresholds: thresholds(j, &[SloMetric::ErrorRatePct]),
        hovers: vec![],
        markers: markers(j),
        y_cap: Some(100.0),
        dots: false,
    };
    let _ = write!(
        out,
        "<figure><figcaption>Error rate over time{}</figcaption>{}</figure>",
        legend(&[("failed or dropped, % of attempted requests", "s4")]),
        chart.render()
    );

    let (phases, faults) = spans(j, x_end);
    let chart = Chart {
        id: "chart-throughput".into(),
        title: "Requests per second: requested, completed, succeeded, dropped by the generator"
            .into(),
        y_unit: String::new(),
        x_range,
        x_ticks: vec![],
        x_caption: "seconds since start".into(),
        series: vec![
            Series {
                name: "requested".into(),
                class: "s1",
                points: pts(&|w| w.rate_requested),
            },
            Series {
                name: "completed".into(),
                class: "s6",
                points: pts(&|w| w.throughput_rps()),
            },
            Series {
                name: "succeeded".into(),
                class: "s5",
                points: pts(&|w| w.per_second(w.ok)),
            },
            Series {
                name: "dropped".into(),
                class: "s3",
                points: pts(&|w| w.per_second(w.dropped)),
            },
        ],
        faults,
        phases,
        thresholds: thresholds(j, &[SloMetric::ThroughputRps]),
        hovers: vec![],
        markers: markers(j),
        y_cap: None,
        dots: false,
    };
    let _ = write!(
        out,
        "<figure><figcaption>Throughput (req/s){}</figcaption>{}</figure>",
        legend(&[
            ("requested", "s1"),
            ("completed", "s6"),
            ("succeeded", "s5"),
            ("dropped", "s3"),
        ]),
        chart.render()
    );
    out
}

/// Each phase's latency by percentile, from its serialized HdrHistogram, on a "nines"
/// axis (p50, p90, p99, p99.9...) so the tail is as readable as the median.
fn distribution_chart(j: &Journal) -> String {
    const CLASSES: [&str; 6] = ["s1", "s4", "s5", "s3", "s2", "s6"];
    let mut series = Vec::new();
    let mut names = Vec::new();
    for (i, p) in j.phases.iter().enumerate() {
        let Some(hist) = phase_histogram(&p.stats) else {
            continue;
        };
        if hist.is_empty() {
            continue;
        }
        // Beyond log10(count) nines there is no sample left to tell percentiles apart.
        let max_nines = (hist.len() as f64).log10().min(4.0);
        let mut points = Vec::new();
        let mut x = 0.0;
        while x <= max_nines + 1e-9 {
            let q = 1.0 - 10f64.powf(-x);
            points.push((x, Some(hist.value_at_quantile(q) as f64 / 1000.0)));
            x += 0.05;
        }
        let class = CLASSES[i % CLASSES.len()];
        names.push((p.name.clone(), class));
        series.push(Series {
            name: p.name.clone(),
            class,
            points,
        });
    }
    if series.is_empty() {
        return String::new();
    }
    let chart = Chart {
        id: "chart-distribution".into(),
        title: "Latency by percentile in each phase (ms)".into(),
        y_unit: " ms".into(),
        x_range: (0.0, 4.0),
        x_ticks: vec![
            (0.0, "min".into()),
            (2f64.log10(), "p50".into()),
            (1.0, "p90".into()),
            (2.0, "p99".into()),
            (3.0, "p99.9".into()),
            (4.0, "p99.99".into()),
        ],
        x_caption: "percentile".into(),
        series,
        faults: vec![],
        phases: vec![],
        thresholds: vec![],
        hovers: vec![],
        markers: vec![],
        y_cap: None,
        dots: false,
    };
    let legend_items: Vec<(&str, &str)> = names.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    format!(
        "<figure><figcaption>Latency distribution by phase{}</figcaption>{}</figure>",
        legend(&legend_items),
        chart.render()
    )
}

/// Renders a comparison of two runs as a self-contained HTML page.
pub fn render_compare_html(c: &RunComparison) -> String {
    let regressions = c.regressions().count();
    let mut h = page_head(&format!("gameday comparison {}", c.scenario));
    let _ = write!(
        h,
        "<header class=\"verdict {}\"><span class=\"badge\" id=\"verdict-label\">{}</span><h1>Gameday comparison: {}</h1>\
         <p id=\"verdict\">{} regressions, {} improvements. Older: {}; newer: {}. Changes within {}% count as unchanged.</p></header>",
        if regressions > 0 { "bad" } else { "good" },
        if regressions > 0 { "REGRESSED" } else { "NO REGRESSION" },
        text(&c.scenario),
        regressions,
        c.improvements().count(),
        text(&c.old_run),
        text(&c.new_run),
        c.tolerance_pct
    );
    if let Some(m) = &c.scenario_mismatch {
        let _ = write!(
            h,
            "<p class=\"warn\">{}; rows are matched by name.</p>",
            inline(m)
        );
    }
    h.push_str("<table><tr><th>SLO</th><th>phase</th><th>objective</th><th>older</th><th>newer</th><th>change</th></tr>");
    for r in &c.rows {
        let show = |v: Option<f64>, p: Option<bool>| match (v, p) {
            (_, None) => "–".to_owned(),
            (Some(v), Some(p)) => {
                format!("{} {}", if p { "✔" } else { "✘" }, fmt_value(v, &r.unit))
            }
            (None, Some(p)) => format!("{} {}", if p { "✔" } else { "✘" }, r.missing_value()),
        };
        let cls = match r.change {
            Change::Regression => "fail",
            Change::Improvement => "pass",
            _ => "",
        };
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"{cls}\">{}</td></tr>",
            text(&r.slo),
            text(&r.phase),
            text(&r.objective),
            text(&show(r.old, r.old_passed)),
            text(&show(r.new, r.new_passed)),
            r.change.label()
        );
    }
    h.push_str("</table></main></body></html>\n");
    h
}
