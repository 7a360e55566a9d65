//! SVG plots for the benchmark report (plotters, SVG backend, no fonts
//! needed: text is left to the SVG viewer).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
];

/// A named series of (x, y) points.
pub type Series = (String, Vec<(f64, f64)>);

fn e<E: std::fmt::Debug>(x: E) -> anyhow::Error {
    anyhow!("plotting: {x:?}")
}

/// Lines with points; x on a log2 axis (batch sizes).
pub fn log2_lines(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<()> {
    let xs = series.iter().flat_map(|s| s.1.iter().map(|p| p.0));
    let x_max = xs.clone().fold(1.0, f64::max);
    let y_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (760, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(e)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0.0..x_max.log2() + 0.2).step(1.0), 0.0..y_max)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|v| format!("{}", 2f64.powf(*v).round()))
        .draw()
        .map_err(e)?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let pts: Vec<(f64, f64)> = pts.iter().map(|&(x, y)| (x.log2(), y)).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(e)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

/// Latency distributions on log2 buckets: x is log2 of the bucket's lower
/// bound in ns, y the share of completions in that bucket (%).
pub fn latency_hists(path: &Path, title: &str, series: &[(String, Vec<(u64, u64)>)]) -> Result<()> {
    let norm: Vec<Series> = series
        .iter()
        .map(|(name, b)| {
            let total: u64 = b.iter().map(|x| x.1).sum::<u64>().max(1);
            (
                format!("{name} ({total})"),
                b.iter()
                    .filter(|x| x.0 > 0)
                    .map(|&(lo, n)| ((lo as f64).log2(), 100.0 * n as f64 / total as f64))
                    .collect(),
            )
        })
        .filter(|s: &Series| !s.1.is_empty())
        .collect();
    let (x_min, x_max) = norm
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let (x_min, x_max) = if x_min > x_max {
        (10.0, 30.0)
    } else {
        (x_min.floor() - 1.0, x_max.ceil() + 1.0)
    };
    let y_max = norm
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(10.0, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (760, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(e)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((x_min..x_max).step(2.0), 0.0..y_max)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("latency (log2 buckets)")
        .y_desc("% of completions")
        .x_label_formatter(&|v| {
            let ns = 2f64.powf(*v);
            if ns >= 1e6 {
                format!("{:.0}ms", ns / 1e6)
            } else if ns >= 1e3 {
                format!("{:.0}us", ns / 1e3)
            } else {
                format!("{ns:.0}ns")
            }
        })
        .draw()
        .map_err(e)?;
    for (i, (name, pts)) in norm.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        // Steps: each bucket spans [log2(lo), log2(lo) + 1).
        let mut steps = Vec::new();
        for &(x, y) in pts {
            steps.push((x, y));
            steps.push((x + 1.0, y));
        }
        chart
            .draw_series(LineSeries::new(steps, c.stroke_width(2)))
            .map_err(e)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_svgs() {
        let dir = std::env::temp_dir().join(format!("xtask-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("lines.svg");
        log2_lines(
            &p,
            "t",
            "batch",
            "pages/s",
            &[("a".into(), vec![(1.0, 10.0), (4.0, 40.0), (64.0, 50.0)])],
        )
        .unwrap();
        assert!(std::fs::read_to_string(&p).unwrap().contains("<svg"));
        let h = dir.join("h.svg");
        latency_hists(&h, "t", &[("x".into(), vec![(1024, 3), (2048, 7)])]).unwrap();
        assert!(std::fs::read_to_string(&h).unwrap().contains("<polyline"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
