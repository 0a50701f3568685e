//! `/api/health` and `/metrics`.

use super::*;

pub(super) struct HealthReport {
    problems: Vec<String>,
    disk: Option<disk::DiskUsage>,
    recordings: u64,
    unindexable: u64,
}

pub(super) fn health_report(st: &Shared) -> Result<HealthReport> {
    let config = st.config();
    let mut problems = Vec::new();
    let disk = match disk::usage(&config.storage.recordings_dir) {
        Ok(d) => {
            if d.free_percent() < config.retention.min_free_percent {
                problems.push(format!(
                    "disk: {:.1}% free, below min_free_percent ({}%)",
                    d.free_percent(),
                    config.retention.min_free_percent
                ));
            }
            Some(d)
        }
        Err(e) => {
            problems.push(format!("disk: {e}"));
            None
        }
    };
    for (id, s) in st.statuses.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        if s.state == crate::recorder::State::Backoff {
            problems.push(format!(
                "stream {id}: not recording: {}",
                s.last_error.as_deref().unwrap_or("restarting")
            ));
        }
    }
    if st.counters.short_with_only_locked.load(Ordering::Relaxed) {
        problems.push(format!(
            "disk: below the target of {}% free and only locked recordings are left; unlock or delete some",
            config.retention.target_free_percent
        ));
    }
    let recordings = st.store.count()?;
    let unindexable = st.store.unindexable_count()?;
    if unindexable > 0 {
        problems.push(format!("index: {unindexable} file(s) could not be indexed"));
    }
    Ok(HealthReport {
        problems,
        disk,
        recordings,
        unindexable,
    })
}

pub(super) async fn health(st: State) -> Result<HttpResponse> {
    let shared = st.get_ref().clone();
    let r = blocking(move || health_report(&shared)).await?;
    let disk = r.disk.map_or(Value::Null, |d| {
        json!({"total_bytes": d.total_bytes, "free_bytes": d.free_bytes, "free_percent": (d.free_percent() * 100.0).round() / 100.0})
    });
    Ok(json_ok(&json!({
        "status": if r.problems.is_empty() { "healthy" } else { "degraded" },
        "problems": r.problems,
        "disk": disk,
        "index": {"recordings": r.recordings, "unindexable_files": r.unindexable},
    })))
}

pub(super) async fn metrics(st: State) -> Result<HttpResponse> {
    let shared = st.get_ref().clone();
    let text = blocking(move || {
        let config = shared.config();
        let totals = shared.store.stream_totals()?;
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let label = |k: &str, v: &str| {
            format!(
                "{{{k}=\"{}\"}}",
                v.replace('\\', "\\\\").replace('"', "\\\"")
            )
        };
        family(
            "wallflower_recordings",
            "gauge",
            "Recordings in the index, per stream.",
            totals
                .iter()
                .map(|(s, (n, _))| (label("stream", s), n.to_string()))
                .collect(),
        );
        family(
            "wallflower_recording_bytes",
            "gauge",
            "Bytes of the recordings in the index, per stream.",
            totals
                .iter()
                .map(|(s, (_, b))| (label("stream", s), b.to_string()))
                .collect(),
        );
        let statuses = shared
            .statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        family(
            "wallflower_recorder_restarts_total",
            "counter",
            "Recorder (ffmpeg) restarts since the daemon started, per stream.",
            config
                .streams
                .iter()
                .map(|s| {
                    (
                        label("stream", &s.id),
                        statuses.get(&s.id).map_or(0, |x| x.restarts).to_string(),
                    )
                })
                .collect(),
        );
        family(
            "wallflower_retention_deletions_total",
            "counter",
            "Recordings deleted since the daemon started, by reason.",
            retention::REASONS
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    (
                        label("reason", r),
                        shared.counters.deletions[i]
                            .load(Ordering::Relaxed)
                            .to_string(),
                    )
                })
                .collect(),
        );
        if let Ok(d) = disk::usage(&config.storage.recordings_dir) {
            family(
                "wallflower_disk_free_bytes",
                "gauge",
                "Free bytes on the recordings filesystem.",
                vec![(String::new(), d.free_bytes.to_string())],
            );
            family(
                "wallflower_disk_total_bytes",
                "gauge",
                "Size of the recordings filesystem.",
                vec![(String::new(), d.total_bytes.to_string())],
            );
        }
        family(
            "wallflower_index_size_bytes",
            "gauge",
            "Size of the index file.",
            vec![(String::new(), shared.store.file_size_bytes().to_string())],
        );
        family(
            "wallflower_index_unindexable_files",
            "gauge",
            "Segment files that could not be indexed.",
            vec![(String::new(), shared.store.unindexable_count()?.to_string())],
        );
        Ok(out)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}
