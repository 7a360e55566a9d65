//! Prometheus text exposition (format 0.0.4), written by hand: families
//! grouped, HELP and TYPE once each, label values escaped, histograms with
//! cumulative `le` buckets, `+Inf`, `_sum` and `_count`.

use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

struct Family {
    name: String,
    help: String,
    kind: Kind,
    lines: Vec<String>,
}

/// Collects samples by family, renders them grouped.
#[derive(Default)]
pub struct Exposition {
    families: Vec<Family>,
}

/// Escapes a label value (`\`, `"` and newline).
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(l: &[(&str, &str)]) -> String {
    if l.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = l
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    fn family(&mut self, name: &str, help: &str, kind: Kind) -> &mut Family {
        let i = match self.families.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.families.push(Family {
                    name: name.to_owned(),
                    help: help.to_owned(),
                    kind,
                    lines: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        &mut self.families[i]
    }

    /// A family with no samples yet still gets HELP and TYPE (so rules can
    /// refer to it before the first event).
    pub fn declare(&mut self, name: &str, help: &str, kind: Kind) {
        self.family(name, help, kind);
    }

    pub fn gauge(&mut self, name: &str, help: &str, l: &[(&str, &str)], v: f64) {
        let line = format!("{name}{} {}", labels(l), num(v));
        self.family(name, help, Kind::Gauge).lines.push(line);
    }

    /// `name` must end in `_total`.
    pub fn counter(&mut self, name: &str, help: &str, l: &[(&str, &str)], v: f64) {
        debug_assert!(name.ends_with("_total"), "{name}");
        let line = format!("{name}{} {}", labels(l), num(v));
        self.family(name, help, Kind::Counter).lines.push(line);
    }

    /// A histogram from per-bucket (non-cumulative) counts with their upper
    /// bounds (`None` for the open last bucket, folded into `+Inf`).
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        l: &[(&str, &str)],
        buckets: &[(Option<f64>, u64)],
        sum: f64,
    ) {
        let mut lines = Vec::new();
        let mut cum = 0u64;
        for &(le, n) in buckets {
            cum += n;
            if let Some(le) = le {
                let mut ls: Vec<(&str, &str)> = l.to_vec();
                let les = num(le);
                ls.push(("le", &les));
                lines.push(format!("{name}_bucket{} {cum}", labels(&ls)));
            }
        }
        let mut ls: Vec<(&str, &str)> = l.to_vec();
        ls.push(("le", "+Inf"));
        lines.push(format!("{name}_bucket{} {cum}", labels(&ls)));
        lines.push(format!("{name}_sum{} {}", labels(l), num(sum)));
        lines.push(format!("{name}_count{} {cum}", labels(l)));
        self.family(name, help, Kind::Histogram).lines.extend(lines);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.families {
            let _ = writeln!(out, "# HELP {} {}", f.name, f.help.replace('\n', " "));
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.as_str());
            for l in &f.lines {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_grouped_families_and_histograms() {
        let mut e = Exposition::new();
        e.gauge("zramctl_x_bytes", "X.", &[("device", "zram0")], 1.5);
        e.counter("zramctl_y_total", "Y.", &[], 3.0);
        e.gauge("zramctl_x_bytes", "X.", &[("device", "a\"b")], 2.0);
        e.histogram(
            "zramctl_lat_seconds",
            "L.",
            &[("op", "write")],
            &[(Some(0.001), 2), (Some(0.002), 0), (None, 1)],
            0.01,
        );
        e.declare("zramctl_empty_total", "E.", Kind::Counter);
        assert_eq!(
            e.render(),
            "# HELP zramctl_x_bytes X.\n# TYPE zramctl_x_bytes gauge\n\
             zramctl_x_bytes{device=\"zram0\"} 1.5\nzramctl_x_bytes{device=\"a\\\"b\"} 2\n\
             # HELP zramctl_y_total Y.\n# TYPE zramctl_y_total counter\nzramctl_y_total 3\n\
             # HELP zramctl_lat_seconds L.\n# TYPE zramctl_lat_seconds histogram\n\
             zramctl_lat_seconds_bucket{op=\"write\",le=\"0.001\"} 2\n\
             zramctl_lat_seconds_bucket{op=\"write\",le=\"0.002\"} 2\n\
             zramctl_lat_seconds_bucket{op=\"write\",le=\"+Inf\"} 3\n\
             zramctl_lat_seconds_sum{op=\"write\"} 0.01\nzramctl_lat_seconds_count{op=\"write\"} 3\n\
             # HELP zramctl_empty_total E.\n# TYPE zramctl_empty_total counter\n"
        );
    }
}
