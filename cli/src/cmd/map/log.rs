//! `peer map`'s job log: one JSON line per finished task, its output included, from which
//! `--resume` prints what was not printed and runs what did not succeed.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::Context;
use peer_workloads::shell::Outcome;
use serde_json::{Value, json};

use super::usage;

/// The log file: replaced, or appended to when resuming.
pub(super) fn open_log(path: &Path, resume: bool) -> anyhow::Result<File> {
    let mut options = OpenOptions::new();
    if resume {
        options.append(true).create(true);
    } else {
        options.write(true).create(true).truncate(true);
    }
    options
        .open(path)
        .map_err(|e| usage(&format!("cannot open the log {}: {e}", path.display())))
}

/// The log line of a finished task (without `printed`, which the caller adds).
pub(super) fn log_record(index: usize, input: &str, o: &Outcome) -> Value {
    json!({
        "index": index,
        "input": input,
        "exit_code": o.code,
        "signal": o.signal,
        "error": o.error,
        "host": o.host,
        "pid": o.pid,
        "seconds": o.seconds,
        "stdout": bytes_json(&o.stdout),
        "stderr": bytes_json(&o.stderr),
        "stdout_truncated": o.stdout_truncated,
        "stderr_truncated": o.stderr_truncated,
    })
}

/// Output bytes in the log, losslessly: a string if they are UTF-8, else an array of bytes.
pub(super) fn bytes_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => json!(text),
        Err(_) => json!(bytes),
    }
}

/// The bytes [`bytes_json`] wrote.
pub(super) fn json_bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::String(text) => Some(text.as_bytes().to_vec()),
        Value::Array(items) => items
            .iter()
            .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect(),
        _ => None,
    }
}

/// The outcome a log line records, if it has the outputs (lines of older logs do not).
pub(super) fn logged_outcome(entry: &Value) -> Option<Outcome> {
    let int = |field: &str| entry[field].as_i64().and_then(|n| i32::try_from(n).ok());
    Some(Outcome {
        code: int("exit_code"),
        signal: int("signal"),
        stdout: json_bytes(&entry["stdout"])?,
        stderr: json_bytes(&entry["stderr"])?,
        stdout_truncated: entry["stdout_truncated"].as_bool().unwrap_or(false),
        stderr_truncated: entry["stderr_truncated"].as_bool().unwrap_or(false),
        seconds: entry["seconds"].as_f64().unwrap_or(0.0),
        host: entry["host"].as_str().unwrap_or_default().to_string(),
        pid: (entry["pid"].as_u64())
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0),
        error: entry["error"].as_str().map(str::to_string),
        ..Outcome::default()
    })
}

/// What the log says of an input whose last record is a success.
#[derive(Clone, Debug)]
pub(super) struct Logged {
    /// Its outcome, outputs included (`None`: a log of an older `peer`, without them).
    pub(super) outcome: Option<Outcome>,
    /// Whether its output was printed.
    pub(super) printed: bool,
}

/// For each input, what the log records of it if its last record is a success, after
/// checking it is a log of these inputs. Lines that do not parse (a line cut by a crash)
/// are skipped with a warning.
pub(super) fn read_log(path: &Path, inputs: &[String]) -> anyhow::Result<Vec<Option<Logged>>> {
    let mut logged = vec![None; inputs.len()];
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(logged),
        Err(e) => {
            return Err(usage(&format!(
                "cannot read the log {}: {e}",
                path.display()
            )));
        }
    };
    let mut skipped = 0;
    for line in BufReader::new(file).lines() {
        let line = line.with_context(|| format!("cannot read the log {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(entry) = serde_json::from_str::<Value>(&line) else {
            skipped += 1;
            continue;
        };
        if let (Some(printed), None) = (entry["printed"].as_array(), entry.get("index")) {
            // Outputs logged before, printed since.
            for index in printed.iter().filter_map(Value::as_u64) {
                let index = usize::try_from(index).unwrap_or(usize::MAX);
                if let Some(Some(entry)) = logged.get_mut(index) {
                    entry.printed = true;
                }
            }
            continue;
        }
        let (Some(index), Some(input)) = (entry["index"].as_u64(), entry["input"].as_str()) else {
            skipped += 1;
            continue;
        };
        let index = usize::try_from(index).unwrap_or(usize::MAX);
        match inputs.get(index) {
            Some(now) if now == input => {}
            now => {
                let there = now.map_or_else(
                    || format!("there are only {} inputs", inputs.len()),
                    |now| format!("the input there is {now:?}"),
                );
                return Err(usage(&format!(
                    "the log {} records input {input:?} at index {index}, but {there}: \
                     --resume needs the same inputs",
                    path.display()
                )));
            }
        }
        let succeeded = entry["exit_code"].as_i64() == Some(0) && entry["error"].is_null();
        logged[index] = succeeded.then(|| {
            let outcome = logged_outcome(&entry);
            Logged {
                // An older log's line, without outputs: printed when it was written.
                printed: outcome.is_none() || entry["printed"].as_bool().unwrap_or(false),
                outcome,
            }
        });
    }
    if skipped > 0 {
        eprintln!(
            "peer map: skipped {skipped} lines of {} that are not task records",
            path.display()
        );
    }
    Ok(logged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_round_trip_through_the_log() {
        let outcome = Outcome {
            code: Some(0),
            stdout: b"text\n".to_vec(),
            stderr: vec![0xff, 0, b'a'],
            host: "h".into(),
            pid: 7,
            seconds: 0.5,
            ..Outcome::default()
        };
        let record = log_record(3, "in", &outcome);
        assert!(record["stdout"].is_string());
        assert!(record["stderr"].is_array());
        let line = record.to_string();
        let back = logged_outcome(&serde_json::from_str(&line).unwrap()).unwrap();
        assert_eq!(back, outcome);
    }
}
