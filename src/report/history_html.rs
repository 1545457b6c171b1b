//! The history page (`gameday history --html FILE`): one self-contained HTML page, styled
//! like `report.html` (same CSS, no script, no network), with a section per scenario: the
//! resilience score and each SLO's key value over the runs as SVG line charts (the
//! report's own [`Chart`]), and a table of the runs, each linking to its `report.html`, with
//! regressions flagged. Drawn from a [`History`], so it agrees with the table and `--json`.

use std::fmt::Write as _;

use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use super::analysis::fmt_num;
use super::history::{fmt_score, held, scenarios, History, HistoryRow};
use super::html::page_head;
use super::slug;
use super::svg::{Chart, Series};

/// Renders the page. `link` turns a run folder into the href of its `report.html`
/// (relative to where the page is written), or `None` when the run has no report.
pub fn render_history_html(h: &History, link: &dyn Fn(&HistoryRow) -> Option<String>) -> String {
    let regressed = h.runs.iter().filter(|r| !r.regressions.is_empty()).count();
    let mut p = page_head("gameday history");
    let _ = write!(
        p,
        "<header class=\"verdict {}\"><span class=\"badge\" id=\"verdict-label\">{}</span>\
         <h1>Gameday history</h1><p id=\"verdict\">{} runs of {} scenarios; {} regressed \
         against the previous run of their scenario; {} unreadable.</p>\
         <p class=\"meta\">Resilience score: the share of SLO checks (one SLO in one phase) \
         met, 0–100, each weighing 1.</p></header>",
        if regressed > 0 || !h.unreadable.is_empty() {
            "bad"
        } else {
            "good"
        },
        if regressed > 0 {
            "REGRESSED"
        } else {
            "NO REGRESSION"
        },
        h.runs.len(),
        scenarios(h).len(),
        regressed,
        h.unreadable.len()
    );
    if !h.unreadable.is_empty() {
        p.push_str("<h2>Unreadable runs</h2><ul id=\"unreadable\">");
        for u in &h.unreadable {
            let _ = write!(
                p,
                "<li class=\"warn\"><code>{}</code>: {}</li>",
                text(&u.path),
                text(&u.error)
            );
        }
        p.push_str("</ul>");
    }
    for name in scenarios(h) {
        let runs: Vec<&HistoryRow> = h.runs.iter().filter(|r| r.scenario == name).collect();
        section(&mut p, name, &runs, link);
    }
    p.push_str("<footer>Written by gameday history.</footer></main></body></html>\n");
    p
}

/// A chart over the runs of one scenario: x is the run's index, labelled with its date.
fn trend_chart(id: String, title: String, runs: &[&HistoryRow], series: Vec<Series>) -> Chart {
    let markers = runs
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.regressions.is_empty())
        .map(|(i, _)| (i as f64, "regression".to_owned()))
        .collect();
    Chart {
        id,
        title,
        y_unit: String::new(),
        x_range: (-0.5, runs.len() as f64 - 0.5),
        x_ticks: runs
            .iter()
            .enumerate()
            .map(|(i, r)| (i as f64, r.started_at.get(..10).unwrap_or("").to_owned()))
            .collect(),
        x_caption: "run (start date)".to_owned(),
        series,
        faults: vec![],
        phases: vec![],
        thresholds: vec![],
        hovers: runs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (
                    i as f64 - 0.5,
                    i as f64 + 0.5,
                    format!("{} {} score {}", r.run_id, r.verdict, fmt_score(r.score)),
                )
            })
            .collect(),
        markers,
        y_cap: None,
        dots: true,
    }
}

fn section(
    p: &mut String,
    name: &str,
    runs: &[&HistoryRow],
    link: &dyn Fn(&HistoryRow) -> Option<String>,
) {
    let id = slug(name);
    let _ = write!(
        p,
        "<section class=\"scenario\" id=\"scenario-{}\"><h2>{}</h2>",
        attr(&id),
        text(name)
    );
    let mut score = trend_chart(
        format!("trend-score-{id}"),
        format!("{name}: resilience score per run"),
        runs,
        vec![Series {
            name: "resilience score".to_owned(),
            class: "s1",
            points: runs
                .iter()
                .enumerate()
                .map(|(i, r)| (i as f64, r.score))
                .collect(),
        }],
    );
    score.y_unit = "%".to_owned();
    score.y_cap = Some(100.0);
    score.thresholds = vec![(100.0, "every check met".to_owned())];
    let _ = write!(
        p,
        "<figure><figcaption>Resilience score</figcaption>{}</figure>",
        score.render()
    );
    // One chart per SLO: each has its own unit and threshold.
    let mut slo_names: Vec<&str> = Vec::new();
    for r in runs {
        for s in &r.slos {
            if !slo_names.contains(&s.name.as_str()) {
                slo_names.push(&s.name);
            }
        }
    }
    for (k, slo) in slo_names.iter().enumerate() {
        let points = runs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (
                    i as f64,
                    r.slos.iter().find(|s| s.name == *slo).and_then(|s| s.value),
                )
            })
            .collect();
        let last = runs
            .iter()
            .rev()
            .find_map(|r| r.slos.iter().find(|s| s.name == *slo));
        let mut c = trend_chart(
            format!("trend-slo-{id}-{}", slug(slo)),
            format!("{name}: {slo}, worst phase, per run"),
            runs,
            vec![Series {
                name: slo.to_string(),
                class: ["s2", "s3", "s5", "s6"][k % 4],
                points,
            }],
        );
        if let Some(s) = last {
            c.thresholds = vec![(s.threshold, format!("objective {}", s.objective))];
        }
        let _ = write!(
            p,
            "<figure><figcaption><code>{}</code> (worst phase){}</figcaption>{}</figure>",
            text(slo),
            last.map(|s| format!(" objective {}", text(&s.objective)))
                .unwrap_or_default(),
            c.render()
        );
    }
    p.push_str(
        "<table><tr><th>date</th><th>run</th><th>verdict</th><th>score</th><th>checks met</th>\
         <th>findings</th><th>key SLO values (worst phase)</th><th>regression</th></tr>",
    );
    for r in runs {
        let run = match link(r) {
            Some(href) => format!(
                "<a class=\"run-link\" href=\"{}\">{}</a>",
                attr(&href),
                text(&r.run_id)
            ),
            None => text(&r.run_id).into_owned(),
        };
        let slos: Vec<String> = r
            .slos
            .iter()
            .map(|s| {
                format!(
                    "<span class=\"{}\">{} <code>{}</code> {} ({})</span>",
                    if s.passed { "pass" } else { "fail" },
                    if s.passed { "✔" } else { "✘" },
                    text(&s.name),
                    s.value.map_or_else(|| "–".to_owned(), fmt_num),
                    text(&s.objective)
                )
            })
            .collect();
        let regression = if r.regressions.is_empty() {
            "<td></td>".to_owned()
        } else {
            format!(
                "<td class=\"regression\">REGRESSION: {}</td>",
                text(&r.regressions.join("; "))
            )
        };
        let _ = write!(
            p,
            "<tr><td>{}</td><td>{run}</td><td class=\"{}\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}/{}</td><td class=\"num\">{}</td><td>{}</td>{regression}</tr>",
            text(&r.started_at),
            if held(&r.verdict) { "pass" } else { "fail" },
            text(&r.verdict),
            fmt_score(r.score),
            r.checks_met,
            r.checks_total,
            r.findings,
            slos.join("<br>"),
        );
    }
    p.push_str("</table></section>");
}
