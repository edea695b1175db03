//! Request metrics in the Prometheus text format. Kept in-process and small on purpose: a
//! handful of counters does not justify a metrics framework, and recording must cost next to
//! nothing on the request path (no allocation once a route has been seen).

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 13] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Route label for requests that matched no route, so random paths cannot grow the series.
pub const UNMATCHED_ROUTE: &str = "unmatched";

#[derive(Debug)]
pub struct Metrics {
    backend: &'static str,
    started_at: f64,
    routes: Mutex<HashMap<String, RouteStats>>,
}

#[derive(Debug, Default)]
struct RouteStats {
    /// (method, status) → count; a route sees few distinct pairs, so a vector beats a map.
    counts: Vec<(String, u16, u64)>,
    buckets: [u64; BUCKETS.len()],
    sum_seconds: f64,
    count: u64,
}

impl Metrics {
    pub fn new(backend: &'static str) -> Self {
        let started_at = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        Self { backend, started_at, routes: Mutex::new(HashMap::new()) }
    }

    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut routes = self.routes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !routes.contains_key(route) {
            routes.insert(route.to_string(), RouteStats::default());
        }
        let stats = routes.get_mut(route).expect("inserted above");
        match stats.counts.iter_mut().find(|(m, s, _)| m == method && *s == status) {
            Some((_, _, n)) => *n += 1,
            None => stats.counts.push((method.to_string(), status, 1)),
        }
        if let Some(i) = BUCKETS.iter().position(|&le| seconds <= le) {
            stats.buckets[i] += 1;
        }
        stats.sum_seconds += seconds;
        stats.count += 1;
    }

    /// The exposition text served at `/metrics`.
    pub fn render(&self) -> String {
        let routes = self.routes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut names: Vec<&String> = routes.keys().collect();
        names.sort();
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP slipway_build_info Version of the running Slipway and the database it uses.\n");
        out.push_str("# TYPE slipway_build_info gauge\n");
        let _ = writeln!(
            out,
            "slipway_build_info{{version=\"{}\",backend=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            self.backend
        );
        out.push_str("# HELP slipway_process_start_time_seconds Start time of the process, in Unix seconds.\n");
        out.push_str("# TYPE slipway_process_start_time_seconds gauge\n");
        let _ = writeln!(out, "slipway_process_start_time_seconds {}", self.started_at);
        out.push_str(
            "# HELP slipway_http_requests_total HTTP requests answered, by method, route template and status.\n",
        );
        out.push_str("# TYPE slipway_http_requests_total counter\n");
        for name in &names {
            let mut counts: Vec<_> = routes[*name].counts.iter().collect();
            counts.sort();
            for (method, status, n) in counts {
                let _ = writeln!(
                    out,
                    "slipway_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                    escape(method),
                    escape(name)
                );
            }
        }
        out.push_str("# HELP slipway_http_request_duration_seconds Time to answer HTTP requests, by route template.\n");
        out.push_str("# TYPE slipway_http_request_duration_seconds histogram\n");
        for name in &names {
            let stats = &routes[*name];
            let route = escape(name);
            let mut cumulative = 0;
            for (le, n) in BUCKETS.iter().zip(stats.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "slipway_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "slipway_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                stats.count
            );
            let _ =
                writeln!(out, "slipway_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", stats.sum_seconds);
            let _ = writeln!(out, "slipway_http_request_duration_seconds_count{{route=\"{route}\"}} {}", stats.count);
        }
        out
    }
}

/// The database's size now and what the last pruning run reported (rows per table, rows pruned
/// since the first run, when it finished), appended to the exposition text. Every replica shows
/// the same figures: the report is kept in the database by the run that made it.
pub fn render_retention(
    out: &mut String,
    database_bytes: Option<i64>,
    report: Option<&slipway_jobs::retention::Report>,
) {
    if let Some(bytes) = database_bytes {
        out.push_str("# HELP slipway_database_size_bytes Size of Slipway's database.\n");
        out.push_str("# TYPE slipway_database_size_bytes gauge\n");
        let _ = writeln!(out, "slipway_database_size_bytes {bytes}");
    }
    let Some(report) = report else { return };
    out.push_str("# HELP slipway_table_rows Rows in each table that grows with use, after the last pruning run.\n");
    out.push_str("# TYPE slipway_table_rows gauge\n");
    for (table, n) in &report.rows {
        let _ = writeln!(out, "slipway_table_rows{{table=\"{}\"}} {n}", escape(table));
    }
    out.push_str("# HELP slipway_pruned_rows_total Rows deleted by the pruning job, by retention rule.\n");
    out.push_str("# TYPE slipway_pruned_rows_total counter\n");
    for (rule, n) in &report.pruned_total {
        let _ = writeln!(out, "slipway_pruned_rows_total{{rule=\"{}\"}} {n}", escape(rule));
    }
    if let Some(at) = report.finished_at {
        out.push_str("# HELP slipway_prune_last_run_timestamp_seconds When the last pruning run finished.\n");
        out.push_str("# TYPE slipway_prune_last_run_timestamp_seconds gauge\n");
        let _ = writeln!(out, "slipway_prune_last_run_timestamp_seconds {}", at.timestamp());
    }
}

/// Escapes a label value as the text format requires.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_histograms_per_route() {
        let m = Metrics::new("sqlite");
        m.observe("GET", "/healthz", 200, Duration::from_micros(200));
        m.observe("GET", "/healthz", 200, Duration::from_millis(3));
        m.observe("POST", "/healthz", 405, Duration::from_millis(20));
        let text = m.render();
        assert!(text.contains("slipway_build_info{version=\""), "{text}");
        assert!(text.contains("backend=\"sqlite\"} 1"));
        assert!(text.contains("slipway_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2"));
        assert!(text.contains("slipway_http_requests_total{method=\"POST\",route=\"/healthz\",status=\"405\"} 1"));
        assert!(text.contains("slipway_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.0005\"} 1"));
        assert!(text.contains("slipway_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.005\"} 2"));
        assert!(text.contains("slipway_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"} 3"));
        assert!(text.contains("slipway_http_request_duration_seconds_count{route=\"/healthz\"} 3"));
    }

    #[test]
    fn retention_figures_are_rendered() {
        let report = slipway_jobs::retention::Report {
            finished_at: Some(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap()),
            pruned: vec![("audit_events".into(), 3)],
            pruned_total: vec![("audit_events".into(), 42), ("tokens".into(), 0)],
            rows: vec![("audit_events".into(), 7)],
            database_bytes: 4096,
        };
        let mut text = String::new();
        render_retention(&mut text, Some(8192), Some(&report));
        assert!(text.contains("slipway_database_size_bytes 8192\n"), "{text}");
        assert!(text.contains("slipway_table_rows{table=\"audit_events\"} 7\n"), "{text}");
        assert!(text.contains("slipway_pruned_rows_total{rule=\"audit_events\"} 42\n"), "{text}");
        assert!(text.contains("slipway_pruned_rows_total{rule=\"tokens\"} 0\n"), "{text}");
        assert!(text.contains("slipway_prune_last_run_timestamp_seconds 1700000000\n"), "{text}");
        let mut before_any_run = String::new();
        render_retention(&mut before_any_run, Some(1), None);
        assert!(!before_any_run.contains("slipway_table_rows"), "{before_any_run}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
