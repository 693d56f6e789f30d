//! `decrypt --plot OUT.svg`: the values of a release as bars, each with its
//! confidence interval as an error bar, drawn with `plotters`' SVG backend.
//!
//! The title names the measurement, the report count and the mechanism; the
//! lines under it name the task and batch and say what the bars and
//! whiskers are. Up to [`ALL_LABELS_UP_TO`] values every bar is labelled;
//! beyond that the axis is labelled at round steps (1, 2 or 5 × 10^k) with
//! at most [`THINNED_LABELS`] labels, the drawing grows wider with the
//! number of values up to [`MAX_WIDTH`] pixels, and bars too narrow for an
//! error bar with caps get a faint line from low to high instead.

use plotters::prelude::*;

use crate::interval::percent;
use crate::render::{batch_end_utc, batch_start_utc, task_id, Release};
use hetally_protocol::Measurement;

/// Every value gets its own axis label up to this many values.
pub const ALL_LABELS_UP_TO: usize = 64;

/// Most axis labels beyond [`ALL_LABELS_UP_TO`] values.
pub const THINNED_LABELS: usize = 32;

/// Narrowest drawing, in pixels.
const MIN_WIDTH: u32 = 900;

/// Widest drawing, in pixels.
pub const MAX_WIDTH: u32 = 1800;

/// Height of the drawing, in pixels.
const HEIGHT: u32 = 600;

/// Narrowest bar, in pixels, that gets an error bar with caps; narrower
/// ones get a faint line.
const MIN_ERROR_BAR_PIXELS: f64 = 6.0;

/// Bar fill: a light blue that black whiskers stand out on.
const BAR: RGBColor = RGBColor(120, 160, 220);

/// The width of the drawing for `n` values: 18 pixels a value plus room for
/// the axis, between [`MIN_WIDTH`] and [`MAX_WIDTH`].
fn width_for(n: usize) -> u32 {
    let wanted = 160u64.saturating_add(18u64.saturating_mul(n as u64));
    wanted.clamp(u64::from(MIN_WIDTH), u64::from(MAX_WIDTH)) as u32
}

/// How many axis labels to ask plotters for.
fn label_count(n: usize) -> usize {
    if n <= ALL_LABELS_UP_TO {
        n.max(1)
    } else {
        THINNED_LABELS
    }
}

/// A y-axis number: integers as integers, huge ones in scientific notation.
fn y_label(y: f64) -> String {
    if y.abs() >= 1e9 {
        format!("{y:.2e}")
    } else if (y - y.round()).abs() < 1e-9 {
        format!("{}", y.round() as i64)
    } else {
        format!("{y:.1}")
    }
}

/// The x-axis label at position `x`: the index at whole positions inside
/// the release, nothing elsewhere; a single value is named by its type.
fn x_label(x: f64, n: usize, measurement: &Measurement) -> String {
    let index = x.round();
    if (x - index).abs() > 1e-6 || index < 0.0 || index >= n as f64 {
        return String::new();
    }
    if n == 1 {
        return measurement.to_string();
    }
    format!("{}", index as usize)
}

/// The y range: every value and interval end, and zero, with 5% room.
fn y_range(release: &Release<'_>) -> (f64, f64) {
    let est = release.estimates;
    let lo = est
        .intervals
        .iter()
        .map(|i| i.0 as f64)
        .chain(est.values.iter().map(|&v| v as f64))
        .fold(0.0, f64::min);
    let hi = est
        .intervals
        .iter()
        .map(|i| i.1 as f64)
        .chain(est.values.iter().map(|&v| v as f64))
        .fold(0.0, f64::max);
    let span = (hi - lo).max(1.0);
    let pad = span * 0.05;
    (if lo < 0.0 { lo - pad } else { 0.0 }, hi + pad)
}

/// The report count for a title: exact, or `~N` when released with noise.
fn reports(release: &Release<'_>) -> String {
    let count = release.estimates.count;
    if count.exact {
        count.value.to_string()
    } else {
        format!("~{}", count.value)
    }
}

/// The title lines: measurement, reports and mechanism; task and batch;
/// what the marks mean.
fn titles(release: &Release<'_>) -> [String; 3] {
    let agg = release.aggregate;
    let est = release.estimates;
    let title = format!(
        "{} · {} reports · DP {} · {}",
        agg.measurement,
        reports(release),
        agg.dp,
        est.guarantee.short()
    );
    let batch = format!(
        "task {} · batch {} to {}",
        task_id(&agg.task_id),
        batch_start_utc(agg.batch_start),
        batch_end_utc(agg.batch_start, agg.batch_duration)
    );
    let bars = match est.clamp {
        Some(c) => format!(
            "bars: values clamped to {}..={}",
            c.low,
            c.high.map_or(String::new(), |h| h.to_string())
        ),
        None => "bars: decrypted values".to_string(),
    };
    let marks = if est.exact() {
        format!("{bars} (exact sums: no DP noise)")
    } else {
        format!(
            "{bars} · whiskers: {} intervals (±{}) from the exact noise distribution",
            percent(est.confidence),
            est.half_width
        )
    };
    [title, batch, marks]
}

/// Draws `release` as an SVG document.
pub fn svg(release: &Release<'_>) -> Result<String, String> {
    let est = release.estimates;
    let measurement = release.aggregate.measurement;
    let n = est.values.len();
    if n == 0 {
        return Err("the release has no values to draw".into());
    }
    let width = width_for(n);
    let [title, batch, marks] = titles(release);
    let (y_lo, y_hi) = y_range(release);
    let x_desc = match measurement {
        Measurement::Histogram { .. } => "bucket",
        _ if n > 1 => "index",
        _ => "",
    };
    let y_desc = format!("sum over {} reports", reports(release));
    let err = |e: &dyn std::fmt::Display| e.to_string();

    let mut document = String::new();
    {
        let root = SVGBackend::with_string(&mut document, (width, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let root = root
            .titled(&title, ("sans-serif", 26))
            .map_err(|e| err(&e))?;
        let root = root
            .titled(&batch, ("sans-serif", 16))
            .map_err(|e| err(&e))?;
        let root = root
            .titled(&marks, ("sans-serif", 16))
            .map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(84)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), y_lo..y_hi)
            .map_err(|e| err(&e))?;
        let label = |x: &f64| x_label(*x, n, &measurement);
        let y_format = |y: &f64| y_label(*y);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(label_count(n))
            .x_label_formatter(&label)
            .y_labels(10)
            .y_label_formatter(&y_format)
            .x_desc(x_desc)
            .y_desc(y_desc.as_str())
            .axis_desc_style(("sans-serif", 17))
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(|e| err(&e))?;

        // Half a bar's share of the axis, in value units and in pixels.
        let plot_width = chart.plotting_area().dim_in_pixel().0 as f64;
        let slot_pixels = plot_width / n as f64;
        let half_bar = if slot_pixels >= 4.0 { 0.4 } else { 0.5 };
        chart
            .draw_series(est.values.iter().enumerate().map(|(i, &v)| {
                let x = i as f64;
                Rectangle::new(
                    [(x - half_bar, 0.0), (x + half_bar, v as f64)],
                    BAR.filled(),
                )
            }))
            .map_err(|e| err(&e))?;
        if !est.exact() && slot_pixels >= MIN_ERROR_BAR_PIXELS {
            let cap = (slot_pixels * 0.5).clamp(0.0, 12.0) as u32;
            chart
                .draw_series(est.values.iter().zip(&est.intervals).enumerate().map(
                    |(i, (&v, &(low, high)))| {
                        ErrorBar::new_vertical(
                            i as f64,
                            low as f64,
                            v as f64,
                            high as f64,
                            BLACK.stroke_width(1),
                            cap,
                        )
                    },
                ))
                .map_err(|e| err(&e))?;
        } else if !est.exact() {
            // Too narrow for caps: a faint line per interval, so that the
            // intervals read as a band around the bars.
            chart
                .draw_series(est.intervals.iter().enumerate().map(|(i, &(low, high))| {
                    let x = i as f64;
                    PathElement::new([(x, low as f64), (x, high as f64)], BLACK.mix(0.3))
                }))
                .map_err(|e| err(&e))?;
        }
        if y_lo < 0.0 {
            chart
                .draw_series(LineSeries::new(
                    [(-0.5, 0.0), (n as f64 - 0.5, 0.0)],
                    BLACK.mix(0.6).stroke_width(1),
                ))
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(document)
}

#[cfg(test)]
mod tests {
    use hetally_protocol::aggregate::{AggregateFile, Encoding};
    use hetally_protocol::Scheme;

    use super::*;
    use crate::interval::Estimates;

    fn aggregate(measurement: &str, dp: &str) -> AggregateFile {
        AggregateFile {
            task_id: [3; 32],
            scheme: Scheme::Paillier,
            key_fingerprint: [7; 32],
            measurement: measurement.parse().unwrap(),
            encoding: Encoding::PaillierPacked { slot_bits: 16 },
            batch_start: 1_714_521_600,
            batch_duration: 3600,
            relation: Some(hetally_dp::Relation::ReplaceOne),
            report_count: hetally_protocol::aggregate::ReportCount::Exact(1000),
            dp: dp.parse().unwrap(),
            ciphertexts: vec![],
            trustee_noise: None,
        }
    }

    fn draw(agg: &AggregateFile, values: &[i128], clamp: bool) -> String {
        let estimates = Estimates::new(agg, values, 0.95, clamp).unwrap();
        svg(&Release {
            aggregate: agg,
            estimates: &estimates,
            flags: &[],
        })
        .unwrap()
    }

    /// The text of every `<text>` element, in order.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = t.split_once('>')?.1;
                Some(body.split_once("</text>")?.0.trim().to_string())
            })
            .collect()
    }

    /// The x-axis labels: the texts on the line that holds the most texts
    /// (the y-axis labels and the titles each have a line of their own).
    fn x_axis_labels(svg: &str) -> Vec<String> {
        let placed: Vec<(String, String)> = svg
            .split("<text")
            .skip(1)
            .filter_map(|t| {
                let (attributes, body) = t.split_once('>')?;
                let y = attributes.split(" y=\"").nth(1)?.split('"').next()?;
                let text = body.split_once("</text>")?.0.trim();
                Some((y.to_string(), text.to_string()))
            })
            .collect();
        let line = placed
            .iter()
            .max_by_key(|(y, _)| placed.iter().filter(|(other, _)| other == y).count())
            .map(|(y, _)| y.clone())
            .unwrap();
        placed
            .into_iter()
            .filter(|(y, _)| *y == line)
            .map(|(_, t)| t)
            .collect()
    }

    #[test]
    fn every_bucket_is_labelled_up_to_64() {
        for n in [2usize, 11, 64] {
            let agg = aggregate(&format!("histogram:{n}"), "laplace:1");
            let values: Vec<i128> = (0..n as i128).map(|i| 10 + i % 7 - 3).collect();
            let doc = draw(&agg, &values, false);
            let want: Vec<String> = (0..n).map(|i| i.to_string()).collect();
            assert_eq!(x_axis_labels(&doc), want, "n = {n}");
            let texts = texts(&doc);
            assert!(texts.iter().any(|t| t.contains(&format!(
                "histogram:{n} · 1000 reports · DP laplace:1 · 1-DP"
            ))));
            assert!(texts
                .iter()
                .any(|t| t.contains("whiskers: 95% intervals (±6)")));
            assert!(texts.iter().any(|t| t == "bucket"));
            // One bar and one error bar (three lines) per value.
            assert!(doc.matches("<rect").count() > n, "n = {n}");
        }
    }

    #[test]
    fn many_values_are_labelled_at_round_steps() {
        let agg = aggregate("histogram:1024", "gaussian:0.005");
        let values: Vec<i128> = (0..1024).map(|i| (i % 50) - 5).collect();
        let doc = draw(&agg, &values, false);
        let want: Vec<String> = (0..=1000).step_by(50).map(|i| i.to_string()).collect();
        assert_eq!(x_axis_labels(&doc), want);
        // Too narrow for capped error bars: one faint line per interval.
        assert!(!doc.contains("<circle"));
        assert!(doc.matches("<polyline").count() >= 1024);
        let width: u32 = doc
            .split("width=\"")
            .nth(1)
            .and_then(|w| w.split('"').next())
            .and_then(|w| w.parse().ok())
            .unwrap();
        assert_eq!(width, MAX_WIDTH);
    }

    #[test]
    fn exact_releases_and_single_values_say_so() {
        let agg = aggregate("count", "none");
        let doc = draw(&agg, &[412], false);
        let shown = texts(&doc);
        assert!(shown.iter().any(|t| t.contains("exact sums: no DP noise")));
        assert!(shown.iter().any(|t| t == "count"));

        let agg = aggregate("sumvec:3:4", "laplace:1");
        let doc = draw(&agg, &[-30, 5, 20000], true);
        let shown = texts(&doc);
        assert!(
            shown
                .iter()
                .any(|t| t.contains("values clamped to 0..=15000")),
            "{shown:?}"
        );
    }

    #[test]
    fn axis_numbers_read_cleanly() {
        assert_eq!(y_label(200.0), "200");
        assert_eq!(y_label(-40.0), "-40");
        assert_eq!(y_label(2.5), "2.5");
        assert_eq!(y_label(3.0e12), "3.00e12");
        assert_eq!(width_for(1), MIN_WIDTH);
        assert_eq!(width_for(64), 160 + 64 * 18);
        assert_eq!(width_for(100_000), MAX_WIDTH);
        assert_eq!(label_count(11), 11);
        assert_eq!(label_count(65), THINNED_LABELS);
    }
}
