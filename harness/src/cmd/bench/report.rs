//! How a benchmark prints its results: aligned lines of figure, value, anchor, ratio and
//! target, or with `--json` one JSON object per result.

use std::fmt::Display;
use std::time::Duration;

/// How results are printed: aligned lines, or JSON lines with `--json`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Out {
    pub(super) json: bool,
}

impl Out {
    /// One result: its title and rows, or its JSON object.
    pub(super) fn emit(self, title: &str, rows: &[Row], json: &Obj) {
        self.title(title);
        self.rows(rows);
        self.json(json);
    }

    /// Aligned lines only: a title and the column heads.
    pub(super) fn title(self, title: &str) {
        if !self.json {
            println!("{title}");
            Row {
                figure: "figure".into(),
                value: "value".into(),
                anchor: "anchor".into(),
                ratio: "ratio".into(),
                target: "target".into(),
            }
            .print();
        }
    }

    /// Aligned lines only.
    pub(super) fn rows(self, rows: &[Row]) {
        if !self.json {
            rows.iter().for_each(Row::print);
        }
    }

    /// Aligned lines only: a note under the rows.
    pub(super) fn note(self, note: &str) {
        if !self.json {
            println!("  note: {note}");
        }
    }

    /// JSON only.
    pub(super) fn json(self, json: &Obj) {
        if self.json {
            println!("{json}");
        }
    }
}

/// One aligned line: a figure and its value, the anchor measured in the same run and the
/// value's ratio to it, and the target with whether it was met.
pub(super) struct Row {
    figure: String,
    value: String,
    anchor: String,
    ratio: String,
    target: String,
}

impl Row {
    pub(super) fn new(figure: impl Into<String>, value: impl Into<String>) -> Row {
        Row {
            figure: figure.into(),
            value: value.into(),
            anchor: "-".into(),
            ratio: "-".into(),
            target: "-".into(),
        }
    }

    pub(super) fn anchor(mut self, anchor: impl Into<String>, ratio: f64) -> Row {
        self.anchor = anchor.into();
        self.ratio = format!("{ratio:.3}");
        self
    }

    /// The target; `met` when it can be judged from this run alone.
    pub(super) fn target(mut self, target: impl Display, met: Option<bool>) -> Row {
        self.target = match met {
            Some(true) => format!("{target}: met"),
            Some(false) => format!("{target}: MISSED"),
            None => target.to_string(),
        };
        self
    }

    fn print(&self) {
        println!(
            "  {:<36} {:>13}  {:<30} {:>7}  {}",
            self.figure, self.value, self.anchor, self.ratio, self.target
        );
    }
}

/// Seconds as a row shows them.
pub(super) fn secs_text(s: f64) -> String {
    format!("{s:.3} s")
}

/// Microseconds as a row shows them.
pub(super) fn micros_text(d: Duration) -> String {
    format!("{:.1} µs", micros(d))
}

pub(super) fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A JSON object whose keys stay in the order they are added (`serde_json`'s own map sorts
/// them), numbers printed to the decimals given.
#[derive(Debug, Default)]
pub(super) struct Obj(Vec<(&'static str, String)>);

impl Obj {
    /// `value`, already JSON.
    pub(super) fn raw(mut self, key: &'static str, value: impl Into<String>) -> Obj {
        self.0.push((key, value.into()));
        self
    }

    pub(super) fn str(self, key: &'static str, value: &str) -> Obj {
        self.raw(key, serde_json::Value::from(value).to_string())
    }

    pub(super) fn int(self, key: &'static str, value: impl Display) -> Obj {
        self.raw(key, value.to_string())
    }

    pub(super) fn bool(self, key: &'static str, value: bool) -> Obj {
        self.raw(key, value.to_string())
    }

    /// `value` to `decimals` places; `null` if it is not finite.
    pub(super) fn num(self, key: &'static str, value: f64, decimals: usize) -> Obj {
        self.raw(key, fixed(value, decimals))
    }

    pub(super) fn obj(self, key: &'static str, value: Obj) -> Obj {
        self.raw(key, value.to_string())
    }
}

impl Display for Obj {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (key, value)) in self.0.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            write!(f, "{comma}\"{key}\":{value}")?;
        }
        f.write_str("}")
    }
}

/// `value` to `decimals` places, or JSON's `null` if it is not finite.
pub(super) fn fixed(value: f64, decimals: usize) -> String {
    if value.is_finite() {
        format!("{value:.decimals$}")
    } else {
        "null".into()
    }
}

/// A JSON array of `items`, already JSON.
pub(super) fn list<T: Display>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    format!("[{}]", items.join(","))
}
