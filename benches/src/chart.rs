//! A hand-written SVG bar chart: panels of horizontal bars, each panel on its own scale.

use std::fmt::Write;

/// One bar: a label, a value and a colour (CSS colour name or `#rrggbb`).
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub color: &'static str,
}

/// A group of bars sharing one unit and one scale.
pub struct Panel {
    pub title: String,
    pub unit: String,
    pub bars: Vec<Bar>,
}

const WIDTH: f64 = 960.0;
const LABEL_W: f64 = 330.0;
const BAR_W: f64 = 470.0;
const BAR_H: f64 = 18.0;
const GAP: f64 = 5.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A number in a short human form: 1234567 -> "1.23 M".
pub fn human(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1} k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Renders the panels under a title and a subtitle as a standalone SVG document.
pub fn render(title: &str, subtitle: &str, panels: &[Panel]) -> String {
    let mut body = String::new();
    let mut y = 56.0;
    for panel in panels {
        let _ = writeln!(
            body,
            r#"<text x="10" y="{:.0}" font-size="14" font-weight="bold">{} ({})</text>"#,
            y + 14.0,
            escape(&panel.title),
            escape(&panel.unit)
        );
        y += 24.0;
        let max = panel.bars.iter().map(|b| b.value).fold(0.0f64, f64::max);
        for bar in &panel.bars {
            let w = if max > 0.0 && bar.value.is_finite() { (bar.value / max * BAR_W).max(1.0) } else { 1.0 };
            let _ = writeln!(
                body,
                r#"<text x="{:.0}" y="{:.0}" font-size="12" text-anchor="end">{}</text><rect x="{:.0}" y="{:.0}" width="{:.1}" height="{:.0}" fill="{}"/><text x="{:.0}" y="{:.0}" font-size="12">{}</text>"#,
                LABEL_W - 8.0,
                y + 13.0,
                escape(&bar.label),
                LABEL_W,
                y,
                w,
                BAR_H,
                bar.color,
                LABEL_W + w + 6.0,
                y + 13.0,
                human(bar.value)
            );
            y += BAR_H + GAP;
        }
        y += 12.0;
    }
    let height = y + 10.0;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0}" height="{height:.0}" viewBox="0 0 {WIDTH:.0} {height:.0}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="22" font-size="17" font-weight="bold">{}</text>
<text x="10" y="42" font-size="12" fill="#555">{}</text>
{body}</svg>
"##,
        escape(title),
        escape(subtitle)
    )
}
